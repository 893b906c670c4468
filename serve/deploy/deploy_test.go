package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/serve"
)

// fakeModel is an OpenAI-style completions server answering with its own
// name; failEvery > 0 fails every failEvery-th completion with a 500.
type fakeModel struct {
	name      string
	failEvery int64
	delay     time.Duration
	n         atomic.Int64
	srv       *httptest.Server
}

func newFakeModel(t *testing.T, name string, failEvery int64) *fakeModel {
	t.Helper()
	m := &fakeModel{name: name, failEvery: failEvery}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.WriteHeader(http.StatusOK)
		case "/v1/completions":
			_, _ = io.Copy(io.Discard, r.Body)
			if m.delay > 0 {
				time.Sleep(m.delay)
			}
			n := m.n.Add(1)
			if m.failEvery > 0 && n%m.failEvery == 0 {
				http.Error(w, `{"error":"boom"}`, http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"object":"text_completion","model":%q,"choices":[{"index":0,"text":"hello from %s"}]}`, m.name, m.name)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// harness is a router running on loopback with a state file and a stats
// file, and a controller driving it through the files.
type harness struct {
	t         *testing.T
	dir       string
	url       string
	router    *serve.Router
	ctl       *Controller
	mu        sync.Mutex
	cancelled []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir}
	paths := PathsFor(filepath.Join(dir, "router.json"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- serve.RunRouter(ctx, serve.Options{
			Listener: ln, StatePath: paths.State, HealthInterval: 100 * time.Millisecond,
			PollInterval: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
			OnReady: func(r *serve.Router, _ net.Addr) {
				h.router = r
				go StatsWriter(ctx, r, paths.Stats, 100*time.Millisecond, nil)
				close(ready)
			},
		})
	}()
	<-ready
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})
	h.url = "http://" + ln.Addr().String()
	h.ctl = &Controller{
		Name: "tiny", Paths: paths,
		Router: FileRouter{StatePath: paths.State, StatsPath: paths.Stats},
		Cancel: func(_ context.Context, id string) error {
			h.mu.Lock()
			h.cancelled = append(h.cancelled, id)
			h.mu.Unlock()
			return nil
		},
		Poll: 50 * time.Millisecond, Settle: 10 * time.Second,
	}
	return h
}

func (h *harness) cancelledJobs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.cancelled...)
}

func member(run, job string, m *fakeModel) Member {
	return Member{Backend: run, Run: run, JobID: job, URL: m.srv.URL, Model: "tiny", Version: run + "-sha"}
}

// load sends completions through the router from workers until stopped,
// counting answers by model and failures.
type load struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	byModel  map[string]int
	failures []string
}

func startLoad(url string, workers int) *load {
	l := &load{stop: make(chan struct{}), byModel: map[string]int{}}
	client := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := client.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"hi","max_tokens":4}`))
				l.mu.Lock()
				if err != nil {
					l.failures = append(l.failures, err.Error())
				} else {
					var out struct {
						Model string `json:"model"`
					}
					body, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || rerr != nil || json.Unmarshal(body, &out) != nil {
						l.failures = append(l.failures, fmt.Sprintf("%s %d (%v) %s", time.Now().Format(time.StampMilli), resp.StatusCode, rerr, body))
					} else {
						l.byModel[out.Model]++
					}
				}
				l.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *load) finish() (map[string]int, []string) {
	close(l.stop)
	l.wg.Wait()
	return l.byModel, l.failures
}

func (l *load) count(model string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byModel[model]
}

func actions(t *testing.T, path string) []string {
	t.Helper()
	evs, err := ReadHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Action)
	}
	return out
}

