package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/ui/uitest"
)

type metricsOut struct {
	Run    string              `json:"run"`
	Points []store.MetricPoint `json:"points"`
	Eval   *struct {
		Passed bool `json:"passed"`
		Gates  []struct {
			Metric    string   `json:"metric"`
			Threshold float64  `json:"threshold"`
			Value     *float64 `json:"value"`
			Passed    bool     `json:"passed"`
		} `json:"gates"`
	} `json:"eval"`
}

type compareOut struct {
	Differing []string `json:"differing_hyperparameters"`
	Runs      []struct {
		ID              string             `json:"id"`
		Hyperparameters map[string]any     `json:"hyperparameters"`
		FinalTrainLoss  *float64           `json:"final_train_loss"`
		EvalPassed      *bool              `json:"eval_passed"`
		EvalMetrics     map[string]float64 `json:"eval_metrics"`
		Restarts        int                `json:"restarts"`
	} `json:"runs"`
}

// fileLossLines counts the loss lines the payload appended to the run's
// train metrics file, by segment (restart).
func fileLossLines(t *testing.T, runDir string) map[int][]int64 {
	t.Helper()
	f, err := os.Open(filepath.Join(runDir, "metrics", "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int][]int64{}
	restart := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			S *struct {
				Restart int `json:"restart"`
			} `json:"slurmtune"`
			Step *int64   `json:"step"`
			Loss *float64 `json:"loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("metrics file line %q: %v", sc.Text(), err)
		}
		if l.S != nil {
			restart = l.S.Restart
			continue
		}
		if l.Loss != nil {
			out[restart] = append(out[restart], *l.Step)
		}
	}
	return out
}

// TestE2EMetricsCompareAndDashboard runs the demo pipeline twice on the
// dev cluster with different learning rates, the first stopped half-way
// and requeued (a restart). Every logging step's train loss reaches
// SQLite, in two segments for the restarted run; metrics --json returns
// them; compare shows the learning rates and both eval verdicts; status
// --json carries them; and `slurmtune ui` against that database shows
// every page in headless Chromium with each chart's points read from the
// page, without writing the database.
func TestE2EMetricsCompareAndDashboard(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	const steps = 60
	subA := submitTiny(t, db, filepath.Join(tmp, "runs"), preemptibleSets(steps)...)
	subB := submitTiny(t, db, filepath.Join(tmp, "runs"), append(preemptibleSets(steps), "train.hyperparameters.lr=0.01")...)
	// While the jobs are live, the dashboard asks Slurm (read-only) for their states.
	liveURL := startUI(t, db, "--interval", "1s")
	waitLive(t, liveURL, subA.Jobs["train"])
	waitLog(t, db, subA.Run, "checkpoint step 20", 3*time.Minute)
	slurmtest.Run(t, "scancel", "--signal=USR2", "--batch", subA.Jobs["train"])
	startNow(t, subA.Jobs["train"])
	a := waitEnded(t, db, subA.Run, 6*time.Minute).Runs[0]
	b := waitEnded(t, db, subB.Run, 6*time.Minute).Runs[0]
	if a.State != "SUCCEEDED" || b.State != "SUCCEEDED" {
		t.Fatalf("runs ended %s and %s, want SUCCEEDED:\n%s", a.State, b.State, trainLog(t, db, subA.Run))
	}

	// Every logging step's loss is in SQLite, with its restart.
	r := slurmtune(t, db, "metrics", subA.Run, "--stage", "train", "--name", "loss", "--json", "--no-sync")
	if r.code != 0 {
		t.Fatalf("metrics: exit %d: %s", r.code, r.stderr)
	}
	var ma metricsOut
	if err := json.Unmarshal([]byte(r.stdout), &ma); err != nil {
		t.Fatalf("metrics --json: %v\n%s", err, r.stdout)
	}
	inFile := fileLossLines(t, a.RunDir)
	inDB := map[int][]int64{}
	for _, p := range ma.Points {
		if p.Stage != "train" || p.Name != "loss" || p.Step == nil || p.JobID != subA.Jobs["train"] || p.Attempt != 1 {
			t.Errorf("point %+v", p)
			continue
		}
		inDB[p.Restart] = append(inDB[p.Restart], *p.Step)
	}
	if fmt.Sprint(inDB) != fmt.Sprint(inFile) {
		t.Errorf("loss steps in SQLite by restart %v, in the metrics file %v", inDB, inFile)
	}
	if len(inDB) != 2 || len(inDB[0]) < 20 || len(inDB[1]) == 0 || inDB[1][len(inDB[1])-1] != steps {
		t.Errorf("want two segments, the first of at least 20 steps, the second ending at step %d: %v", steps, inDB)
	}
	covered := map[int64]bool{}
	for _, s := range append(slices.Clone(inDB[0]), inDB[1]...) {
		covered[s] = true
	}
	for s := int64(1); s <= steps; s++ {
		if !covered[s] {
			t.Errorf("no loss point for logging step %d", s)
		}
	}
	var all metricsOut
	if err := json.Unmarshal([]byte(slurmtune(t, db, "metrics", subA.Run, "--json", "--no-sync").stdout), &all); err != nil {
		t.Fatal(err)
	}
	ma.Eval = all.Eval
	if ma.Eval == nil || len(ma.Eval.Gates) != 1 || ma.Eval.Gates[0].Metric != "perplexity" || ma.Eval.Gates[0].Threshold != 1000 || ma.Eval.Gates[0].Value == nil {
		t.Errorf("eval report in SQLite: %+v", ma.Eval)
	}
	if r := slurmtune(t, db, "metrics", subA.Run, "--csv", "--no-sync"); r.code != 0 || !strings.HasPrefix(r.stdout, "stage,name,step,time,value,job_id,attempt,restart\n") ||
		!strings.Contains(r.stdout, "eval,perplexity,") {
		t.Errorf("metrics --csv: exit %d\n%s", r.code, r.stdout)
	}

	// compare: the learning rates differ, both verdicts are there.
	r = slurmtune(t, db, "compare", subA.Run, subB.Run, "--json", "--no-sync")
	var c compareOut
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || r.code != 0 {
		t.Fatalf("compare --json: exit %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if !slices.Contains(c.Differing, "lr") || len(c.Runs) != 2 || c.Runs[0].Hyperparameters["lr"] != 0.003 || c.Runs[1].Hyperparameters["lr"] != 0.01 {
		t.Errorf("compare: differing %v, runs %+v", c.Differing, c.Runs)
	}
	for _, run := range c.Runs {
		if run.EvalPassed == nil || !*run.EvalPassed || run.FinalTrainLoss == nil || run.EvalMetrics["perplexity"] == 0 {
			t.Errorf("compare run %s: eval %v, final loss %v, metrics %v", run.ID, run.EvalPassed, run.FinalTrainLoss, run.EvalMetrics)
		}
	}
	if c.Runs[0].Restarts < 1 || c.Runs[1].Restarts != 0 {
		t.Errorf("compare restarts %d and %d, want >=1 and 0", c.Runs[0].Restarts, c.Runs[1].Restarts)
	}
	if r := slurmtune(t, db, "compare", subA.Run, subB.Run, "--no-sync"); !strings.Contains(r.stdout, "hp lr") || !strings.Contains(r.stdout, "0.01") || strings.Count(r.stdout, "PASS") < 2 {
		t.Errorf("compare table:\n%s", r.stdout)
	}

	// status carries them.
	var st struct {
		Runs []struct {
			ID      string `json:"id"`
			Metrics struct {
				TrainLoss  *float64 `json:"train_loss"`
				TrainStep  *int64   `json:"train_step"`
				EvalPassed *bool    `json:"eval_passed"`
			} `json:"metrics"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(slurmtune(t, db, "status", "--json", "--no-sync").stdout), &st); err != nil || len(st.Runs) != 2 {
		t.Fatalf("status --json: %v %+v", err, st)
	}
	for _, run := range st.Runs {
		if run.Metrics.TrainLoss == nil || run.Metrics.TrainStep == nil || *run.Metrics.TrainStep != steps || run.Metrics.EvalPassed == nil {
			t.Errorf("status --json metrics of %s: %+v", run.ID, run.Metrics)
		}
	}
	if table := slurmtune(t, db, "status", "--no-sync").stdout; !strings.Contains(table, "LOSS") || !strings.Contains(table, "PASS") {
		t.Errorf("status table lacks loss/eval:\n%s", table)
	}

	// GPU samples as the exporter writes them on a GPU node (the dev
	// cluster has none), read by `slurmtune gpu` into SQLite.
	samples := utilSamples("gpu-node9", subB.Jobs["train"], 2, 12, time.Now().Add(-time.Minute), 70)
	for i := range samples {
		w := 250 + float64(i)
		samples[i].PowerW = &w
	}
	writeSamples(t, filepath.Join(b.RunDir, "gpu", "samples-gpu-node9.jsonl"), samples, "")
	if g := slurmtune(t, db, "gpu", subB.Run, "--json", "--no-sync"); g.code != 0 || !gpuJSONOf(t, g.stdout).Telemetry {
		t.Fatalf("gpu: exit %d %s\n%s", g.code, g.stdout, g.stderr)
	}

	// The dashboard, in a real browser.
	before := dbDigest(t, db)
	url := startUI(t, db)
	br := uitest.New(t)
	dir := uitest.ArtifactDir(t)
	p := br.Load(t, url+"/", filepath.Join(dir, "runs.png"))
	for _, id := range []string{subA.Run, subB.Run} {
		if !strings.Contains(p.Text, id) {
			t.Errorf("runs page lacks %s", id)
		}
	}
	p = br.Load(t, url+"/runs/"+subA.Run, filepath.Join(dir, "run.png"))
	var stages []string
	for _, s := range p.Timeline {
		if !slices.Contains(stages, s) {
			stages = append(stages, s)
		}
	}
	if strings.Join(stages, ",") != "prep,train,eval,deploy" || len(p.Timeline) < 5 {
		t.Errorf("timeline rows %v: want every stage, train twice (its restart)", p.Timeline)
	}
	loss := p.Charts["loss"]
	if loss.State != "drawn" || fmt.Sprint(loss.Points) != fmt.Sprint([]int{len(inDB[0]), len(inDB[1])}) || !strings.Contains(loss.Labels[1], "restart 1") {
		t.Errorf("loss chart %+v, want points %d and %d, the second segment restart 1", loss, len(inDB[0]), len(inDB[1]))
	}
	if lr := p.Charts["lr"]; lr.State != "drawn" || fmt.Sprint(lr.Points) != fmt.Sprint(loss.Points) {
		t.Errorf("learning rate chart %+v", lr)
	}
	for _, id := range []string{"gpu_util", "gpu_mem", "gpu_power"} {
		// The dev cluster has no GPU: the exporter says NVML is unavailable.
		if c := p.Charts[id]; c.State != "empty" || !strings.Contains(c.Message, "No GPU telemetry") {
			t.Errorf("chart %s on a cluster without GPUs: %+v", id, c)
		}
	}
	if !strings.Contains(p.Text, "perplexity") || !strings.Contains(p.Text, "<= 1000") {
		t.Errorf("run page lacks the eval gate:\n%s", p.Text)
	}
	p = br.Load(t, url+"/runs/"+subB.Run, filepath.Join(dir, "run-b.png"))
	if c := p.Charts["loss"]; c.State != "drawn" || fmt.Sprint(c.Points) != fmt.Sprint([]int{steps}) {
		t.Errorf("run B loss chart %+v", c)
	}
	for _, id := range []string{"gpu_util", "gpu_mem", "gpu_power"} {
		if c := p.Charts[id]; c.State != "drawn" || fmt.Sprint(c.Points) != "[12 12]" || !strings.Contains(c.Labels[0], "gpu-node9 GPU 0") {
			t.Errorf("run B chart %s: %+v, want 12 points for each of 2 GPUs", id, c)
		}
	}
	p = br.Load(t, url+"/compare?run="+subA.Run+"&run="+subB.Run, filepath.Join(dir, "compare.png"))
	if c := p.Charts["compare_loss"]; c.State != "drawn" || fmt.Sprint(c.Points) != fmt.Sprint([]int{steps, steps}) {
		t.Errorf("compare chart %+v, want %d points for each run", c, steps)
	}
	if !strings.Contains(p.Text, "0.01") || !strings.Contains(p.Text, "0.003") {
		t.Errorf("compare page lacks the learning rates:\n%s", p.Text)
	}
	if after := dbDigest(t, db); after != before {
		t.Errorf("the dashboard changed the database")
	}
}

// waitLive waits until the dashboard's runs page says it refreshed from
// Slurm and its runs API shows the job in a live state.
func waitLive(t *testing.T, url, job string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		page, runs := httpGet(t, url+"/"), httpGet(t, url+"/api/runs")
		if strings.Contains(page, "live from Slurm at") && strings.Contains(runs, `"job_id":"`+job+`","state":"RUNNING"`) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("the dashboard never showed job %s live from Slurm:\n%s", job, httpGet(t, url+"/api/runs"))
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// dbDigest hashes the database file and its WAL.
func dbDigest(t *testing.T, db string) string {
	t.Helper()
	h := sha256.New()
	for _, p := range []string{db, db + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// startUI runs `slurmtune ui` on a free loopback port until the test ends
// and returns its URL.
func startUI(t *testing.T, db string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"ui", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "SLURMTUNE_DB="+db)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("stop slurmtune ui: %v", err)
		}
		// SIGTERM is a clean shutdown: the command must exit 0.
		if err := cmd.Wait(); err != nil {
			t.Errorf("slurmtune ui after SIGTERM: %v\n%s", err, stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("slurmtune ui: %v\n%s", err, stderr.String())
	}
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("slurmtune ui said %q", line)
	}
	return strings.TrimSuffix(strings.TrimSpace(line[i:]), "/")
}

// TestUICommandAccess: off loopback without a token is refused before
// anything listens; with a token, a wrong one gets 401.
func TestUICommandAccess(t *testing.T) {
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	if r := inProcess(t, "--db", db, "status", "--no-sync"); r.code != 0 {
		t.Fatalf("create the database: %s", r.stderr)
	}
	r := inProcess(t, "--db", db, "ui", "--listen", "0.0.0.0:0")
	if r.code != exitInvalid || !strings.Contains(r.stderr, "not a loopback address") || !strings.Contains(r.stderr, "--token-file") {
		t.Errorf("ui off loopback without a token: exit %d: %s", r.code, r.stderr)
	}
	tok := filepath.Join(tmp, "token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := inProcess(t, "--db", db, "ui", "--token-file", tok); r.code != exitInvalid || !strings.Contains(r.stderr, "readable by others") {
		t.Errorf("world-readable token file: exit %d: %s", r.code, r.stderr)
	}
	if err := os.Chmod(tok, 0o600); err != nil {
		t.Fatal(err)
	}
	url := startUI(t, db, "--token-file", tok, "--no-sync")
	for _, tt := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer wrong", 401}, {"Bearer 0123456789abcdef0123", 200}} {
		req, _ := http.NewRequest("GET", url+"/api/runs", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, resp.StatusCode, tt.want)
		}
	}
}
