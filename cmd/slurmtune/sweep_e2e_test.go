package main

import (
	"encoding/json"
	"fmt"
	"maps"
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

// sweepPipeline writes the tiny example with its paths made absolute and
// sweepYAML appended (a sweep's keys have dots, which --set cannot say).
func sweepPipeline(t testing.TB, dir, sweepYAML string) string {
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

// badSweep writes a sweep whose grid names a key that does not exist, and
// returns its path and the one line every command must refuse it with.
func badSweep(t testing.TB, dir string) (file, line string) {
	file = sweepPipeline(t, dir, "sweep:\n  grid:\n    train.lora.rnk: [4, 8]\n  select: {metric: perplexity, goal: min}\n")
	return file, file + `:53:21: sweep.grid.train.lora.rnk: train.lora.rnk=4: unknown key "rnk" in train.lora (did you mean "r"?)` + "\n"
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
				Rank     int            `json:"rank"`
				Loss     *float64       `json:"final_train_loss"`
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
			if tk.Verdict != "failed" || tk.Train != "FAILED" || !strings.Contains(tk.Why, "train did not finish") ||
				!strings.Contains(tk.Why, "train[2] FAILED: TypeError") {
				t.Errorf("crashed task: %+v, want why with its train's error line", tk)
			}
			// The task's own log says why it crashed, and status has that line.
			for _, st := range run.Stages {
				if st.Name == "train[2]" && !strings.HasPrefix(st.Error, "TypeError") {
					t.Errorf("train[2]'s error line %q, want the payload's TypeError", st.Error)
				}
			}
			if l := slurmtune(t, db, "logs", sub.Run, "train[2]"); l.code != 0 || !strings.Contains(l.stdout, "TypeError") {
				t.Errorf("logs RUN train[2]: exit %d:\n%s%s", l.code, l.stdout, l.stderr)
			}
		case 3:
			if tk.Verdict != "failed" || !strings.Contains(tk.Why, "perplexity") || !strings.Contains(tk.Why, "200") {
				t.Errorf("gated task: %+v", tk)
			}
		default:
			if tk.Verdict != "passed" || tk.Metric == nil || *tk.Metric != ppl[tk.Task] {
				t.Errorf("passing task %+v, want metric %g", tk, ppl[tk.Task])
			}
			// Each task's curve is read from its own metrics file.
			if tk.Loss == nil || (tk.Task == best) != (tk.Rank == 1) {
				t.Errorf("passing task %+v: want its final train loss, and rank 1 for the winner", tk)
			}
		}
	}
	m := slurmtune(t, db, "metrics", sub.Run, "--stage", "train[1]", "--name", "loss", "--csv", "--no-sync")
	if m.code != 0 || strings.Count(m.stdout, "\n") < 3 {
		t.Errorf("metrics of train[1]: exit %d:\n%s%s", m.code, m.stdout, m.stderr)
	}
	cmp := slurmtune(t, db, "compare", sub.Run, "--no-sync")
	if lines := strings.Split(cmp.stdout, "\n"); cmp.code != 0 || !strings.Contains(cmp.stdout, "RANK") ||
		!regexp.MustCompile(`(?m)^1\s+`+strconv.Itoa(best)+`\s`).MatchString(cmp.stdout) {
		t.Errorf("compare of the sweep run: exit %d, want its tasks best first:\n%s%s (%d lines)", cmp.code, cmp.stdout, cmp.stderr, len(lines))
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

	// retry --task 2 resubmits that task alone (a one-task array keeping
	// its id), then select and deploy; the other tasks keep their jobs.
	jobsBefore := map[string]string{}
	for _, st := range run.Stages {
		jobsBefore[st.Name] = st.JobID
	}
	rr := slurmtune(t, db, "retry", sub.Run, "--task", "2", "--json")
	var re submitJSON
	if err := json.Unmarshal([]byte(rr.stdout), &re); rr.code != 0 || err != nil {
		t.Fatalf("retry --task 2: exit %d %v: %s %s", rr.code, err, rr.stdout, rr.stderr)
	}
	if len(re.Jobs) != 4 || re.Jobs["train[2]"] == "" || re.Jobs["eval[2]"] == "" || re.Jobs["select"] == "" || re.Jobs["deploy"] == "" {
		t.Fatalf("retry --task 2 submitted %v, want train[2], eval[2], select and deploy", re.Jobs)
	}
	s = waitEnded(t, db, sub.Run, 4*time.Minute)
	for _, st := range s.Runs[0].Stages {
		switch st.Name {
		case "train[2]", "eval[2]", "select", "deploy":
			if st.JobID == jobsBefore[st.Name] {
				t.Errorf("%s kept job %s after the retry", st.Name, st.JobID)
			}
			if strings.Contains(st.Name, "[") && !strings.HasSuffix(st.JobID, "_2") {
				t.Errorf("%s job %s is not task 2 of an array", st.Name, st.JobID)
			}
		default:
			if st.JobID != jobsBefore[st.Name] {
				t.Errorf("%s was resubmitted (%s -> %s): only task 2 was retried", st.Name, jobsBefore[st.Name], st.JobID)
			}
		}
	}
	if st := s.Runs[0].State; st != "SUCCEEDED" {
		t.Errorf("after the retry the run is %s", st)
	}
	if sw := sweepStatusOf(t, db, sub.Run).Runs[0].Sweep; sw.Winner == nil || *sw.Winner != best {
		t.Errorf("after the retry the winner is %v, want %d", sw.Winner, best)
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

// TestE2EHFSweepServesWinner sweeps the demo pipeline (examples/hf-tiny:
// HF Trainer + DeepSpeed ZeRO-2) over 3 learning rates x 2 batch sizes: one
// train array and one eval array of 6 tasks, 2 at a time (a task is 1 node
// x 2 ranks). The winner is the task with the lowest perplexity among the
// tasks' own eval reports, and it is what the router serves: the serving
// job's model is the winner's final checkpoint.
func TestE2EHFSweepServesWinner(t *testing.T) {
	slurmtest.RequireCluster(t)
	env := payloadEnv(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	state := filepath.Join(tmp, "deploy", "hf-sweep.json")
	tr := startTestRouter(t, state)
	b, err := os.ReadFile(hfPipeline(t))
	if err != nil {
		t.Fatal(err)
	}
	hf := filepath.Join(repoRoot(t), "examples", "hf-tiny")
	src := strings.NewReplacer("config: model/config.json", "config: "+filepath.Join(hf, "model", "config.json"),
		"[../tiny/data/*.jsonl]", "["+filepath.Join(repoRoot(t), "examples", "tiny", "data")+"/*.jsonl]",
		"../../scripts/payloads/", filepath.Join(repoRoot(t), "scripts", "payloads")+"/").Replace(string(b))
	file := filepath.Join(tmp, "hf-sweep.yaml")
	if err := os.WriteFile(file, []byte(src+`sweep:
  grid:
    train.hyperparameters.learning_rate: [0.001, 0.003, 0.01]
    train.hyperparameters.per_device_train_batch_size: [2, 4]
  max_parallel: 2
  select: {metric: perplexity, goal: min}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	py := filepath.Join(env, "bin", "python")
	sub := submitPipeline(t, db, file, filepath.Join(tmp, "runs"), hfSets(env, 4, 2, "srun", 2, false,
		"name=hf-sweep", "model.name=hf-sweep", "train.nodes=1",
		"deploy.strategy=blue-green",
		fmt.Sprintf(`deploy.serve.command=[%q, %q, "--model", "{model}", "--port", "{port}", "--name", "{name}"]`,
			py, filepath.Join(repoRoot(t), "scripts", "payloads", "hf_serve.py")),
		"deploy.serve.mem=1G", "deploy.serve.startup_timeout=3m", "deploy.serve.time=10m",
		"deploy.router.state="+state, "deploy.rollback_window=4s",
		`deploy.smoke.prompts=[{prompt: "The training job", max_tokens: 4}]`, "deploy.smoke.latency=30s")...)
	if got := slurmtest.JobField(t, sub.Jobs["eval"]+"_5", "Dependency"); !strings.HasPrefix(got, "aftercorr:"+sub.Jobs["train"]+"_*") {
		t.Errorf("eval array dependency %q", got)
	}
	s := waitEnded(t, db, sub.Run, 15*time.Minute)
	run := s.Runs[0]
	if run.State != "SUCCEEDED" {
		t.Fatalf("run %s: %+v", run.State, run.Stages)
	}
	trainJobs := map[string]bool{}
	for _, st := range run.Stages {
		if strings.HasPrefix(st.Name, "train[") {
			trainJobs[strings.SplitN(st.JobID, "_", 2)[0]] = true
		}
	}
	if len(trainJobs) != 1 {
		t.Errorf("train tasks ran as jobs of %d arrays, want one: %v", len(trainJobs), trainJobs)
	}
	best, bestPPL := -1, 0.0
	for k := 0; k < 6; k++ {
		p := evalPerplexity(t, filepath.Join(run.RunDir, "tasks", strconv.Itoa(k)))
		if best < 0 || p < bestPPL {
			best, bestPPL = k, p
		}
	}
	sw := sweepStatusOf(t, db, sub.Run).Runs[0].Sweep
	if sw.Winner == nil || *sw.Winner != best {
		t.Fatalf("winner %v, want task %d (perplexity %g): %+v", sw.Winner, best, bestPPL, sw.Tasks)
	}
	model, text := complete(t, tr.url, "The scheduler")
	if model != "hf-sweep" {
		t.Errorf("completion from model %q, want hf-sweep", model)
	}
	t.Logf("winner task %d (perplexity %g); completion through the router: %q", best, bestPPL, text)
	job := serveJobOf(deployStatusOf(t, db, "hf-sweep"), sub.Run)
	if job == "" {
		t.Fatalf("no serving job for %s in the deployment history", sub.Run)
	}
	t.Cleanup(func() { _ = exec.Command("scancel", job).Run() })
	serve, err := os.ReadFile(filepath.Join(run.RunDir, "serve.sbatch"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`deploy serve --run-dir "\$SLURMTUNE_RUN_DIR" --model '?([^' ]+)'?`).FindSubmatch(serve)
	if m == nil {
		t.Fatalf("serve.sbatch names no --model:\n%s", serve)
	}
	served, err := filepath.EvalSymlinks(string(m[1]))
	want := filepath.Join(run.RunDir, "tasks", strconv.Itoa(best), "checkpoints", "final")
	if real, rerr := filepath.EvalSymlinks(want); rerr == nil {
		want = real
	}
	if err != nil || served != want {
		t.Errorf("the serving job's model is %s (%v), want the winner's %s", served, err, want)
	}
}

// TestE2ESweepValidate: validate refuses a swept key that does not exist
// (one line at the key, exit 2, nothing submitted) and, with --cluster, a
// sweep of more tasks than the dev cluster's MaxArraySize (1001), read
// from scontrol show config.
func TestE2ESweepValidate(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	bad, want := badSweep(t, tmp)
	r := slurmtune(t, db, "validate", bad)
	if r.code != 2 || r.stderr != want {
		t.Errorf("validate: exit %d\n got %q\nwant %q", r.code, r.stderr, want)
	}
	if r := slurmtune(t, db, "submit", bad); r.code != 2 || r.stderr != want {
		t.Errorf("submit: exit %d %q, want the same line and exit 2", r.code, r.stderr)
	}
	big := filepath.Join(tmp, "big", "sweep.yaml")
	if err := os.MkdirAll(filepath.Dir(big), 0o755); err != nil {
		t.Fatal(err)
	}
	big = sweepPipeline(t, filepath.Dir(big), "sweep:\n  grid:\n    train.hyperparameters.seed: {from: 1, to: 1002, step: 1}\n  select: {metric: perplexity, goal: min}\n")
	if r := slurmtune(t, db, "validate", big); r.code != 0 {
		t.Errorf("validate without --cluster: exit %d %s", r.code, r.stderr)
	}
	r = slurmtune(t, db, "validate", "--cluster", big)
	if r.code != 2 || !strings.Contains(r.stderr, big+":52:3: sweep: 1002 tasks is more than the cluster's MaxArraySize (1001, from scontrol show config)") {
		t.Errorf("validate --cluster: exit %d %s", r.code, r.stderr)
	}
}

// TestRenderSweep: render of a sweep writes what submit queues: the train
// and eval array scripts with their --array, each task's own files under
// tasks/K, select and deploy, and lists how each job waits for the one
// before it; a bad sweep writes nothing and names FILE:LINE:COL.
func TestRenderSweep(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	file := sweepPipeline(t, tmp, "sweep:\n  max_parallel: 2\n  grid:\n    train.hyperparameters.lr: [0.001, 0.01, 0.1]\n  select: {metric: perplexity, goal: min}\n")
	out := filepath.Join(tmp, "out")
	r := slurmtune(t, db, "render", file, "-o", out, "--json")
	if r.code != 0 {
		t.Fatalf("render: exit %d: %s", r.code, r.stderr)
	}
	var res struct {
		RunDir       string            `json:"run_dir"`
		Files        map[string]string `json:"files"`
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("render --json: %v\n%s", err, r.stdout)
	}
	wantDeps := map[string]string{"train": "afterok:prep", "eval": "aftercorr:train", "select": "afterany:eval", "deploy": "afterok:select"}
	if !maps.Equal(res.Dependencies, wantDeps) {
		t.Errorf("dependencies %v, want %v", res.Dependencies, wantDeps)
	}
	read := func(rel string) string {
		t.Helper()
		if res.Files[rel] != filepath.Join(out, rel) && res.Files[strings.TrimSuffix(rel, ".sbatch")] != filepath.Join(out, rel) {
			t.Errorf("render --json does not list %s: %v", rel, res.Files)
		}
		b, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	for _, stage := range []string{"train", "eval"} {
		s := read(stage + ".sbatch")
		if !strings.Contains(s, "#SBATCH --array=0-2%2\n") || !strings.Contains(s, res.RunDir+"/tasks\"/$SLURM_ARRAY_TASK_ID/"+stage+".sbatch\"") {
			t.Errorf("%s array script:\n%s", stage, s)
		}
	}
	for _, stage := range []string{"prep", "select", "deploy"} {
		if s := read(stage + ".sbatch"); strings.Contains(s, "--array") {
			t.Errorf("%s.sbatch is an array:\n%s", stage, s)
		}
	}
	for k, lr := range []string{"0.001", "0.01", "0.1"} {
		task := fmt.Sprintf("tasks/%d/", k)
		if hp := read(task + "hyperparameters.json"); !strings.Contains(hp, `"lr": `+lr) {
			t.Errorf("task %d's hyperparameters:\n%s", k, hp)
		}
		if s := read(task + "train.sbatch"); !strings.Contains(s, "SLURMTUNE_RUN_DIR="+res.RunDir+"/"+task[:len(task)-1]+"\n") {
			t.Errorf("task %d's train script:\n%s", k, s)
		}
		read(task + "eval.sbatch")
		read(task + "pipeline.yaml")
	}
	if _, err := os.Stat(filepath.Join(out, "tasks", "3")); err == nil {
		t.Error("a fourth task directory")
	}
	read("sweep.json")

	bad, want := badSweep(t, t.TempDir())
	r = slurmtune(t, db, "render", bad, "-o", filepath.Join(tmp, "bad"))
	if r.code != 2 || r.stderr != want {
		t.Errorf("render of a bad sweep: exit %d\n got %q\nwant %q", r.code, r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(tmp, "bad")); err == nil {
		t.Error("render of a bad sweep created its output directory")
	}
	// Tasks asking for different resources: refused, nothing written.
	mixed := sweepPipeline(t, t.TempDir(), "sweep:\n  grid:\n    train.nodes: [1, 2]\n  select: {metric: perplexity, goal: min}\n")
	r = slurmtune(t, db, "render", mixed, "-o", filepath.Join(tmp, "mixed"))
	if r.code == 0 || !strings.Contains(r.stderr, "sweep task 1 (train.nodes=2) changes the train job's Slurm options") {
		t.Errorf("render of tasks with different resources: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(tmp, "mixed")); err == nil {
		t.Error("render of tasks with different resources created its output directory")
	}
}

// TestE2ESweepRetriesOneTimedOutTask: a train retries policy (TIMEOUT, max
// 1) applies per task. Task 1 stalls past its 1-minute limit on its first
// attempt only (the payload's stall_once); slurmtune resubmits train[1] alone
// as task 1 of a new one-task array, its eval after it, and select and
// deploy again; task 0 keeps its jobs, and the run succeeds with both tasks
// competing.
func TestE2ESweepRetriesOneTimedOutTask(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	file := sweepPipeline(t, tmp, "sweep:\n  grid:\n    train.hyperparameters.stall_once: [0, 600]\n  select: {metric: perplexity, goal: min}\n")
	sub := submitPipeline(t, db, file, filepath.Join(tmp, "runs"), "train.nodes=1", "train.tasks_per_node=1",
		"train.hyperparameters.max_steps=20", "eval.gates.perplexity.max=200",
		"train.time=1", "train.retries.max=1", "train.retries.on=[TIMEOUT]")
	train, ev := sub.Jobs["train"], sub.Jobs["eval"]
	s := waitEnded(t, db, sub.Run, 5*time.Minute)
	run := s.Runs[0]
	got := map[string]string{}
	for _, st := range run.Stages {
		got[st.Name] = st.JobID
		if st.State != "COMPLETED" {
			t.Errorf("stage %s (job %s) %s, want COMPLETED", st.Name, st.JobID, st.State)
		}
	}
	if run.State != "SUCCEEDED" {
		t.Errorf("run %s, want SUCCEEDED", run.State)
	}
	// Task 0 was not touched.
	if got["train[0]"] != train+"_0" || got["eval[0]"] != ev+"_0" {
		t.Errorf("task 0's jobs %s %s, want its first ones %s_0 %s_0", got["train[0]"], got["eval[0]"], train, ev)
	}
	// Task 1's first train job timed out (as Slurm's accounting says), and
	// it ran again as task 1 of a new array, its eval after it.
	if st := strings.TrimSpace(slurmtest.Run(t, "sacct", "-X", "-n", "-P", "-o", "State", "-j", train+"_1")); st != "TIMEOUT" {
		t.Errorf("sacct: train[1]'s first job %s_1 is %q, want TIMEOUT", train, st)
	}
	for name, first := range map[string]string{"train[1]": train + "_1", "eval[1]": ev + "_1", "select": sub.Jobs["select"], "deploy": sub.Jobs["deploy"]} {
		if got[name] == first || got[name] == "" {
			t.Errorf("%s kept job %q: want a new attempt", name, got[name])
		}
	}
	if !strings.HasSuffix(got["train[1]"], "_1") || !strings.HasSuffix(got["eval[1]"], "_1") {
		t.Errorf("retried task 1 as %s and %s, want task 1 of new arrays", got["train[1]"], got["eval[1]"])
	}
	if st := strings.TrimSpace(slurmtest.Run(t, "sacct", "-X", "-n", "-P", "-o", "State", "-j", got["train[1]"])); st != "COMPLETED" {
		t.Errorf("sacct: train[1]'s retry %s is %q, want COMPLETED", got["train[1]"], st)
	}
	log := slurmtune(t, db, "logs", sub.Run, "train[1]").stdout
	if !strings.Contains(log, "stall_once: first attempt") || !strings.Contains(log, "step 20/20") {
		t.Errorf("train[1]'s log lacks its stalled first attempt or its finished retry:\n%s", log)
	}
	// Selection saw both tasks.
	sw := sweepStatusOf(t, db, sub.Run).Runs[0].Sweep
	if sw.Winner == nil {
		t.Fatalf("no winner: %+v", sw)
	}
	for _, tk := range sw.Tasks {
		if tk.Verdict != "passed" || tk.Metric == nil {
			t.Errorf("task %+v, want passed with its metric", tk)
		}
	}
}