func TestBlueGreenSwitchesWithoutFailedRequests(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	blue, green := newFakeModel(t, "blue", 0), newFakeModel(t, "green", 0)
	act, err := h.ctl.Admit(ctx, member("run-blue", "101", blue), StrategyBlueGreen, 0, 0, time.Second)
	if err != nil || act != ActionDeploy {
		t.Fatalf("first Admit: %q, %v", act, err)
	}
	l := startLoad(h.url, 4)
	deadline := time.Now().Add(10 * time.Second)
	for l.count("blue") < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	act, err = h.ctl.Admit(ctx, member("run-green", "102", green), StrategyBlueGreen, 0, 0, 500*time.Millisecond)
	if err != nil || act != ActionPromote {
		t.Fatalf("blue-green Admit: %q, %v", act, err)
	}
	rec, _ := h.ctl.Record()
	if rec.Stable.Run != "run-green" || rec.Previous == nil || rec.Previous.Run != "run-blue" || rec.Previous.Weight != 0 {
		t.Fatalf("record after the switch: %+v", rec)
	}
	// Once the router has the new state, green gets everything.
	time.Sleep(300 * time.Millisecond)
	before := l.count("blue")
	time.Sleep(300 * time.Millisecond)
	if after := l.count("blue"); after != before {
		t.Errorf("blue still got %d requests after the switch", after-before)
	}
	out, err := h.ctl.WaitRetire(ctx, member("run-green", "102", green))
	if err != nil || !out.Promoted {
		t.Fatalf("WaitRetire: %+v, %v", out, err)
	}
	time.Sleep(200 * time.Millisecond)
	byModel, failures := l.finish()
	if len(failures) > 0 {
		t.Errorf("%d failed requests during the switch, e.g. %s", len(failures), failures[0])
	}
	if byModel["blue"] == 0 || byModel["green"] == 0 {
		t.Errorf("answers by model: %v", byModel)
	}
	if got := h.cancelledJobs(); len(got) != 1 || got[0] != "101" {
		t.Errorf("cancelled jobs %v, want [101] (blue, after its rollback window)", got)
	}
	st := h.router.State()
	if len(st.Backends) != 1 || st.Backends[0].Name != "run-green" || st.Backends[0].Weight != 100 {
		t.Errorf("routing state %+v", st)
	}
	if got := strings.Join(actions(t, h.ctl.Paths.History), ","); got != "deploy,promote,retire" {
		t.Errorf("history %s", got)
	}
	evs, _ := ReadHistory(h.ctl.Paths.History)
	if p := evs[1]; p.From == nil || p.From.Version != "run-blue-sha" || p.To == nil || p.To.Version != "run-green-sha" || p.Reason == "" {
		t.Errorf("promote event lacks the two versions or a reason: %+v", p)
	}
}

