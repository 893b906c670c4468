package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/serve"
	"github.com/slurmtune/slurmtune/serve/deploy"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
	"github.com/slurmtune/slurmtune/store"
)

// trainTinyCheckpoint trains the tiny model on this host (one process, no
// Slurm) into dir/checkpoints/final, with dir/data/train.jsonl as its
// training split, so deploy tests need not run the whole pipeline.
func trainTinyCheckpoint(t *testing.T, dir string, steps int) string {
	t.Helper()
	root := repoRoot(t)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	corpus, err := os.ReadFile(filepath.Join(root, "examples", "tiny", "data", "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(corpus), "\n")
	if err := os.WriteFile(filepath.Join(dir, "data", "train.jsonl"), []byte(strings.Join(lines[:min(400, len(lines))], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	hp := filepath.Join(dir, "hparams.json")
	if err := os.WriteFile(hp, fmt.Appendf(nil, `{"max_steps": %d, "batch_size": 8, "checkpoint_every": 1000}`, steps), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", filepath.Join(root, "scripts", "payloads", "tiny_lm.py"), "train")
	cmd.Env = append(os.Environ(), "SLURMTUNE_DATA_DIR="+filepath.Join(dir, "data"), "SLURMTUNE_CHECKPOINT_DIR="+filepath.Join(dir, "checkpoints"),
		"SLURMTUNE_HPARAMS="+hp, "WORLD_SIZE=1", "RANK=0", "LOCAL_RANK=0", "OMP_NUM_THREADS=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("train the tiny model: %v\n%s", err, out)
	}
	return filepath.Join(dir, "checkpoints", "final")
}

// testRouter runs the router in this process on loopback, watching state
// and publishing its stats next to it (deploy.StatsWriter), as a deploy
// stage on a compute node needs.
type testRouter struct {
	url    string
	router *serve.Router
	paths  deploy.Paths
	// log and access are the router's log and access log files.
	log, access string
}

// logs returns the router's log lines and the access log lines of requests
// that did not end with 200.
func (tr *testRouter) logs() string {
	logData, _ := os.ReadFile(tr.log)
	acc, _ := os.ReadFile(tr.access)
	var bad []string
	for _, line := range strings.Split(string(acc), "\n") {
		if line != "" && !strings.Contains(line, `"status":200`) {
			bad = append(bad, line)
		}
	}
	return fmt.Sprintf("router log:\n%s\naccess log, not 200:\n%s", logData, strings.Join(bad, "\n"))
}

func startTestRouter(t *testing.T, state string) *testRouter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRouter{url: "http://" + ln.Addr().String(), paths: deploy.PathsFor(state),
		log: filepath.Join(filepath.Dir(state), "router.log"), access: filepath.Join(filepath.Dir(state), "access.log")}
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(tr.log)
	if err != nil {
		t.Fatal(err)
	}
	accessFile, err := os.Create(tr.access)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- serve.RunRouter(ctx, serve.Options{Listener: ln, StatePath: state, HealthInterval: 500 * time.Millisecond, PromptLog: tr.paths.Prompts,
			ShutdownTimeout: 5 * time.Second, StatsWindow: 30 * time.Second,
			Logger: slog.New(slog.NewTextHandler(logFile, nil)), AccessLog: accessFile,
			OnReady: func(r *serve.Router, _ net.Addr) {
				tr.router = r
				go deploy.StatsWriter(ctx, r, tr.paths.Stats, 500*time.Millisecond, nil)
				close(ready)
			}})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("router: %v", err)
	}
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
		logFile.Close()
		accessFile.Close()
	})
	return tr
}

// loadLoop sends completions through the router from workers until
// stopped, counting answers by served model name and failures.
type loadLoop struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	byModel  map[string]int
	failures []string
}

func startLoadLoop(url string, workers int) *loadLoop {
	l := &loadLoop{stop: make(chan struct{}), byModel: map[string]int{}}
	client := &http.Client{Timeout: 30 * time.Second}
	prompts := []string{"The training job", "A researcher saves", "The scheduler", "The login node"}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"prompt": %q, "max_tokens": 4}`, prompts[(w+i)%len(prompts)])
				resp, err := client.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
				var model, fail string
				if err != nil {
					fail = err.Error()
				} else {
					data, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					var out struct {
						Model   string `json:"model"`
						Choices []struct {
							Text string `json:"text"`
						} `json:"choices"`
					}
					if resp.StatusCode != 200 || rerr != nil || json.Unmarshal(data, &out) != nil || len(out.Choices) != 1 {
						fail = fmt.Sprintf("%s: status %d (read: %v): %s", time.Now().UTC().Format(time.StampMilli), resp.StatusCode, rerr, data)
					}
					model = out.Model
				}
				l.mu.Lock()
				if fail != "" {
					l.failures = append(l.failures, fail)
				} else {
					l.byModel[model]++
				}
				l.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *loadLoop) snapshot() (map[string]int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]int{}
	for k, v := range l.byModel {
		m[k] = v
	}
	return m, append([]string(nil), l.failures...)
}

func (l *loadLoop) finish() (map[string]int, []string) {
	close(l.stop)
	l.wg.Wait()
	return l.snapshot()
}

type deployStatusOut struct {
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
	Stable   *struct {
		Run    string `json:"run"`
		JobID  string `json:"job_id"`
		URL    string `json:"url"`
		Weight int    `json:"weight"`
	} `json:"stable"`
	Candidate *struct {
		Run    string `json:"run"`
		JobID  string `json:"job_id"`
		URL    string `json:"url"`
		Weight int    `json:"weight"`
	} `json:"candidate"`
	History []struct {
		Time   time.Time `json:"time"`
		Action string    `json:"action"`
		Reason string    `json:"reason"`
		From   *struct {
			Run   string `json:"run"`
			JobID string `json:"job_id"`
		} `json:"from"`
		To *struct {
			Run   string `json:"run"`
			JobID string `json:"job_id"`
		} `json:"to"`
	} `json:"history"`
}

func deployStatusOf(t *testing.T, db, name string) deployStatusOut {
	t.Helper()
	r := slurmtune(t, db, "deploy", "status", name, "--json")
	if r.code != 0 {
		t.Fatalf("deploy status: exit %d: %s", r.code, r.stderr)
	}
	var s deployStatusOut
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("deploy status --json: %v\n%s", err, r.stdout)
	}
	return s
}

// serveJobOf finds a run's serving job in the deployment history.
func serveJobOf(s deployStatusOut, run string) string {
	for _, h := range s.History {
		if h.To != nil && h.To.Run == run {
			return h.To.JobID
		}
		if h.From != nil && h.From.Run == run {
			return h.From.JobID
		}
	}
	return ""
}

func jobState(t *testing.T, id string) string {
	t.Helper()
	out := slurmtest.Run(t, "squeue", "-h", "--states=all", "-O", "State:0", "-j", id)
	return strings.TrimSpace(out)
}

// waitJobState polls squeue until the job is in state (CANCELLED shows
// after scancel once the job has left).
func waitJobState(t *testing.T, id, state string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := jobState(t, id)
		if strings.HasPrefix(got, state) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("job %s is %q, want %s", id, got, state)
			return
		}
		time.Sleep(time.Second)
	}
}

func complete(t *testing.T, url, prompt string) (string, string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(fmt.Sprintf(`{"prompt": %q, "max_tokens": 8}`, prompt)))
	if err != nil {
		t.Fatalf("completion through the router: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out struct {
		Model   string `json:"model"`
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(data, &out) != nil || len(out.Choices) != 1 {
		t.Fatalf("completion through the router: %d %s", resp.StatusCode, data)
	}
	return out.Model, out.Choices[0].Text
}

// TestE2EDeployStrategies deploys the tiny model behind a router on the dev
// cluster: a first blue-green deploy, a better model taking over blue-green
// under load with no failed request, a canary whose server fails half its
// requests rolled back on its own, and a candidate failing its smoke tests
// never getting traffic. One checkpoint pair is trained up front; the runs
// only deploy (prep, train and eval disabled, deploy.checkpoint).
func TestE2EDeployStrategies(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	name := "deploy-" + filepath.Base(filepath.Dir(tmp))[len("TestE2EDeployStrategies"):]
	start := time.Now()
	v1 := trainTinyCheckpoint(t, filepath.Join(tmp, "ckpt-v1"), 4)
	v2 := trainTinyCheckpoint(t, filepath.Join(tmp, "ckpt-v2"), 20)
	t.Logf("trained two checkpoints in %s", time.Since(start).Round(time.Second))

	state := filepath.Join(tmp, "router", "router.json")
	rt := startTestRouter(t, state)
	// Whatever happens, no job of this test outlives it (the serving jobs
	// also have a time limit, for a test process that is killed).
	t.Cleanup(func() {
		out, err := exec.Command("squeue", "-h", "--states=PENDING,RUNNING,CONFIGURING", "-O", "JobID:20,Comment:200").Output()
		if err != nil {
			t.Logf("cleanup: squeue: %v", err)
			return
		}
		var ids []string
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[1], "slurmtune:"+name+"-") {
				ids = append(ids, f[0])
			}
		}
		if len(ids) > 0 {
			t.Logf("cleanup: cancelling jobs %v", ids)
			_ = exec.Command("scancel", ids...).Run()
		}
	})

	deployRun := func(model, ckpt string, extra ...string) (string, result) {
		t.Helper()
		args := append([]string{"submit", tinyPipeline(t), "--wait", "--interval", "1s"}, deploySets(t, name, tmp, state, model, ckpt, extra...)...)
		t0 := time.Now()
		r := slurmtune(t, db, args...)
		run := strings.TrimSpace(strings.SplitN(r.stdout, "\n", 2)[0])
		t.Logf("deploy of %s (run %s): exit %d in %s", model, run, r.code, time.Since(t0).Round(time.Second))
		if r.code != 0 && run != "" {
			logs := slurmtune(t, db, "logs", run, "deploy")
			t.Logf("deploy log of %s:\n%s", run, logs.stdout)
		}
		return run, r
	}

	// 1. The first deploy: the model is served behind the router.
	runA, r := deployRun("tiny-v1", v1)
	if r.code != 0 {
		t.Fatalf("first deploy: exit %d\n%s", r.code, r.stderr)
	}
	model, text := complete(t, rt.url, "The training job")
	if model != "tiny-v1" || text == "" {
		t.Errorf("completion through the router: model %q text %q", model, text)
	}
	s := deployStatusOf(t, db, name)
	if s.Stable == nil || s.Stable.Run != runA || s.Stable.Weight != 100 || s.Candidate != nil || s.Strategy != "blue-green" {
		t.Fatalf("status after the first deploy: %+v", s)
	}
	jobA := s.Stable.JobID
	if c := slurmtest.JobField(t, jobA, "Comment"); c != "slurmtune:"+runA+":serve" {
		t.Errorf("serving job %s comment %q", jobA, c)
	}

	// 2. A better model takes over blue-green while 4 workers send requests.
	load := startLoadLoop(rt.url, 4)
	runB, r := deployRun("tiny-v2", v2)
	time.Sleep(time.Second)
	byModel, failures := load.finish()
	if r.code != 0 {
		t.Fatalf("blue-green deploy: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("requests during the blue-green switch: %v, %d failed", byModel, len(failures))
	if len(failures) > 0 {
		t.Errorf("%d requests failed during the blue-green switch, e.g. %s\n%s", len(failures), failures[0], rt.logs())
	}
	if byModel["tiny-v1"] == 0 || byModel["tiny-v2"] == 0 {
		t.Errorf("both models should have answered during the switch: %v", byModel)
	}
	if model, _ := complete(t, rt.url, "The scheduler"); model != "tiny-v2" {
		t.Errorf("after the switch the router answers with %q", model)
	}
	// The router logged the prompt for the backend that answered it.
	var promptLog []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if promptLog, _ = os.ReadFile(rt.paths.Prompts); strings.Contains(string(promptLog), `"prompt":"The scheduler"`) {
			break
		}
	}
	if !strings.Contains(string(promptLog), `"prompt":"The scheduler"`) {
		t.Errorf("the router's prompt log %s lacks the last prompt:\n%s", rt.paths.Prompts, promptLog)
	}
	s = deployStatusOf(t, db, name)
	if s.Stable == nil || s.Stable.Run != runB || s.Candidate != nil {
		t.Fatalf("status after blue-green: %+v", s)
	}
	jobB := s.Stable.JobID
	var acts []string
	for _, h := range s.History {
		acts = append(acts, h.Action)
	}
	if got := strings.Join(acts, ","); got != "deploy,promote,retire" {
		t.Errorf("history %s, want deploy,promote,retire", got)
	}
	waitJobState(t, jobA, "CANCELLED", time.Minute) // blue, after its rollback window

	// 3. A canary that fails half its requests is rolled back on its own.
	load = startLoadLoop(rt.url, 4)
	runC, r := deployRun("tiny-v3", v2, "deploy.strategy=canary", "deploy.canary.percent=50", "deploy.canary.duration=2m",
		"deploy.canary.min_requests=6", "environment.env.TINY_SERVE_FAIL_RATE=0.5",
		`deploy.smoke.prompts=[{prompt: "a"}, {prompt: "b"}]`, "deploy.smoke.min_success=1")
	_, failures = load.finish()
	if r.code != 1 {
		t.Fatalf("failing canary: exit %d, want 1 (run FAILED)\n%s", r.code, r.stderr)
	}
	t.Logf("requests that failed during the canary: %d", len(failures))
	s = deployStatusOf(t, db, name)
	if s.Stable == nil || s.Stable.Run != runB || s.Stable.Weight != 100 || s.Candidate != nil {
		t.Errorf("status after the canary: %+v", s)
	}
	last := s.History[len(s.History)-1]
	if last.Action != "rollback" || last.From == nil || last.From.Run != runC || !strings.Contains(last.Reason, "error rate") {
		t.Errorf("last event %+v, want a rollback of %s for its error rate", last, runC)
	}
	if jobC := serveJobOf(s, runC); jobC == "" {
		t.Errorf("no serving job of %s in the history", runC)
	} else {
		waitJobState(t, jobC, "CANCELLED", time.Minute)
	}

	// 4. A candidate that fails its smoke tests never gets traffic.
	var seen sync.Map
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			for _, b := range rt.router.State().Backends {
				seen.Store(b.Run, true)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	runD, r := deployRun("tiny-v4", v2, `deploy.smoke.prompts=[{prompt: "The training job", regex: "^IMPOSSIBLE$"}]`)
	stopWatch()
	<-watched
	if r.code != 1 {
		t.Fatalf("smoke failure: exit %d, want 1\n%s", r.code, r.stderr)
	}
	if _, ok := seen.Load(runD); ok {
		t.Errorf("run %s, which failed its smoke tests, appeared in the routing state", runD)
	}
	s = deployStatusOf(t, db, name)
	last = s.History[len(s.History)-1]
	if s.Stable == nil || s.Stable.Run != runB || last.Action != "smoke_failed" || last.To == nil || last.To.Run != runD {
		t.Errorf("after the smoke failure: stable %+v, last event %+v", s.Stable, last)
	}
	if jobD := serveJobOf(s, runD); jobD != "" {
		waitJobState(t, jobD, "CANCELLED", time.Minute)
	}
	if st := jobState(t, jobB); !strings.HasPrefix(st, "RUNNING") {
		t.Errorf("the stable serving job %s is %s", jobB, st)
	}
	if model, _ := complete(t, rt.url, "The login node"); model != "tiny-v2" {
		t.Errorf("after the failed deploys the router answers with %q", model)
	}

	// 5. By hand: a canary promoted with deploy promote, then rolled back
	// with deploy rollback within its rollback window; its deploy stage
	// sees it and fails.
	r = slurmtune(t, db, append([]string{"submit", tinyPipeline(t), "--json"}, deploySets(t, name, tmp, state, "tiny-v5", v2,
		"deploy.strategy=canary", "deploy.canary.percent=20", "deploy.canary.duration=5m", "deploy.rollback_window=2m")...)...)
	var sub submitJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &sub) != nil {
		t.Fatalf("submit the canary: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		s = deployStatusOf(t, db, name)
		if s.Candidate != nil && s.Candidate.Run == sub.Run && s.Candidate.Weight == 20 {
			break // the canary has started
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s never became the candidate: %+v", sub.Run, s)
		}
	}
	r = slurmtune(t, db, "deploy", "promote", name, "--json", "--reason", "looks fine")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &s) != nil || s.Stable == nil || s.Stable.Run != sub.Run || s.Candidate != nil {
		t.Fatalf("deploy promote: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	jobE := s.Stable.JobID
	r = slurmtune(t, db, "deploy", "rollback", name, "--json", "--reason", "changed my mind")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &s) != nil || s.Stable == nil || s.Stable.Run != runB || s.Stable.Weight != 100 {
		t.Fatalf("deploy rollback: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if last := s.History[len(s.History)-1]; last.Action != "rollback" || !strings.Contains(last.Reason, "changed my mind") {
		t.Errorf("last event %+v", last)
	}
	if run := waitEnded(t, db, sub.Run, 2*time.Minute).Runs[0]; run.State != "FAILED" {
		t.Errorf("the deploy stage of a canary rolled back by hand: run %s", run.State)
	}
	waitJobState(t, jobE, "CANCELLED", time.Minute)
	if model, _ := complete(t, rt.url, "The login node"); model != "tiny-v2" {
		t.Errorf("after the rollback by hand the router answers with %q", model)
	}
	if r := slurmtune(t, db, "deploy", "rollback", name); r.code != 1 || !strings.Contains(r.stderr, "nothing to roll back") {
		t.Errorf("rollback with nothing to roll back to: exit %d: %s", r.code, r.stderr)
	}
	r = slurmtune(t, db, "deploy", "status", name)
	if r.code != 0 || !strings.Contains(r.stdout, "stable    run "+runB) {
		t.Errorf("deploy status: exit %d\n%s", r.code, r.stdout)
	}
	t.Logf("deploy status:\n%s", r.stdout)

	// 6. Drift: the load loops sent the stable model a handful of short
	// prompts, nothing like its training data.
	r = slurmtune(t, db, "drift", name, "--json")
	var rep struct {
		Drifted  bool   `json:"drifted"`
		Run      string `json:"run"`
		Findings []struct {
			Check string `json:"check"`
			Level string `json:"level"`
		} `json:"findings"`
		Production struct{ Prompts int } `json:"production"`
		Baseline   struct{ Prompts int } `json:"baseline"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != exitDrift || !rep.Drifted || rep.Run != runB || rep.Production.Prompts < 100 || rep.Baseline.Prompts == 0 {
		t.Errorf("drift: exit %d (%v)\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	t.Logf("whole deploy test: %s", time.Since(start).Round(time.Second))
}

// deploySets are the --set flags of a deploy-only run of the tiny model
// (prep, train and eval off; deploy.checkpoint; tiny_serve.py behind the
// router whose state file is state), then extra.
func deploySets(t *testing.T, name, tmp, state, model, ckpt string, extra ...string) []string {
	sets := []string{"name=" + name, "workdir=" + filepath.Join(tmp, "runs"), "model.name=" + model,
		"prep.enabled=false", "train.enabled=false", "eval.enabled=false",
		"deploy.strategy=blue-green", "deploy.checkpoint=" + ckpt,
		fmt.Sprintf(`deploy.serve.command=["/usr/bin/python3", %q, "--model", "{model}", "--port", "{port}", "--name", "{name}"]`,
			filepath.Join(repoRoot(t), "scripts", "payloads", "tiny_serve.py")),
		"deploy.serve.mem=1G", "deploy.serve.startup_timeout=3m", "deploy.serve.time=15m", // a leaked server ends by itself
		"deploy.router.state=" + state, "deploy.rollback_window=4s",
		`deploy.smoke.prompts=[{prompt: "The training job", max_tokens: 8, regex: "^.{8}$"}]`,
		"deploy.smoke.latency=20s",
	}
	var out []string
	for _, s := range append(sets, extra...) {
		out = append(out, "--set", s)
	}
	return out
}

// TestDriftCommand runs `slurmtune drift` on a deployment whose stable
// model's server logged prompts like its training data (no drift, exit 0,
// and submit --if-drift submits nothing), then shifted ones (drift: exit 4
// and a JSON alert posted to monitor.webhook).
func TestDriftCommand(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	name := "drift-test"
	root := repoRoot(t)

	// A serving run recorded in the database, with its pipeline snapshot.
	state := filepath.Join(tmp, "router", "router.json")
	alerts := make(chan []byte, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		alerts <- b
	}))
	defer hook.Close()
	src, err := os.ReadFile(tinyPipeline(t))
	if err != nil {
		t.Fatal(err)
	}
	sets := []string{"name=" + name, "workdir=" + filepath.Join(tmp, "runs"), "deploy.strategy=blue-green",
		"deploy.router.state=" + state, "monitor.webhook=" + hook.URL, "monitor.min_prompts=100"}
	p, err := jobs.Parse("pipeline.yaml", tinyPipeline(t), src, jobs.LoadOptions{Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	pipelineFile := filepath.Join(tmp, "pipeline.yaml")
	snap, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	run := "drift-test-20260101-000000-abcd"
	runDir := filepath.Join(tmp, "runs", run)
	for _, d := range []string{filepath.Join(runDir, "data"), filepath.Join(runDir, "serve")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(runDir, "pipeline.yaml"), snap, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pipelineFile, snap, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRun(context.Background(), store.Run{ID: run, Name: name, PipelineFile: pipelineFile, RunDir: runDir, Transport: "local"}, []string{"deploy"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Training split: the first 400 texts of the corpus; the deployment
	// record says the run's server is the stable model.
	corpus, err := os.ReadFile(filepath.Join(root, "examples", "tiny", "data", "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	sc := bufio.NewScanner(strings.NewReader(string(corpus)))
	for sc.Scan() {
		var r struct{ Text string }
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Text != "" {
			texts = append(texts, r.Text)
		}
	}
	if len(texts) < 800 {
		t.Fatalf("corpus has %d texts", len(texts))
	}
	data := filepath.Join(runDir, "data", "train.jsonl")
	writeJSONL(t, data, "text", texts[:400])
	paths := deploy.PathsFor(state)
	if err := deploy.WriteRecord(paths.Record, deploy.Record{Name: name, Strategy: "blue-green",
		Stable: &deploy.Member{Backend: run, Run: run, JobID: "1", URL: "http://127.0.0.1:1", Weight: 100, Model: "tiny", Version: "abc", RunDir: runDir, Data: data}}); err != nil {
		t.Fatal(err)
	}
	promptLog := filepath.Join(runDir, "serve", "prompts.jsonl")

	type report struct {
		Drifted  bool     `json:"drifted"`
		Level    string   `json:"level"`
		Reasons  []string `json:"reasons"`
		Findings []struct {
			Check   string  `json:"check"`
			Value   float64 `json:"value"`
			Skipped bool    `json:"skipped"`
		} `json:"findings"`
		Run string `json:"run"`
	}
	driftJSON := func(wantCode int) report {
		t.Helper()
		r := slurmtune(t, db, "drift", name, "--json")
		if r.code != wantCode {
			t.Fatalf("drift: exit %d, want %d\n%s\n%s", r.code, wantCode, r.stdout, r.stderr)
		}
		var rep report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("drift --json: %v\n%s", err, r.stdout)
		}
		t.Logf("drift: exit %d, findings %+v", r.code, rep.Findings)
		return rep
	}

	// Unshifted: production prompts from the same distribution.
	writeJSONL(t, promptLog, "prompt", texts[400:700])
	rep := driftJSON(0)
	if rep.Drifted || rep.Run != run || len(rep.Findings) < 2 {
		t.Errorf("unshifted prompts: %+v", rep)
	}
	for _, f := range rep.Findings {
		if strings.HasSuffix(f.Check, "psi") && (f.Skipped || f.Value >= 0.25) {
			t.Errorf("unshifted prompts: %+v", f)
		}
	}
	select {
	case a := <-alerts:
		t.Errorf("an alert was posted without drift: %s", a)
	default:
	}
	r := slurmtune(t, db, "submit", pipelineFile, "--if-drift")
	if r.code != 0 || !strings.Contains(r.stdout, "no drift") {
		t.Errorf("submit --if-drift without drift: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(tmp, "runs")); err == nil {
		entries, _ := os.ReadDir(filepath.Join(tmp, "runs"))
		if len(entries) != 1 {
			t.Errorf("submit --if-drift created a run: %v", entries)
		}
	}

	// Shifted: short prompts from another vocabulary.
	words := []string{"invoice", "refund", "password", "shipping", "warranty", "coupon", "delivery", "account"}
	var shifted []string
	for i := range 300 {
		shifted = append(shifted, fmt.Sprintf("%s %s please", words[i%len(words)], words[(i*3+1)%len(words)]))
	}
	writeJSONL(t, promptLog, "prompt", shifted)
	rep = driftJSON(exitDrift)
	if !rep.Drifted || rep.Level != "alert" || len(rep.Reasons) == 0 {
		t.Errorf("shifted prompts: %+v", rep)
	}
	select {
	case a := <-alerts:
		var got report
		if err := json.Unmarshal(a, &got); err != nil || !got.Drifted || got.Run != run {
			t.Errorf("webhook got %s (%v)", a, err)
		}
	case <-time.After(5 * time.Second):
		t.Error("no alert was posted to monitor.webhook")
	}
	// The text report names the checks too.
	r = slurmtune(t, db, "drift", name, "--no-webhook")
	if r.code != exitDrift || !strings.Contains(r.stdout, "word_psi") || !strings.Contains(r.stdout, "DRIFT") {
		t.Errorf("drift (text): exit %d\n%s", r.code, r.stdout)
	}

	// Prompts that went through `slurmtune router` (as they do to a vLLM
	// server, which logs none) are what drift reads: unshifted ones sent
	// through the router clear the alert the server's own log raised.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, `{"choices":[{"text":"ok"}]}`)
	}))
	defer backend.Close()
	if err := serve.WriteState(state, serve.State{Name: name, Version: 1, Backends: []serve.Backend{{Name: run, URL: backend.URL, Weight: 100}}}); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	router := exec.Command(binPath, "router", "--listen", addr, "--state", state, "--access-log", "")
	router.Stderr = os.Stderr
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = router.Process.Kill() }() // by pid: our own child; fails only once it has been waited for
	client := &http.Client{Timeout: 10 * time.Second}
	for i, p := range texts[400:700] {
		body, _ := json.Marshal(map[string]any{"model": "tiny", "prompt": p, "max_tokens": 4})
		var resp *http.Response
		for try := 0; ; try++ {
			resp, err = client.Post("http://"+addr+"/v1/completions", "application/json", bytes.NewReader(body))
			if err == nil && resp.StatusCode == http.StatusOK || try == 100 {
				break
			}
			if err == nil {
				resp.Body.Close()
			}
			time.Sleep(100 * time.Millisecond) // the router is starting
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("prompt %d through the router: %v", i, err)
		}
		resp.Body.Close()
	}
	if err := router.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := router.Wait(); err != nil {
		t.Fatalf("router: %v", err)
	}
	// A cron sync samples the router's counters into SQLite for
	// performance drift, without anyone running deploy status or drift.
	samplesOf := func() int {
		t.Helper()
		st, err := store.Open(context.Background(), db, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		xs, err := st.DeploySamples(context.Background(), name, run)
		if err != nil {
			t.Fatal(err)
		}
		return len(xs)
	}
	before := samplesOf()
	if r := slurmtune(t, db, "sync"); r.code != 0 || samplesOf() != before+1 {
		t.Errorf("sync: exit %d, samples %d -> %d\n%s", r.code, before, samplesOf(), r.stderr)
	}
	r = slurmtune(t, db, "drift", name, "--json", "--no-webhook")
	var got struct {
		Drifted    bool `json:"drifted"`
		Production struct {
			Path    string `json:"path"`
			Prompts int    `json:"prompts"`
		} `json:"production"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 || got.Drifted ||
		got.Production.Path != paths.Prompts || got.Production.Prompts != 300 {
		t.Errorf("drift on the router's prompt log: exit %d, %+v (%v)\n%s", r.code, got, err, r.stderr)
	}
}

func writeJSONL(t *testing.T, path, key string, values []string) {
	t.Helper()
	var b strings.Builder
	for _, v := range values {
		line, _ := json.Marshal(map[string]string{key: v})
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
