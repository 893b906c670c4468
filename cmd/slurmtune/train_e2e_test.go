package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// submitTiny submits the tiny pipeline with extra --set overrides and
// returns the run id and the jobs.
func submitTiny(t *testing.T, db, workdir string, sets ...string) submitJSON {
	t.Helper()
	return submitPipeline(t, db, tinyPipeline(t), workdir, sets...)
}

// submitPipeline submits a pipeline file with its workdir and extra --set
// overrides and returns the run id and the jobs.
func submitPipeline(t *testing.T, db, file, workdir string, sets ...string) submitJSON {
	t.Helper()
	args := []string{"submit", file, "--json", "--set", "workdir=" + workdir}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	r := slurmtune(t, db, args...)
	if r.code != 0 {
		t.Fatalf("submit: exit %d: %s", r.code, r.stderr)
	}
	var sub submitJSON
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil {
		t.Fatalf("submit --json: %v\n%s", err, r.stdout)
	}
	return sub
}

// trainLog is the train stage's log, read from the run directory.
func trainLog(t *testing.T, db, run string) string {
	t.Helper()
	s := statusOf(t, db, run)
	b, _ := os.ReadFile(filepath.Join(s.Runs[0].RunDir, "logs", "train.log"))
	return string(b)
}

// waitLog waits until the train log holds want.
func waitLog(t *testing.T, db, run, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(trainLog(t, db, run), want) {
		if time.Now().After(deadline) {
			t.Fatalf("train log lacks %q after %s:\n%s", want, limit, trainLog(t, db, run))
		}
		time.Sleep(time.Second)
	}
}