func TestCanaryWithErrorsRollsBackOnItsOwn(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	stable, bad := newFakeModel(t, "stable", 0), newFakeModel(t, "canary", 2)
	if _, err := h.ctl.Admit(ctx, member("run-1", "201", stable), StrategyCanary, 50, time.Minute, time.Second); err != nil {
		t.Fatal(err)
	}
	l := startLoad(h.url, 4)
	defer l.finish()
	cand := member("run-2", "202", bad)
	act, err := h.ctl.Admit(ctx, cand, StrategyCanary, 50, time.Minute, time.Second)
	if err != nil || act != ActionCanary {
		t.Fatalf("Admit: %q, %v", act, err)
	}
	start := time.Now()
	out, err := h.ctl.RunCanary(ctx, cand, CanaryConfig{Duration: time.Minute, MinRequests: 10, ErrorRateMargin: 0.05, LatencyMargin: 0.5, RollbackWindow: time.Second})
	if err != nil || out.Promoted || out.ByHand {
		t.Fatalf("RunCanary: %+v, %v", out, err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("rollback took %s: it should not wait for the whole minute", took)
	}
	if !strings.Contains(out.Reason, "error rate") {
		t.Errorf("reason %q does not name the error rate", out.Reason)
	}
	rec, _ := h.ctl.Record()
	if rec.Candidate != nil || rec.Stable.Run != "run-1" || rec.Stable.Weight != 100 {
		t.Errorf("record %+v", rec)
	}
	if got := h.cancelledJobs(); len(got) != 1 || got[0] != "202" {
		t.Errorf("cancelled %v, want the canary's job 202", got)
	}
	if got := strings.Join(actions(t, h.ctl.Paths.History), ","); got != "deploy,canary,rollback" {
		t.Errorf("history %s", got)
	}
}

func TestCanaryPromotesAHealthyCandidate(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	stable, good := newFakeModel(t, "stable", 0), newFakeModel(t, "canary", 0)
	if _, err := h.ctl.Admit(ctx, member("run-1", "301", stable), StrategyCanary, 30, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	l := startLoad(h.url, 4)
	cand := member("run-2", "302", good)
	if _, err := h.ctl.Admit(ctx, cand, StrategyCanary, 30, 2*time.Second, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	out, err := h.ctl.RunCanary(ctx, cand, CanaryConfig{Duration: 2 * time.Second, MinRequests: 5, ErrorRateMargin: 0.05, LatencyMargin: 5, MinLatencyDelta: 100 * time.Millisecond, RollbackWindow: 200 * time.Millisecond})
	if err != nil || !out.Promoted {
		t.Fatalf("RunCanary: %+v, %v", out, err)
	}
	if _, err := h.ctl.WaitRetire(ctx, cand); err != nil {
		t.Fatal(err)
	}
	_, failures := l.finish()
	if len(failures) > 0 {
		t.Errorf("%d failures, e.g. %s", len(failures), failures[0])
	}
	if got := strings.Join(actions(t, h.ctl.Paths.History), ","); got != "deploy,canary,promote,retire" {
		t.Errorf("history %s", got)
	}
	if got := h.cancelledJobs(); len(got) != 1 || got[0] != "301" {
		t.Errorf("cancelled %v, want the old stable's job 301", got)
	}
}

func TestManualPromoteAndRollback(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	a, b := newFakeModel(t, "a", 0), newFakeModel(t, "b", 0)
	if _, err := h.ctl.Rollback(ctx, "x"); !errors.Is(err, ErrNothingToRollBack) {
		t.Fatalf("Rollback of nothing: %v", err)
	}
	if _, err := h.ctl.Admit(ctx, member("run-a", "1", a), StrategyCanary, 10, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Nothing due: no write at all.
	before, _ := h.ctl.Record()
	if retired, err := h.ctl.RetireDue(ctx); retired || err != nil {
		t.Fatalf("RetireDue: %v %v", retired, err)
	}
	if after, _ := h.ctl.Record(); after.StateVersion != before.StateVersion || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("RetireDue with nothing due rewrote the record: %+v", after)
	}
	if _, err := h.ctl.Promote(ctx, "x", time.Hour); !errors.Is(err, ErrNoCandidate) {
		t.Fatalf("Promote without candidate: %v", err)
	}
	if _, err := h.ctl.Admit(ctx, member("run-b", "2", b), StrategyCanary, 10, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ctl.Admit(ctx, member("run-c", "3", b), StrategyCanary, 10, time.Hour, time.Hour); !errors.Is(err, ErrBusy) {
		t.Fatalf("second canary while one runs: %v", err)
	}
	rec, err := h.ctl.Promote(ctx, "manual: looks good", time.Hour)
	if err != nil || rec.Stable.Run != "run-b" || rec.Previous.Run != "run-a" {
		t.Fatalf("Promote: %+v %v", rec, err)
	}
	// Within the rollback window, rollback restores a and takes b out.
	rec, err = h.ctl.Rollback(ctx, "manual: b is wrong")
	if err != nil || rec.Stable.Run != "run-a" || rec.Stable.Weight != 100 || rec.Previous != nil {
		t.Fatalf("Rollback: %+v %v", rec, err)
	}
	if got := h.cancelledJobs(); len(got) != 1 || got[0] != "2" {
		t.Errorf("cancelled %v, want b's job", got)
	}
	st, err := serve.ReadState(h.ctl.Paths.State)
	if err != nil || len(st.Backends) != 1 || st.Backends[0].Name != "run-a" {
		t.Errorf("state %+v %v", st, err)
	}
	if got := strings.Join(actions(t, h.ctl.Paths.History), ","); got != "deploy,canary,promote,rollback" {
		t.Errorf("history %s", got)
	}
}

func TestJudge(t *testing.T) {
	cfg := CanaryConfig{MinRequests: 10, ErrorRateMargin: 0.02, LatencyMargin: 0.5, MinLatencyDelta: 10 * time.Millisecond}
	ms := time.Millisecond
	tests := []struct {
		name           string
		canary, stable Window
		final          bool
		decided, promo bool
		reason         string
	}{
		{"too early", Window{Requests: 5, Errors: 5}, Window{Requests: 100}, false, false, false, ""},
		{"errors early", Window{Requests: 10, Errors: 5}, Window{Requests: 100}, false, true, false, "error rate"},
		{"fine so far", Window{Requests: 50, Errors: 1, P95: 500 * ms}, Window{Requests: 100, P95: 10 * ms}, false, false, false, ""},
		{"too little traffic", Window{Requests: 3}, Window{Requests: 100}, true, true, false, "too little"},
		{"slow", Window{Requests: 50, P95: 100 * ms}, Window{Requests: 100, P95: 50 * ms}, true, true, false, "p95"},
		{"within margin", Window{Requests: 50, Errors: 1, P95: 70 * ms}, Window{Requests: 100, Errors: 1, P95: 50 * ms}, true, true, true, "healthy"},
		{"tiny latencies", Window{Requests: 50, P95: 8 * ms}, Window{Requests: 100, P95: 2 * ms}, true, true, true, "healthy"},
		{"no stable baseline", Window{Requests: 50, P95: 900 * ms}, Window{Requests: 2, P95: ms}, true, true, true, "not compared"},
		{"no stable baseline, errors", Window{Requests: 50, Errors: 5}, Window{}, true, true, false, "error rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(tt.canary, tt.stable, cfg, tt.final)
			if v.Decided != tt.decided || v.Promote != tt.promo || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("Judge = %+v, want decided=%v promote=%v reason ~ %q", v, tt.decided, tt.promo, tt.reason)
			}
		})
	}
}

func TestSmoke(t *testing.T) {
	m := newFakeModel(t, "m", 0)
	slow := newFakeModel(t, "slow", 0)
	slow.delay = 300 * time.Millisecond
	p := func(prompt string, expect []string, re string) SmokePrompt {
		sp := SmokePrompt{Prompt: prompt, Expect: expect}
		if re != "" {
			sp.Regex = regexp.MustCompile(re)
		}
		return sp
	}
	tests := []struct {
		name    string
		url     string
		cfg     SmokeConfig
		passed  bool
		succ    int
		problem string
	}{
		{"substrings", m.srv.URL, SmokeConfig{Prompts: []SmokePrompt{p("a", []string{"hello", "from m"}, "")}}, true, 1, ""},
		{"regex", m.srv.URL, SmokeConfig{Prompts: []SmokePrompt{p("a", nil, `^hello from \w$`)}}, true, 1, ""},
		{"missing substring", m.srv.URL, SmokeConfig{Prompts: []SmokePrompt{p("a", []string{"bye"}, "")}}, false, 0, "lacks"},
		{"regex mismatch", m.srv.URL, SmokeConfig{Prompts: []SmokePrompt{p("a", nil, `^\d+$`)}}, false, 0, "does not match"},
		{"min success", m.srv.URL, SmokeConfig{MinSuccess: 1, Prompts: []SmokePrompt{p("a", []string{"bye"}, ""), p("b", nil, "")}}, true, 1, ""},
		{"latency", slow.srv.URL, SmokeConfig{Latency: 100 * time.Millisecond, Prompts: []SmokePrompt{p("a", nil, "")}}, false, 0, "latency budget"},
		{"down", "http://127.0.0.1:1", SmokeConfig{Prompts: []SmokePrompt{p("a", nil, "")}}, false, 0, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Smoke(context.Background(), nil, tt.url, tt.cfg)
			if rep.Passed != tt.passed || rep.Successes != tt.succ {
				t.Errorf("Smoke = %+v", rep)
			}
			if tt.problem != "" && !strings.Contains(rep.Summary(), tt.problem) {
				t.Errorf("summary %q lacks %q", rep.Summary(), tt.problem)
			}
		})
	}
}

// TestStageSmokeFailureNeverGetsTraffic runs a whole stage whose new server
// fails its smoke test: it is cancelled, never appears in the routing
// state, and the stable model keeps serving.
func TestStageSmokeFailureNeverGetsTraffic(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	stable, cand := newFakeModel(t, "stable", 0), newFakeModel(t, "cand", 0)
	if _, err := h.ctl.Admit(ctx, member("run-1", "401", stable), StrategyBlueGreen, 0, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(h.ctl.Paths.State)
	addrFile := filepath.Join(h.dir, "run-2", "serve", "address")
	res, err := RunStage(ctx, StageConfig{
		Controller: h.ctl, Strategy: StrategyBlueGreen,
		Candidate: Member{Run: "run-2", Model: "tiny", Version: "v2"},
		SubmitServer: func(context.Context) (string, error) {
			return "402", writeAtomic(addrFile, []byte(strings.TrimPrefix(cand.srv.URL, "http://")+"\n"))
		},
		AddressFile: addrFile, StartupTimeout: 10 * time.Second,
		Smoke:          SmokeConfig{Prompts: []SmokePrompt{{Prompt: "x", Expect: []string{"never said"}}}},
		RollbackWindow: time.Second,
	})
	if !errors.Is(err, ErrSmokeFailed) {
		t.Fatalf("RunStage: %v (%+v)", err, res)
	}
	if got := h.cancelledJobs(); len(got) != 1 || got[0] != "402" {
		t.Errorf("cancelled %v, want the new serving job", got)
	}
	after, _ := os.ReadFile(h.ctl.Paths.State)
	if string(before) != string(after) {
		t.Errorf("routing state changed:\n%s\n---\n%s", before, after)
	}
	if got := strings.Join(actions(t, h.ctl.Paths.History), ","); got != "deploy,smoke_failed" {
		t.Errorf("history %s", got)
	}
	if cand.n.Load() != 1 {
		t.Errorf("the candidate got %d completions, want only the smoke test's", cand.n.Load())
	}
}

// TestStageServingJobDies: a serving job that ends before it is up fails
// the stage quickly.
func TestStageServingJobDies(t *testing.T) {
	h := newHarness(t)
	_, err := RunStage(context.Background(), StageConfig{
		Controller: h.ctl, Strategy: StrategyBlueGreen, Candidate: Member{Run: "run-1"},
		SubmitServer: func(context.Context) (string, error) { return "9", nil },
		JobEnded: func(context.Context, string) (bool, string, error) {
			return true, "FAILED", nil
		},
		AddressFile: filepath.Join(h.dir, "addr"), StartupTimeout: time.Minute,
	})
	if err == nil || !strings.Contains(err.Error(), "ended (FAILED)") {
		t.Fatalf("RunStage: %v", err)
	}
	if got := strings.Join(actions(t, h.ctl.Paths.History), ","); got != "failed" {
		t.Errorf("history %s", got)
	}
}

func TestRunServer(t *testing.T) {
	dir := t.TempDir()
	addr := filepath.Join(dir, "address")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunServer(ctx, ServerOptions{
			Command: []string{exe, "-test.run=^TestHelperServer$", "--", "{port}", "{model}", "{name}"},
			Model:   "/ckpt", Name: "tiny", Host: "127.0.0.1", AddressFile: addr, StartupTimeout: 20 * time.Second,
		})
	}()
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(addr); err == nil {
			got = strings.TrimSpace(string(b))
			break
		}
	}
	if got == "" {
		cancel()
		t.Fatalf("no address file: %v", <-done)
	}
	resp, err := http.Get("http://" + got + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "/ckpt tiny" {
		t.Errorf("placeholders: server says %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunServer after cancel: %v", err)
	}
	if _, err := os.Stat(addr); !os.IsNotExist(err) {
		t.Errorf("address file left behind: %v", err)
	}
}

// TestHelperServer is the model server TestRunServer starts: args after
// "--" are port, model and name.
func TestHelperServer(t *testing.T) {
	args := os.Args
	i := len(args) - 3
	if i < 1 || args[i-1] != "--" {
		t.Skip("helper process only")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/v1/models", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, args[i+1]+" "+args[i+2]) })
	srv := &http.Server{Addr: "127.0.0.1:" + args[i], Handler: mux}
	go func() {
		time.Sleep(time.Minute)
		srv.Close()
	}()
	_ = srv.ListenAndServe()
	os.Exit(0)
}

// TestAdminRouter drives a router through its admin API instead of files.
func TestAdminRouter(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve.RunRouter(ctx, serve.Options{Listener: ln, AdminTokenFile: tokenFile, HealthInterval: 100 * time.Millisecond})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	}()
	m := newFakeModel(t, "m", 0)
	ar := AdminRouter{URL: "http://" + ln.Addr().String(), Token: "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS"}
	ctl := &Controller{Name: "tiny", Paths: PathsFor(filepath.Join(dir, "router.json")), Router: ar, Poll: 50 * time.Millisecond, Settle: 10 * time.Second}
	if _, err := ctl.Admit(context.Background(), member("run-1", "1", m), StrategyBlueGreen, 0, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := ar.Current(context.Background())
	if err != nil || len(st.Backends) != 1 || st.Backends[0].Name != "run-1" || st.Version != 1 {
		t.Fatalf("state through the admin API: %+v, %v", st, err)
	}
	snap, err := ar.Stats(context.Background())
	if err != nil || snap.StateVersion != 1 || !snap.Backends["run-1"].Healthy {
		t.Fatalf("stats through the admin API: %+v, %v", snap, err)
	}
	if _, err := (AdminRouter{URL: ar.URL, Token: "wrong"}).Current(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
}
