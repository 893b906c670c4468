package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/ui/uitest"
)

var ctx = context.Background()

const (
	hostileName   = `<script>window.__xss="name"</script>"'&`
	hostileMetric = `<img src=x onerror="window.__xss='metric'">`
)

// seed writes a database as slurmtune would have: a finished run with a
// restarted train stage, eval report, GPU samples and router samples; a
// run that has no metrics yet; and a run whose name and metric names are
// HTML. It returns the path and the run ids.
func seed(t testing.TB) (string, map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "st.db")
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := map[string]string{"full": "tiny-20260101-000000-aaaa", "empty": "tiny-20260101-000100-bbbb", "hostile": "evil-20260101-000200-cccc"}
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	mk := func(id, name string, stages []string) {
		if err := st.CreateRun(ctx, store.Run{ID: id, Name: name, RunDir: "/r/" + id, Transport: "local"}, stages); err != nil {
			t.Fatal(err)
		}
	}
	stages := []string{"prep", "train", "eval", "deploy"}
	mk(ids["full"], "tiny", stages)
	mk(ids["empty"], "tiny", stages)
	mk(ids["hostile"], hostileName, []string{"train"})
	job := func(run, stage, id string, state slurm.State, from, to time.Duration, restarts int) {
		if err := st.RecordSubmitted(ctx, run, stage, "", id); err != nil {
			t.Fatal(err)
		}
		tj := store.TrackedJob{RunID: run, Stage: stage, JobID: id}
		if _, err := st.UpdateJob(ctx, tj, slurm.Job{ID: id, State: slurm.StateRunning, Start: start.Add(from)}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpdateJob(ctx, tj, slurm.Job{ID: id, State: state, Start: start.Add(from), End: start.Add(to), Restarts: restarts}); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range stages {
		job(ids["full"], s, fmt.Sprint(100+i), slurm.StateCompleted, time.Duration(i)*time.Minute, time.Duration(i+1)*time.Minute, map[bool]int{true: 1}[s == "train"])
	}
	if err := st.RecordSubmitted(ctx, ids["empty"], "prep", "", "200"); err != nil {
		t.Fatal(err)
	}
	job(ids["hostile"], "train", "300", slurm.StateCompleted, 0, time.Minute, 0)

	// Train loss: 60 steps, a restart at step 35 resuming from 20.
	var pts []store.MetricPoint
	off := int64(0)
	add := func(run, name string, step int64, v float64, restart int, job string) {
		s := step
		pts = append(pts, store.MetricPoint{Stage: "train", Name: name, Offset: off, Step: &s, Value: v, Time: start.Add(time.Duration(step) * time.Second), JobID: job, Attempt: 1, Restart: restart})
		off += 10
	}
	for s := int64(1); s <= 35; s++ {
		add(ids["full"], "loss", s, 5-float64(s)*0.05, 0, "101")
		add(ids["full"], "learning_rate", s, 0.003, 0, "101")
	}
	for s := int64(21); s <= 60; s++ {
		add(ids["full"], "loss", s, 5-float64(s)*0.05+0.1, 1, "101")
		add(ids["full"], "learning_rate", s, 0.003, 1, "101")
	}
	save := func(run string, pts []store.MetricPoint) {
		if ok, err := st.SaveMetricLines(ctx, run, store.MetricFile{Path: "/m"}, store.MetricFile{Path: "/m", Stage: "train", ReadTo: off}, pts); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	save(ids["full"], pts)
	pts, off = nil, 0
	for s := int64(1); s <= 10; s++ {
		add(ids["hostile"], "loss", s, 4-float64(s)*0.1, 0, "300")
		add(ids["hostile"], hostileMetric, s, 1, 0, "300")
	}
	save(ids["hostile"], pts)
	ppl := 9.5
	if err := st.SaveEvalReport(ctx, ids["full"], store.EvalRecord{JobID: "102", Passed: true, Metrics: map[string]float64{"perplexity": ppl},
		Gates: []store.GateRecord{{Metric: "perplexity", Op: "<=", Threshold: 12, Value: &ppl, Passed: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveEvalReport(ctx, ids["hostile"], store.EvalRecord{JobID: "300", Passed: false, Metrics: map[string]float64{hostileMetric: 1},
		Gates: []store.GateRecord{{Metric: hostileMetric, Op: ">=", Threshold: 2, Value: new(float64), Reason: hostileName}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetRunParams(ctx, ids["full"], map[string]any{"lr": 0.003, "max_steps": 60}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetRunParams(ctx, ids["hostile"], map[string]any{"lr": 0.01, "max_steps": 60}); err != nil {
		t.Fatal(err)
	}
	// GPU samples of two GPUs on one node during train, as the exporter
	// writes them on a GPU node.
	g, err := nvml.LoadState(ctx, st, ids["full"])
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		for gpu := 0; gpu < 2; gpu++ {
			u, p := float64(60+gpu*20+i%10), 200.0+float64(i)
			m := uint64(20+gpu*10) << 30
			g.Add("train", nvml.Sample{Time: start.Add(time.Minute + time.Duration(i)*2*time.Second), Host: "gpu-node1", GPU: gpu, UUID: fmt.Sprint("GPU-", gpu),
				UtilPct: &u, PowerW: &p, MemUsedBytes: &m, Job: "101"})
		}
	}
	g.Advance("/r/gpu/samples-gpu-node1.jsonl", 4096, 0)
	if ok, err := g.Save(ctx, st); err != nil || !ok {
		t.Fatal(ok, err)
	}
	var samples []store.DeploySample
	for i := 0; i < 20; i++ {
		samples = append(samples, store.DeploySample{Name: "tiny", Backend: "b1", RunID: ids["full"], At: start.Add(5*time.Minute + time.Duration(i)*10*time.Second),
			Requests: int64(i * 50), Errors: int64(i / 4), P95: time.Duration(80+i) * time.Millisecond, Healthy: true})
	}
	if err := st.AddDeploySamples(ctx, samples); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ImportDeployEvents(ctx, []store.DeployEvent{{ID: "e1", Name: "tiny", At: start.Add(5 * time.Minute), Action: "switch", Strategy: "blue-green", ToRun: ids["full"]}}); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

func newServer(t testing.TB, path, token string) *httptest.Server {
	t.Helper()
	st, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Options{Store: st, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestListenOffLoopbackNeedsToken(t *testing.T) {
	for _, tt := range []struct {
		addr  string
		token bool
		ok    bool
	}{
		{"127.0.0.1:8080", false, true}, {"[::1]:8080", false, true}, {"localhost:0", false, true},
		{"0.0.0.0:8080", false, false}, {":8080", false, false}, {"10.1.2.3:8080", false, false}, {"[::]:8080", false, false},
		{"0.0.0.0:8080", true, true}, {"nope", false, false},
	} {
		if err := CheckListen(tt.addr, tt.token); (err == nil) != tt.ok {
			t.Errorf("CheckListen(%q, token %v) = %v, want ok %v", tt.addr, tt.token, err, tt.ok)
		}
	}
}

func TestTokenRequired(t *testing.T) {
	path, ids := seed(t)
	const tok = "s3cret-token-0123456789"
	srv := newServer(t, path, tok)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, u := range []string{"/", "/runs/" + ids["full"], "/api/runs", "/api/runs/" + ids["full"] + "/charts", "/static/app.js", "/compare"} {
		if code, _ := get(t, c, srv.URL+u); code != 401 {
			t.Errorf("%s without a token: %d, want 401", u, code)
		}
		if code, _ := get(t, c, srv.URL+u, "Authorization", "Bearer wrong-token-0123456789"); code != 401 {
			t.Errorf("%s with a wrong token: %d, want 401", u, code)
		}
		if code, _ := get(t, c, srv.URL+u+"?token=wrong"); code != 401 {
			t.Errorf("%s with a wrong ?token: %d, want 401", u, code)
		}
		if code, _ := get(t, c, srv.URL+u, "Authorization", "Bearer "+tok); code != 200 {
			t.Errorf("%s with the token: %d, want 200", u, code)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/?token="+tok, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly || strings.Contains(resp.Header.Get("Location"), tok) {
		t.Fatalf("?token= answered %d, cookies %v, location %q", resp.StatusCode, resp.Cookies(), resp.Header.Get("Location"))
	}
	if code, _ := get(t, c, srv.URL+"/", "Cookie", resp.Cookies()[0].String()); code != 200 {
		t.Errorf("with the cookie: %d", code)
	}
	if code, _ := get(t, c, srv.URL+"/", "Cookie", tokenCookie+"=nope"); code != 401 {
		t.Errorf("with a wrong cookie: %d", code)
	}
	req, _ = http.NewRequest("POST", srv.URL+"/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST: %v %v", resp, err)
	}
}

func TestLoopbackOnlyHostWithoutToken(t *testing.T) {
	path, _ := seed(t)
	srv := newServer(t, path, "")
	if code, _ := get(t, http.DefaultClient, srv.URL+"/"); code != 200 {
		t.Fatalf("loopback: %d", code)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Host = "attacker.example:8080" // DNS rebinding
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("Host attacker.example: %d, want 403", resp.StatusCode)
	}
}

func TestNamesAreEscaped(t *testing.T) {
	path, ids := seed(t)
	srv := newServer(t, path, "")
	for _, u := range []string{"/", "/runs/" + ids["hostile"], "/compare?run=" + ids["hostile"] + "&run=" + ids["full"], "/?q=" + "%3Cscript%3E"} {
		code, body := get(t, http.DefaultClient, srv.URL+u)
		if code != 200 {
			t.Fatalf("%s: %d", u, code)
		}
		for _, raw := range []string{"<script>window.__xss", "<img src=x"} {
			if strings.Contains(body, raw) {
				t.Errorf("%s holds %q unescaped", u, raw)
			}
		}
	}
	_, body := get(t, http.DefaultClient, srv.URL+"/runs/"+ids["hostile"])
	if !strings.Contains(body, "&lt;script&gt;window.__xss=&#34;name&#34;&lt;/script&gt;") || !strings.Contains(body, "&lt;img src=x onerror=") {
		t.Errorf("the run page does not show the names escaped:\n%s", body)
	}
}

func TestChartsJSON(t *testing.T) {
	path, ids := seed(t)
	srv := newServer(t, path, "")
	_, body := get(t, http.DefaultClient, srv.URL+"/api/runs/"+ids["full"]+"/charts")
	var charts []Chart
	if err := json.Unmarshal([]byte(body), &charts); err != nil {
		t.Fatal(err)
	}
	by := map[string]Chart{}
	for _, c := range charts {
		by[c.ID] = c
	}
	loss := by["loss"]
	if len(loss.Series) != 2 || len(loss.Marks) != 1 || loss.Marks[0].X != 21 || len(loss.X) != 60 {
		t.Fatalf("loss chart: %d series, marks %+v, %d x", len(loss.Series), loss.Marks, len(loss.X))
	}
	n := 0
	for _, y := range loss.Series[1].Y {
		if y != nil {
			n++
		}
	}
	if n != 40 {
		t.Errorf("restart segment has %d points, want 40", n)
	}
	if by["gpu_util"].Empty != "" || len(by["gpu_util"].Series) != 2 || len(by["deploy_latency"].X) != 20 {
		t.Errorf("GPU or router charts: %+v %+v", by["gpu_util"], by["deploy_latency"])
	}
	_, body = get(t, http.DefaultClient, srv.URL+"/api/runs/"+ids["empty"]+"/charts")
	if err := json.Unmarshal([]byte(body), &charts); err != nil || len(charts) != 8 {
		t.Fatalf("run without metrics: %v %s", err, body)
	}
	for _, c := range charts {
		if c.Empty == "" || len(c.X) != 0 {
			t.Errorf("run without metrics: chart %s has no empty state: %+v", c.ID, c)
		}
	}
}

// TestBrowserPages loads every page in headless Chromium and reads back
// what each chart holds, the timeline and the escaped names.
func TestBrowserPages(t *testing.T) {
	b := uitest.New(t)
	path, ids := seed(t)
	srv := newServer(t, path, "")
	dir := uitest.ArtifactDir(t)

	p := b.Load(t, srv.URL+"/", filepath.Join(dir, "runs.png"))
	for _, id := range ids {
		if !strings.Contains(p.Text, id) {
			t.Errorf("runs page lacks %s", id)
		}
	}
	if !strings.Contains(p.Text, hostileName) || p.XSS != "" {
		t.Errorf("hostile run name not shown as text (xss %q)", p.XSS)
	}

	p = b.Load(t, srv.URL+"/runs/"+ids["full"], filepath.Join(dir, "run.png"))
	if strings.Join(p.Timeline, ",") != "prep,train,eval,deploy" {
		t.Errorf("timeline rows %v", p.Timeline)
	}
	want := map[string][]int{"loss": {35, 40}, "lr": {35, 40}, "gpu_util": {30, 30}, "gpu_mem": {30, 30}, "gpu_power": {30, 30},
		"deploy_traffic": {19}, "deploy_errors": {19}, "deploy_latency": {20}}
	for id, pts := range want {
		c := p.Charts[id]
		if c.State != "drawn" || fmt.Sprint(c.Points) != fmt.Sprint(pts) {
			t.Errorf("chart %s: %+v, want points %v", id, c, pts)
		}
	}
	if l := p.Charts["loss"].Labels; len(l) != 2 || !strings.Contains(l[1], "restart 1") {
		t.Errorf("loss segments %v, want the second marked restart 1", l)
	}
	if !strings.Contains(p.Text, "perplexity") || !strings.Contains(p.Text, "<= 12") || !strings.Contains(p.Text, "PASS") {
		t.Errorf("eval table missing:\n%s", p.Text)
	}

	p = b.Load(t, srv.URL+"/runs/"+ids["empty"], filepath.Join(dir, "run-empty.png"))
	if c := p.Charts["loss"]; c.State != "empty" || !strings.Contains(c.Message, "No training metrics") {
		t.Errorf("run without metrics: loss chart %+v", c)
	}
	if !strings.Contains(p.Text, "No eval report yet") {
		t.Errorf("run without metrics: no eval empty state")
	}

	p = b.Load(t, srv.URL+"/runs/"+ids["hostile"], filepath.Join(dir, "run-hostile.png"))
	if p.XSS != "" || !strings.Contains(p.Text, hostileName) || !strings.Contains(p.Text, hostileMetric) {
		t.Errorf("hostile names: xss %q, shown: %v %v", p.XSS, strings.Contains(p.Text, hostileName), strings.Contains(p.Text, hostileMetric))
	}

	p = b.Load(t, srv.URL+"/compare?run="+ids["full"]+"&run="+ids["hostile"], filepath.Join(dir, "compare.png"))
	if c := p.Charts["compare_loss"]; c.State != "drawn" || fmt.Sprint(c.Points) != "[60 10]" {
		t.Errorf("compare chart %+v, want 60 and 10 points", c)
	}
	if !strings.Contains(p.Text, "lr") || !strings.Contains(p.Text, "0.01") || p.XSS != "" {
		t.Errorf("compare page lacks the differing lr:\n%s", p.Text)
	}
}

// TestSweepRanking: a sweep run's page ranks its tasks, best passing first,
// with the settings that vary, each task's final loss and why the others
// lost.
func TestSweepRanking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "st.db")
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := "sw-20260101-000000-dddd"
	if err := st.CreateRun(ctx, store.Run{ID: id, Name: "sw", RunDir: "/r/" + id, Transport: "local"},
		[]string{"prep", "train[0]", "train[1]", "train[2]", "eval[0]", "eval[1]", "eval[2]", "select", "deploy"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveSweepTasks(ctx, id, store.SweepRun{Metric: "perplexity", Goal: "min"}, []store.SweepTask{
		{Task: 0, Settings: `{"lr":0.1}`}, {Task: 1, Settings: `{"lr":0.2}`}, {Task: 2, Settings: `{"lr":0.3}`}}); err != nil {
		t.Fatal(err)
	}
	f := func(x float64) *float64 { return &x }
	yes, no := true, false
	if err := st.SaveSweepSelection(ctx, id, []store.SweepTask{{Task: 0, Metric: f(9), Passed: &yes}, {Task: 1, Metric: f(4), Passed: &yes, Winner: true},
		{Task: 2, Metric: f(2), Passed: &no, Reason: "gate perplexity = 2, want >= 3"}}); err != nil {
		t.Fatal(err)
	}
	s := int64(5)
	if _, err := st.SaveMetricLines(ctx, id, store.MetricFile{Path: "/r/m", Stage: "train[1]"}, store.MetricFile{Path: "/r/m", Stage: "train[1]", ReadTo: 10},
		[]store.MetricPoint{{Stage: "train[1]", Name: "loss", Step: &s, Value: 1.25, Time: time.Now(), JobID: "7_1", Attempt: 1}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	srv := newServer(t, path, "")
	code, body := get(t, http.DefaultClient, srv.URL+"/runs/"+id)
	if code != 200 {
		t.Fatalf("run page: %d\n%s", code, body)
	}
	i := strings.Index(body, `id="sweep"`)
	if i < 0 {
		t.Fatalf("no sweep table:\n%s", body)
	}
	table := body[i:]
	table = table[:strings.Index(table, "</table>")]
	rows := regexp.MustCompile(`<tr data-task="(\d)"`).FindAllStringSubmatch(table, -1)
	if len(rows) != 3 || rows[0][1] != "1" || rows[1][1] != "0" || rows[2][1] != "2" {
		t.Errorf("tasks not best first (1, 0, then the failed 2): %v\n%s", rows, table)
	}
	for _, want := range []string{"winner", "1.25", "gate perplexity = 2, want &gt;= 3", "<th>lr</th>"} {
		if !strings.Contains(table, want) {
			t.Errorf("sweep table lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(body, `data-chart="sweep_loss"`) {
		t.Error("the run page has no chart of the tasks' curves")
	}
	_, body = get(t, http.DefaultClient, srv.URL+"/api/runs/"+id+"/charts")
	var charts []Chart
	if err := json.Unmarshal([]byte(body), &charts); err != nil {
		t.Fatal(err)
	}
	var sc *Chart
	for i := range charts {
		if charts[i].ID == "sweep_loss" {
			sc = &charts[i]
		}
	}
	if sc == nil || len(sc.Series) != 3 || sc.Series[1].Label != "task 1 lr=0.2" || len(sc.X) != 1 || sc.X[0] != 5 ||
		sc.Series[1].Y[0] == nil || *sc.Series[1].Y[0] != 1.25 || sc.Series[0].Y[0] != nil {
		t.Errorf("sweep chart: %+v", sc)
	}
}
