package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// binPath is a slurmtune binary built once for the end-to-end tests, which
// run it as users do: as a separate process, against the dev cluster.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "slurmtune-e2e-bin-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "slurmtune")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// openTempDir is t.TempDir opened to other users (0o755, not 0o700), for
// the tests that need the cluster's side to read it.
func openTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type result struct {
	stdout, stderr string
	code           int
}

// slurmtune runs the binary with a test's own database.
func slurmtune(t testing.TB, db string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(os.Environ(), "SLURMTUNE_DB="+db)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("slurmtune %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{so.String(), se.String(), code}
}

type statusOut struct {
	Runs []struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		State  string `json:"state"`
		RunDir string `json:"run_dir"`
		Stages []struct {
			Name     string `json:"name"`
			JobID    string `json:"job_id"`
			State    string `json:"state"`
			ExitCode *int   `json:"exit_code"`
			Restarts int    `json:"restarts"`
			Nodes    string `json:"nodes"`
			Reason   string `json:"reason"`
			Error    string `json:"error"`
		} `json:"stages"`
	} `json:"runs"`
}

func statusOf(t testing.TB, db, run string) statusOut {
	t.Helper()
	r := slurmtune(t, db, "status", run, "--json")
	if r.code != 0 {
		t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	var s statusOut
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
	}
	if len(s.Runs) != 1 {
		t.Fatalf("status %s: want 1 run, got %d", run, len(s.Runs))
	}
	return s
}

// waitEnded polls status until every stage of the run has ended.
func waitEnded(t testing.TB, db, run string, limit time.Duration) statusOut {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := statusOf(t, db, run)
		ended := true
		for _, st := range s.Runs[0].Stages {
			switch st.State {
			case "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "NOT_SUBMITTED":
			default:
				ended = false
			}
		}
		if ended {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not end within %s: %+v", run, limit, s.Runs[0])
		}
		time.Sleep(2 * time.Second)
	}
}

func tinyPipeline(t testing.TB) string {
	return filepath.Join(repoRoot(t), "examples", "tiny", "pipeline.yaml")
}

type submitJSON struct {
	Run  string            `json:"run"`
	Jobs map[string]string `json:"jobs"`
}

