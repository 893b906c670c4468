package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// sweepPipeline writes the tiny example with its paths made absolute and
// sweepYAML appended (a sweep's keys have dots, which --set cannot say).
func sweepPipeline(t *testing.T, dir, sweepYAML string) string {
	t.Helper()
	root := repoRoot(t)
	b, err := os.ReadFile(tinyPipeline(t))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("[data/*.jsonl]", "["+filepath.Join(root, "examples", "tiny", "data")+"/*.jsonl]",
		"../../scripts/payloads/", filepath.Join(root, "scripts", "payloads")+"/").Replace(string(b))
	path := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(path, []byte(s+sweepYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type sweepStatus struct {
	Runs []struct {
		State string `json:"state"`
		Sweep *struct {
			Winner *int `json:"winner"`
			Tasks  []struct {
				Task     int            `json:"task"`
				Settings map[string]any `json:"settings"`
				Train    string         `json:"train_state"`
				Eval     string         `json:"eval_state"`
				Metric   *float64       `json:"metric"`
				Verdict  string         `json:"verdict"`
				Winner   bool           `json:"winner"`
				Why      string         `json:"why"`
			} `json:"tasks"`
		} `json:"sweep"`
	} `json:"runs"`
}

func sweepStatusOf(t *testing.T, db, run string) sweepStatus {
	t.Helper()
	r := slurmtune(t, db, "status", run, "--json")
	var s sweepStatus
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Runs) != 1 || s.Runs[0].Sweep == nil {
		t.Fatalf("status --json: %v (exit %d)\n%s\n%s", err, r.code, r.stdout, r.stderr)
	}
	return s
}

// TestE2ESweepSkipsFailedAndGatedTasks sweeps the tiny payload's learning
// rate over 4 points as one train array and one eval array (5 sbatch calls
// in all): one value crashes the payload, one trains so little that the
// perplexity gate fails. The other two finish; select picks the better of
// them by the recorded metrics, the run's checkpoints point at it and deploy
// records it; status says why the other two lost.
func TestE2ESweepSkipsFailedAndGatedTasks(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	file := sweepPipeline(t, tmp, `sweep:
  grid:
    train.hyperparameters.lr: [0.003, 0.01, boom, 1.0e-9]
  max_parallel: 2
  select: {metric: perplexity, goal: min}
`)
	sub := submitPipeline(t, db, file, filepath.Join(tmp, "runs"), "train.nodes=1", "train.tasks_per_node=1",
		"train.hyperparameters.max_steps=20", "eval.gates.perplexity.max=200")
	if len(sub.Jobs) != 5 {
		t.Fatalf("jobs %v, want prep, train, eval, select and deploy", sub.Jobs)
	}
	train, ev, sel := sub.Jobs["train"], sub.Jobs["eval"], sub.Jobs["select"]
	// What Slurm was asked: one array each, task by task, select after them all.
	if got := slurmtest.JobField(t, train+"_3", "ArrayTaskThrottle"); got != "2" {
		t.Errorf("train array throttle %q, want 2 (max_parallel)", got)
	}
	if got := slurmtest.JobField(t, ev+"_0", "Dependency"); !strings.HasPrefix(got, "aftercorr:"+train+"_*") {
		t.Errorf("eval array dependency %q, want aftercorr:%s_*", got, train)
	}
	if got := slurmtest.JobField(t, sel, "Dependency"); !strings.HasPrefix(got, "afterany:"+ev+"_*") {
		t.Errorf("select dependency %q, want afterany:%s_*", got, ev)
	}
	s := waitEnded(t, db, sub.Run, 6*time.Minute)
	run := s.Runs[0]
	states := map[string]string{}
	for _, st := range run.Stages {
		states[st.Name] = st.State
	}
	want := map[string]string{"prep": "COMPLETED", "train[0]": "COMPLETED", "train[1]": "COMPLETED", "train[2]": "FAILED", "train[3]": "COMPLETED",
		"eval[0]": "COMPLETED", "eval[1]": "COMPLETED", "eval[2]": "CANCELLED", "eval[3]": "FAILED", "select": "COMPLETED", "deploy": "COMPLETED"}
	for name, st := range want {
		if states[name] != st {
			t.Errorf("stage %s: %s, want %s (all: %v)", name, states[name], st, states)
		}
	}
	if run.State != "SUCCEEDED" {
		t.Errorf("run %s, want SUCCEEDED", run.State)
	}
	// The winner is the passing task with the lowest perplexity in the
	// tasks' own eval reports.
	ppl := map[int]float64{}
	for _, k := range []int{0, 1, 3} {
		ppl[k] = evalPerplexity(t, filepath.Join(run.RunDir, "tasks", strconv.Itoa(k)))
	}
	best := 0
	if ppl[1] < ppl[0] {
		best = 1
	}
	if ppl[3] <= 200 {
		t.Fatalf("task 3 (lr 1e-9) has perplexity %g: it should fail the gate", ppl[3])
	}
	ss := sweepStatusOf(t, db, sub.Run)
	sw := ss.Runs[0].Sweep
	if sw.Winner == nil || *sw.Winner != best {
		t.Fatalf("winner %v, want task %d (perplexities %v)", sw.Winner, best, ppl)
	}
	for _, tk := range sw.Tasks {
		if fmt.Sprint(tk.Settings["train.hyperparameters.lr"]) == "" || tk.Winner != (tk.Task == best) {
			t.Errorf("task %+v", tk)
		}
		switch tk.Task {
		case 2:
			if tk.Verdict != "failed" || tk.Train != "FAILED" || !strings.Contains(tk.Why, "train did not finish") {
				t.Errorf("crashed task: %+v", tk)
			}
		case 3:
			if tk.Verdict != "failed" || !strings.Contains(tk.Why, "perplexity") || !strings.Contains(tk.Why, "200") {
				t.Errorf("gated task: %+v", tk)
			}
		default:
			if tk.Verdict != "passed" || tk.Metric == nil || *tk.Metric != ppl[tk.Task] {
				t.Errorf("passing task %+v, want metric %g", tk, ppl[tk.Task])
			}
		}
	}
	target, err := os.Readlink(filepath.Join(run.RunDir, "checkpoints"))
	if err != nil || target != filepath.Join(run.RunDir, "tasks", strconv.Itoa(best), "checkpoints") {
		t.Errorf("run checkpoints -> %q (%v), want task %d's", target, err, best)
	}
	dep, err := os.ReadFile(filepath.Join(run.RunDir, "deploy.json"))
	if err != nil || !strings.Contains(string(dep), "checkpoints") {
		t.Errorf("deploy.json: %v %s", err, dep)
	}
	table := slurmtune(t, db, "status", sub.Run, "--no-sync")
	for _, w := range []string{"select min perplexity", "train did not finish", "want <= 200"} {
		if !strings.Contains(table.stdout, w) {
			t.Errorf("status table lacks %q:\n%s", w, table.stdout)
		}
	}
}

// TestE2ESweepRequeueResumesOneTask stops one running task of a
// preemptible 2-task sweep with the stop signal: that task checkpoints,
// requeues itself under its own ARRAY_TASK id and resumes from its
// checkpoint; the other task runs on untouched.
func TestE2ESweepRequeueResumesOneTask(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	file := sweepPipeline(t, tmp, `sweep:
  grid:
    train.hyperparameters.lr: [0.003, 0.004]
  select: {metric: perplexity, goal: min}
`)
	sets := append(preemptibleSets(100), "train.nodes=1")
	sub := submitPipeline(t, db, file, filepath.Join(tmp, "runs"), sets...)
	task0 := sub.Jobs["train"] + "_0"
	runDir := runDirOf(t, db, sub.Run)
	logOf := func(k int) string {
		b, _ := os.ReadFile(filepath.Join(runDir, "tasks", strconv.Itoa(k), "logs", "train.log"))
		return string(b)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(logOf(0), "checkpoint step 20") {
		if time.Now().After(deadline) {
			t.Fatalf("task 0 did not checkpoint step 20:\n%s", logOf(0))
		}
		time.Sleep(time.Second)
	}
	slurmtest.Run(t, "scancel", "--signal=USR2", "--batch", task0)
	startNow(t, task0)
	s := waitEnded(t, db, sub.Run, 5*time.Minute)
	run := s.Runs[0]
	if run.State != "SUCCEEDED" {
		t.Fatalf("run %s: %+v\ntask 0 log:\n%s", run.State, run.Stages, logOf(0))
	}
	for _, st := range run.Stages {
		switch st.Name {
		case "train[0]":
			if st.Restarts < 1 || st.JobID != task0 {
				t.Errorf("train[0] %+v, want restarted as %s", st, task0)
			}
		case "train[1]":
			if st.Restarts != 0 {
				t.Errorf("train[1] restarted %d times: only task 0 was stopped", st.Restarts)
			}
		}
	}
	m := regexp.MustCompile(`resumed from step (\d+)`).FindStringSubmatch(logOf(0))
	if n := 0; m == nil || func() bool { n, _ = strconv.Atoi(m[1]); return n < 20 }() {
		t.Errorf("task 0 did not resume from its checkpoint:\n%s", logOf(0))
	}
	if l := logOf(1); strings.Contains(l, "resumed from step") || !strings.Contains(l, "done: 100 steps") {
		t.Errorf("task 1 should have run once, start to end:\n%s", l)
	}
}