// startNow waits for a requeued job to be pending again and clears the
// begin time Slurm gives it (its credential lifetime, 120 s here), as an
// operator would; the job cannot do that itself, it has ended by then.
func startNow(t *testing.T, job string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("squeue", "-h", "-j", job, "-o", "%T %r").Output()
		if strings.HasPrefix(string(out), "PENDING BeginTime") {
			// slurmctld revokes the job's credential at the requeue, with a
			// one-second clock, and kills a start within that second ("Job
			// credential revoked"): let it pass.
			time.Sleep(2 * time.Second)
			if exec.Command("scontrol", "update", "JobId="+job, "StartTime=now").Run() == nil {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("job %s was not requeued (pending, waiting for its begin time) within 2 minutes", job)
}

// preemptibleSets is a preemptible tiny run long enough to interrupt on a
// busy 2-core machine: 2 nodes x 2 CPU tasks, steps of at least 50 ms of
// an even smaller model, a checkpoint every 20 steps. It is about the
// requeue, not the model: the perplexity gate is relaxed.
func preemptibleSets(steps int) []string {
	return []string{"train.preemptible=true", "train.hyperparameters.max_steps=" + strconv.Itoa(steps),
		"train.hyperparameters.step_sleep=0.05", "train.checkpoint.every_steps=20",
		"train.hyperparameters.d_model=32", "train.hyperparameters.n_layers=1", "train.hyperparameters.seq_len=32",
		"train.hyperparameters.batch_size=4", "eval.gates.perplexity.max=1000"}
}

type restartStatus struct {
	Runs []struct {
		Stages []struct {
			Name              string `json:"name"`
			LastRestartReason string `json:"last_restart_reason"`
		} `json:"stages"`
	} `json:"runs"`
}

// TestE2ETrainRequeueResumes stops a preemptible training run half-way
// with the stop signal, as Slurm does before a time limit or a preemption
// hook does: every rank checkpoints, the job requeues itself under the same
// job id, resumes from its last checkpoint, finishes all 100 steps, and
// eval (which waited on that job id) runs.
func TestE2ETrainRequeueResumes(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	sub := submitTiny(t, db, filepath.Join(tmp, "runs"), preemptibleSets(100)...)
	job := sub.Jobs["train"]
	waitLog(t, db, sub.Run, "checkpoint step 20", 3*time.Minute)
	slurmtest.Run(t, "scancel", "--signal=USR2", "--batch", job)
	startNow(t, job)
	s := waitEnded(t, db, sub.Run, 4*time.Minute)
	log := trainLog(t, db, sub.Run)
	run := s.Runs[0]
	if run.State != "SUCCEEDED" {
		t.Fatalf("run %s, want SUCCEEDED: %+v\ntrain log:\n%s", run.State, run.Stages, log)
	}
	for _, st := range run.Stages {
		if st.JobID != sub.Jobs[st.Name] || st.State != "COMPLETED" {
			t.Errorf("stage %+v, want COMPLETED as job %s", st, sub.Jobs[st.Name])
		}
		if st.Name == "train" && st.Restarts < 1 {
			t.Errorf("train restarts = %d, want at least 1", st.Restarts)
		}
	}
	m := regexp.MustCompile(`resumed from step (\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("train log lacks resumed from step N:\n%s", log)
	}
	if n, _ := strconv.Atoi(m[1]); n < 20 {
		t.Errorf("resumed from step %d, want at least the checkpoint at 20", n)
	}
	for _, want := range []string{"starting from step 0", "world size 4", "asking every rank to checkpoint and stop",
		"requeueing job " + job + " after a stop request", "restart 1 at", "step 100/100", "done: 100 steps"} {
		if !strings.Contains(log, want) {
			t.Errorf("train log lacks %q:\n%s", want, log)
		}
	}
	if _, err := os.Stat(filepath.Join(run.RunDir, "eval", "eval_report.json")); err != nil {
		t.Errorf("eval did not run: %v", err)
	}
	var rs restartStatus
	if err := json.Unmarshal([]byte(slurmtune(t, db, "status", sub.Run, "--json", "--no-sync").stdout), &rs); err != nil {
		t.Fatal(err)
	}
	for _, st := range rs.Runs[0].Stages {
		if st.Name == "train" && st.LastRestartReason == "" {
			t.Errorf("status: train has restarts but no last_restart_reason")
		}
	}
}

// TestE2ETrainMaxRestartsFails: with train.max_restarts 0, a job that Slurm
// requeues (scontrol requeue, as after a node failure or a preemption)
// fails when it starts again, saying why, and the rest of the chain is
// cancelled.
func TestE2ETrainMaxRestartsFails(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	sub := submitTiny(t, db, filepath.Join(tmp, "runs"), append(preemptibleSets(100000), "train.max_restarts=0")...)
	job := sub.Jobs["train"]
	waitLog(t, db, sub.Run, "checkpoint step 20", 3*time.Minute)
	slurmtest.Run(t, "scontrol", "requeue", job)
	startNow(t, job)
	s := waitEnded(t, db, sub.Run, 4*time.Minute)
	log := trainLog(t, db, sub.Run)
	run := s.Runs[0]
	if run.State != "FAILED" {
		t.Errorf("run %s, want FAILED", run.State)
	}
	for _, st := range run.Stages {
		switch st.Name {
		case "train":
			if st.State != "FAILED" || st.JobID != job || st.ExitCode == nil || *st.ExitCode != 1 {
				t.Errorf("train: %+v, want FAILED with exit 1 as job %s", st, job)
			}
		case "eval", "deploy":
			if st.State != "CANCELLED" {
				t.Errorf("%s: %+v, want CANCELLED", st.Name, st)
			}
		}
	}
	if want := "slurmtune: FAILED: restart 1 of the train stage is more than train.max_restarts (0): not training again"; !strings.Contains(log, want) {
		t.Errorf("train log lacks %q:\n%s", want, log)
	}
	// Slurm's own requeue is not a stop request: the script did not requeue again.
	if strings.Contains(log, "slurmtune: requeueing job") {
		t.Errorf("the script requeued the job itself:\n%s", log)
	}
}

// TestE2EPreemptibleCancelDoesNotRequeue: scancel of a preemptible job ends
// it; it is not requeued.
func TestE2EPreemptibleCancelDoesNotRequeue(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	sub := submitTiny(t, db, filepath.Join(tmp, "runs"), preemptibleSets(100000)...)
	job := sub.Jobs["train"]
	waitLog(t, db, sub.Run, "checkpoint step 20", 3*time.Minute)
	slurmtest.Run(t, "scancel", job)
	s := waitEnded(t, db, sub.Run, 2*time.Minute)
	for _, st := range s.Runs[0].Stages {
		if st.Name == "train" && (st.State != "CANCELLED" || st.Restarts != 0) {
			t.Errorf("train: %+v, want CANCELLED without restarts", st)
		}
	}
	time.Sleep(3 * time.Second)
	if sq := slurmtest.Run(t, "squeue", "-h", "--states=all", "-O", "State:0,RestartCnt:0", "-j", job); !strings.HasPrefix(strings.TrimSpace(sq), "CANCELLED") {
		t.Errorf("squeue says job %s is %q", job, sq)
	}
	if log := trainLog(t, db, sub.Run); strings.Contains(log, "slurmtune: requeueing job") {
		t.Errorf("a cancelled job requeued itself:\n%s", log)
	}
}

// TestE2EValidateCluster checks pipelines against the dev cluster: partition
// debug (default, no limit) and short (MaxTime 30 min), 2 nodes of 8 CPUs
// and 4 GPUs.
func TestE2EValidateCluster(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	db := filepath.Join(t.TempDir(), "st.db")
	file := tinyPipeline(t)
	tests := []struct {
		name string
		sets []string
		code int
		want []string // stderr lines (substrings)
	}{
		{"valid", nil, 0, nil},
		{"chained over short's limit", []string{"cluster.partition=short", "train.time=2h", "train.chain_time_limit=true"}, 0, nil},
		{"above short's limit", []string{"cluster.partition=short", "train.time=2h"}, 2,
			[]string{file + ": --set train.time: 02:00:00 is above the MaxTime of partition short (00:30:00) (or set train.chain_time_limit: true"}},
		{"unknown partition", []string{"cluster.partition=nope"}, 2,
			[]string{`cluster.partition: the cluster has no partition "nope" (it has: debug, short)`}},
		{"too many nodes and GPUs", []string{"train.nodes=3", "train.gpus_per_node=8", "train.tasks_per_node=8"}, 2,
			[]string{"train.nodes: 3 nodes with 8 GPUs, 8 CPUs and 2048M of memory each do not fit the default partition debug: 0 of its 2 nodes have that"}},
		{"unknown account", []string{"cluster.account=no_such_account"}, 2, []string{`cluster.account: the cluster has no account "no_such_account"`}},
	}
	for _, tt := range tests {
		args := []string{"validate", file, "--cluster"}
		for _, s := range tt.sets {
			args = append(args, "--set", s)
		}
		r := slurmtune(t, db, args...)
		if r.code != tt.code {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", tt.name, r.code, tt.code, r.stdout, r.stderr)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tt.name, w, r.stderr)
			}
		}
	}
	// A controller that cannot be reached: exit 1, one line.
	conf, err := os.ReadFile(os.Getenv("SLURM_CONF"))
	if err != nil {
		t.Fatal(err)
	}
	dead := regexp.MustCompile(`(?m)^(SlurmctldHost|SlurmctldPort)=.*$`).ReplaceAllString(string(conf), "")
	dead += "\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1\n"
	deadConf := filepath.Join(t.TempDir(), "slurm.conf")
	if err := os.WriteFile(deadConf, []byte(dead), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "validate", file, "--cluster")
	cmd.Env = append(os.Environ(), "SLURMTUNE_DB="+db, "SLURM_CONF="+deadConf)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("validate --cluster without a controller: %v, want exit 1 and one line\n%s", err, out)
	}
}

// TestRenderWritesDSConfig: render puts ds_config.json beside train.sbatch
// when DeepSpeed is on.
func TestRenderWritesDSConfig(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "st.db")
	r := slurmtune(t, db, "render", tinyPipeline(t), "-o", filepath.Join(dir, "out"), "--set", "train.launcher=deepspeed",
		"--set", "train.deepspeed.zero_stage=2", "--set", "train.deepspeed.micro_batch_size=2", "--set", "train.deepspeed.offload_optimizer.device=cpu")
	if r.code != 0 {
		t.Fatalf("render: exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out", "ds_config.json"))
	if err != nil {
		t.Fatalf("no ds_config.json: %v (stdout %s)", err, r.stdout)
	}
	var cfg struct {
		TrainBatchSize int `json:"train_batch_size"`
		Zero           struct {
			Stage   int `json:"stage"`
			Offload struct {
				Device string `json:"device"`
			} `json:"offload_optimizer"`
		} `json:"zero_optimization"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.TrainBatchSize != 8 || cfg.Zero.Stage != 2 || cfg.Zero.Offload.Device != "cpu" {
		t.Errorf("ds_config.json: %+v, %v\n%s", cfg, err, b)
	}
	if !strings.Contains(r.stdout, filepath.Join(dir, "out", "ds_config.json")) {
		t.Errorf("render did not list ds_config.json:\n%s", r.stdout)
	}
	// Without DeepSpeed: none.
	r = slurmtune(t, db, "render", tinyPipeline(t), "-o", filepath.Join(dir, "plain"))
	if _, err := os.Stat(filepath.Join(dir, "plain", "ds_config.json")); r.code != 0 || err == nil {
		t.Errorf("render without DeepSpeed: exit %d, ds_config.json: %v", r.code, err)
	}
	// An invalid DeepSpeed combination: exit 2, FILE:LINE:COL or --set.
	r = slurmtune(t, db, "validate", tinyPipeline(t), "--set", "train.deepspeed.zero_stage=1", "--set", "train.deepspeed.offload_param.device=cpu")
	if r.code != 2 || !strings.Contains(r.stderr, "train.deepspeed.offload_param.device: parameter offload needs ZeRO stage 3; stage is 1") {
		t.Errorf("validate: exit %d: %s", r.code, r.stderr)
	}
}

// TestPayloadsCompile: both payloads are valid Python (the HF one cannot run
// here: no transformers or deepspeed in Debian).
func TestPayloadsCompile(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		slurmtest.Missing(t, "python3 not found")
	}
	for _, f := range []string{"train_hf.py", "tiny_lm.py", "tiny_serve.py", "hf_serve.py"} {
		src := filepath.Join(repoRoot(t), "scripts", "payloads", f)
		code := "import sys, py_compile; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"
		if out, err := exec.Command(py, "-c", code, src, filepath.Join(t.TempDir(), f+"c")).CombinedOutput(); err != nil {
			t.Errorf("py_compile %s: %v\n%s", f, err, out)
		}
	}
}