// TestE2ERunSucceedsWithHostileNames submits the tiny pipeline with a name
// and a workdir full of shell metacharacters, checks the dependency chain in
// Slurm, and follows the run to SUCCEEDED; nothing in the names is executed.
func TestE2ERunSucceedsWithHostileNames(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	marker := filepath.Join(tmp, "pwned")
	name := "tiny $(touch " + marker + "1) `touch " + marker + "2` 'single' \"double\"\nnewline; rm -rf /"
	workdir := filepath.Join(tmp, "work dir $(touch "+marker+"3) `touch "+marker+"4`", "it's \"runs\"")
	db := filepath.Join(tmp, "st.db")
	r := slurmtune(t, db, "submit", tinyPipeline(t), "--json", "--set", "name="+name, "--set", "workdir="+workdir)
	if r.code != 0 {
		t.Fatalf("submit: exit %d: %s", r.code, r.stderr)
	}
	var sub submitJSON
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil {
		t.Fatalf("submit --json: %v\n%s", err, r.stdout)
	}
	for _, st := range []string{"prep", "train", "eval", "deploy"} {
		if sub.Jobs[st] == "" {
			t.Fatalf("submit --json: no job for %s: %s", st, r.stdout)
		}
	}
	// The chain exists in Slurm: eval waits on train and deploy on eval (they
	// cannot have started: training takes far longer than this check).
	for _, dep := range [][2]string{{"eval", "train"}, {"deploy", "eval"}} {
		got := slurmtest.JobField(t, sub.Jobs[dep[0]], "Dependency")
		if !strings.HasPrefix(got, "afterok:"+sub.Jobs[dep[1]]) {
			t.Errorf("%s job %s: Dependency=%q, want afterok:%s", dep[0], sub.Jobs[dep[0]], got, sub.Jobs[dep[1]])
		}
		if c := slurmtest.JobField(t, sub.Jobs[dep[0]], "Comment"); c != "slurmtune:"+sub.Run+":"+dep[0] {
			t.Errorf("%s job comment %q", dep[0], c)
		}
	}
	s := waitEnded(t, db, sub.Run, 6*time.Minute)
	run := s.Runs[0]
	if run.State != "SUCCEEDED" {
		logs := slurmtune(t, db, "logs", sub.Run, "train")
		t.Fatalf("run state %s, want SUCCEEDED: %+v\ntrain log:\n%s", run.State, run.Stages, logs.stdout)
	}
	if run.Name != name {
		t.Errorf("run name %q, want %q", run.Name, name)
	}
	for _, st := range run.Stages {
		if st.State != "COMPLETED" || st.ExitCode == nil || *st.ExitCode != 0 || st.JobID != sub.Jobs[st.Name] {
			t.Errorf("stage %+v, want COMPLETED with exit 0 and job %s", st, sub.Jobs[st.Name])
		}
	}
	if !strings.HasPrefix(run.RunDir, workdir+"/") {
		t.Errorf("run dir %q is not under the literal workdir %q", run.RunDir, workdir)
	}
	for i := 1; i <= 4; i++ {
		if _, err := os.Stat(marker + string(rune('0'+i))); err == nil {
			t.Errorf("a shell metacharacter in a name or path was executed (%s%d exists)", marker, i)
		}
	}
	train := slurmtune(t, db, "logs", sub.Run, "train")
	if train.code != 0 || !strings.Contains(train.stdout, "world size 4") || !strings.Contains(train.stdout, "starting from step 0") {
		t.Errorf("train log lacks the world size or start step (exit %d):\n%s", train.code, train.stdout)
	}
	for _, f := range []string{"pipeline.yaml", "prep.sbatch", "train.sbatch", "eval.sbatch", "deploy.sbatch",
		"data/train.jsonl", "data/validation.jsonl", "data/quality_report.json", "checkpoints/final/COMPLETE",
		"eval/eval_report.json", "deploy.json"} {
		if _, err := os.Stat(filepath.Join(run.RunDir, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	// The exporter ran on both nodes of the training job; there is no NVML
	// here, which it recorded, and the job was unaffected.
	for _, host := range []string{"st-node1", "st-node2"} {
		b, err := os.ReadFile(filepath.Join(run.RunDir, "gpu", "samples-"+host+".jsonl"))
		if err != nil || !strings.Contains(string(b), `"nvml":"unavailable"`) {
			t.Errorf("GPU samples of %s: %v %s", host, err, b)
		}
	}
	if g := slurmtune(t, db, "gpu", sub.Run); g.code != 0 || !strings.Contains(g.stdout, "no GPU telemetry: NVML was not available on st-node1, st-node2") {
		t.Errorf("slurmtune gpu: exit %d: %s %s", g.code, g.stdout, g.stderr)
	}
	var rep struct {
		Passed  bool               `json:"passed"`
		Metrics map[string]float64 `json:"metrics"`
	}
	b, _ := os.ReadFile(filepath.Join(run.RunDir, "eval", "eval_report.json"))
	if err := json.Unmarshal(b, &rep); err != nil || !rep.Passed || rep.Metrics["perplexity"] <= 1 {
		t.Errorf("eval report: %v %s", err, b)
	}
}

// TestE2EFailingGateCancelsDeploy: a gate that cannot pass fails eval with
// exit code 3, Slurm cancels deploy (DependencyNeverSatisfied), the run is
// FAILED and submit --wait exits 1.
func TestE2EFailingGateCancelsDeploy(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	r := slurmtune(t, db, "submit", tinyPipeline(t), "--wait", "--interval", "2s",
		"--set", "workdir="+filepath.Join(tmp, "runs"), "--set", "eval.gates.perplexity.max=1",
		"--set", "train.hyperparameters.max_steps=10")
	if r.code != 1 {
		t.Fatalf("submit --wait with a failing gate: exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	runID := strings.TrimSpace(r.stdout)
	s := statusOf(t, db, runID)
	run := s.Runs[0]
	if run.State != "FAILED" {
		t.Errorf("run state %s, want FAILED", run.State)
	}
	got := map[string]string{}
	for _, st := range run.Stages {
		got[st.Name] = st.State
		switch st.Name {
		case "eval":
			if st.State != "FAILED" || st.ExitCode == nil || *st.ExitCode != 3 {
				t.Errorf("eval: %+v, want FAILED with exit code 3", st)
			}
		case "deploy":
			if st.State != "CANCELLED" || st.Reason != "DependencyNeverSatisfied" {
				t.Errorf("deploy: %+v, want CANCELLED with reason DependencyNeverSatisfied", st)
			}
		default:
			if st.State != "COMPLETED" {
				t.Errorf("%s: %+v, want COMPLETED", st.Name, st)
			}
		}
	}
	if len(got) != 4 {
		t.Errorf("stages: %v", got)
	}
}

// TestE2ECancel cancels a run right after submitting it: every job of the
// run that had not finished ends CANCELLED, and the run is CANCELLED.
func TestE2ECancel(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	r := slurmtune(t, db, "submit", tinyPipeline(t), "--json", "--set", "workdir="+filepath.Join(tmp, "runs"),
		"--set", "train.hyperparameters.max_steps=100000")
	if r.code != 0 {
		t.Fatalf("submit: exit %d: %s", r.code, r.stderr)
	}
	var sub submitJSON
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil {
		t.Fatal(err)
	}
	c := slurmtune(t, db, "cancel", sub.Run)
	if c.code != 0 {
		t.Fatalf("cancel: exit %d: %s", c.code, c.stderr)
	}
	s := waitEnded(t, db, sub.Run, 2*time.Minute)
	run := s.Runs[0]
	if run.State != "CANCELLED" {
		t.Errorf("run state %s, want CANCELLED", run.State)
	}
	for _, st := range run.Stages {
		if st.Name == "prep" && st.State == "COMPLETED" {
			continue // it may have finished before the cancel
		}
		if st.State != "CANCELLED" {
			t.Errorf("%s: %s, want CANCELLED", st.Name, st.State)
		}
		// The controller agrees (accounting catches up asynchronously).
		if sq := slurmtest.Run(t, "squeue", "-h", "--states=all", "-O", "State:0", "-j", st.JobID); !strings.HasPrefix(strings.TrimSpace(sq), "CANCELLED") {
			t.Errorf("squeue says job %s (%s) is %q", st.JobID, st.Name, sq)
		}
	}
}

// TestE2EInvalidFileSubmitsNothing: a pipeline file with errors exits 2 with
// FILE:LINE:COL messages and leaves no job, no run record, no run directory.
func TestE2EInvalidFileSubmitsNothing(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	name := "invalid-" + filepath.Base(tmp)
	bad := filepath.Join(tmp, "bad.yaml")
	src, err := os.ReadFile(tinyPipeline(t))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(src), "name: tiny", "name: "+name, 1)
	text = strings.Replace(text, "  nodes: 2", "  nodes: -2", 1)
	text = strings.ReplaceAll(text, "../../scripts/payloads/tiny_lm.py", filepath.Join(repoRoot(t), "scripts", "payloads", "tiny_lm.py"))
	text = strings.Replace(text, "inputs: [data/*.jsonl]", "inputs: ["+filepath.Join(repoRoot(t), "examples/tiny/data")+"/*.jsonl]", 1)
	if err := os.WriteFile(bad, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r := slurmtune(t, db, "submit", bad, "--set", "workdir="+filepath.Join(tmp, "runs"))
	if r.code != 2 {
		t.Fatalf("submit of an invalid file: exit %d, want 2: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, bad+":") || !strings.Contains(r.stderr, "train.nodes: must be at least 1") {
		t.Errorf("stderr lacks FILE:LINE:COL and the message:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout should be empty, got %q", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(tmp, "runs")); !os.IsNotExist(err) {
		t.Errorf("a run directory was created: %v", err)
	}
	if out := slurmtest.Run(t, "squeue", "-h", "--states=all", "-O", "Name:0"); strings.Contains(out, name) {
		t.Errorf("a job was submitted from an invalid file:\n%s", out)
	}
	v := slurmtune(t, db, "validate", bad)
	if v.code != 2 || !strings.Contains(v.stderr, bad+":") {
		t.Errorf("validate: exit %d: %s", v.code, v.stderr)
	}
}
