package serve

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
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testBackend is a loopback model-server stand-in. GET /health answers 200
// unless sick; /slow answers after 50ms; everything else answers at once with
// the backend's name.
type testBackend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
	sick atomic.Bool
}

func (b *testBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		if b.sick.Load() {
			http.Error(w, "sick", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
		return
	}
	b.hits.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	if r.URL.Path == "/slow" {
		time.Sleep(50 * time.Millisecond)
	}
	if strings.HasPrefix(r.URL.Path, "/fail") {
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	w.Header().Set("X-Backend", b.name)
	_, _ = io.WriteString(w, b.name)
}

func newTestBackend(t *testing.T, name string) *testBackend {
	t.Helper()
	b := &testBackend{name: name}
	b.srv = httptest.NewServer(b)
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBackend) backend(weight int) Backend {
	return Backend{Name: b.name, URL: b.srv.URL, Weight: weight}
}

type testRouter struct {
	r      *Router
	url    string
	client *http.Client
}

// startRouter runs RunRouter on a loopback port with fast health checks and
// state polling, and stops it (checking for a clean shutdown) at cleanup.
func startRouter(t *testing.T, opts Options) *testRouter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener = ln
	if opts.HealthInterval == 0 {
		opts.HealthInterval = 50 * time.Millisecond
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ready := make(chan *Router, 1)
	opts.OnReady = func(r *Router, _ net.Addr) { ready <- r }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunRouter(ctx, opts) }()
	tr := &testRouter{url: "http://" + ln.Addr().String()}
	select {
	case tr.r = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("router exited: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("router did not start")
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	tr.client = &http.Client{Transport: transport, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("router shutdown: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("router did not stop")
		}
		transport.CloseIdleConnections()
	})
	return tr
}

// get fetches path through the router and returns status and body.
func (tr *testRouter) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := tr.client.Get(tr.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeState(t *testing.T, path string, version int64, backends ...Backend) {
	t.Helper()
	if err := WriteState(path, State{Name: "tiny", Version: version, Backends: backends}); err != nil {
		t.Fatal(err)
	}
}

func TestWeightedSplit(t *testing.T) {
	a, b, c := newTestBackend(t, "a"), newTestBackend(t, "b"), newTestBackend(t, "c")
	tr := startRouter(t, Options{})
	if err := tr.r.Apply(t.Context(), State{Backends: []Backend{a.backend(60), b.backend(30), c.backend(10)}}); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range n / 4 {
				status, body := tr.get(t, fmt.Sprintf("/v1/completions?w=%d", w))
				if status != http.StatusOK {
					t.Errorf("status %d", status)
					return
				}
				mu.Lock()
				counts[body]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for name, want := range map[string]float64{"a": 0.6, "b": 0.3, "c": 0.1} {
		got := float64(counts[name]) / n
		if got < want-0.03 || got > want+0.03 {
			t.Errorf("backend %s got %.3f of traffic, want %.2f±0.03 (counts %v)", name, got, want, counts)
		}
	}
	// A request is recorded just after its response went out: allow for it.
	eventually(t, 2*time.Second, "stats to match traffic", func() bool {
		st := tr.r.Stats()
		return st["a"].Requests+st["b"].Requests+st["c"].Requests == n && st["a"].WindowRequests == counts["a"]
	})
}

func TestHealthCheckRemovesAndReaddsDeadBackend(t *testing.T) {
	green := newTestBackend(t, "green")
	// blue runs on a port we control so it can be killed and restarted at
	// the same address.
	blue := &testBackend{name: "blue"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{Handler: blue}
	go func() { _ = srv.Serve(ln) }()

	tr := startRouter(t, Options{})
	if err := tr.r.Apply(t.Context(), State{Backends: []Backend{
		{Name: "blue", URL: "http://" + addr, Weight: 50}, green.backend(50),
	}}); err != nil {
		t.Fatal(err)
	}
	healthy := func(name string, want bool) func() bool {
		return func() bool { return tr.r.Stats()[name].Healthy == want }
	}
	eventually(t, 2*time.Second, "both healthy", func() bool { return healthy("blue", true)() && healthy("green", true)() })

	_ = srv.Close() // blue dies
	eventually(t, 2*time.Second, "blue marked unhealthy", healthy("blue", false))
	for range 50 {
		if status, body := tr.get(t, "/v1/models"); status != http.StatusOK || body != "green" {
			t.Fatalf("with blue dead got %d %q", status, body)
		}
	}

	// Kill green too: the router answers 503 with a JSON error.
	green.sick.Store(true)
	eventually(t, 2*time.Second, "green marked unhealthy", healthy("green", false))
	status, body := tr.get(t, "/v1/models")
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if status != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil || e.Error.Message == "" {
		t.Fatalf("all unhealthy: got %d %q, want 503 with JSON error", status, body)
	}
	green.sick.Store(false)

	// Blue comes back at the same address and is routed to again.
	var ln2 net.Listener
	eventually(t, 2*time.Second, "re-listen on "+addr, func() bool {
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	})
	srv2 := &http.Server{Handler: blue}
	go func() { _ = srv2.Serve(ln2) }()
	t.Cleanup(func() { _ = srv2.Close() })
	eventually(t, 2*time.Second, "blue healthy again", healthy("blue", true))
	eventually(t, 2*time.Second, "green healthy again", healthy("green", true))
	before := blue.hits.Load()
	for range 20 {
		if status, _ := tr.get(t, "/v1/models"); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	}
	if got := blue.hits.Load() - before; got != 10 {
		t.Fatalf("blue served %d of 20 requests after recovery, want 10", got)
	}
}

func TestStreamingIsUnbuffered(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	doRelease := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(doRelease)
	finished := make(chan struct{})
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		defer close(finished)
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		_, _ = io.WriteString(w, "data: {\"token\":\"one\"}\n\n")
		fl.Flush()
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "data: {\"token\":\"two\"}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(sse.Close)
	tr := startRouter(t, Options{})
	if err := tr.r.Apply(t.Context(), State{Backends: []Backend{{Name: "sse", URL: sse.URL, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}

	resp, err := tr.client.Post(tr.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	if resp.ContentLength != -1 {
		t.Fatalf("streamed response has a content length %d", resp.ContentLength)
	}
	rd := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() {
		line, _ := rd.ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if !strings.Contains(line, "one") {
			t.Fatalf("first line %q", line)
		}
	case <-finished:
		t.Fatal("backend finished before the first event reached the client")
	case <-time.After(3 * time.Second):
		t.Fatal("first event did not arrive while the backend was still streaming")
	}
	select {
	case <-finished:
		t.Fatal("backend finished early")
	default:
	}
	doRelease()
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), "two") || !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("rest of stream %q", rest)
	}
}

func TestHotReloadZeroFailures(t *testing.T) {
	blue, green := newTestBackend(t, "blue"), newTestBackend(t, "green")
	path := filepath.Join(t.TempDir(), "state.json")
	writeState(t, path, 1, blue.backend(100))
	tr := startRouter(t, Options{StatePath: path})

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	served := map[string]*atomic.Int64{"blue": {}, "green": {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := "/v1/completions"
				if i%5 == w%5 {
					p = "/slow" // keep requests in flight across switches
				}
				resp, err := tr.client.Post(tr.url+p, "application/json", strings.NewReader(`{"prompt":"hi"}`))
				if err == nil {
					body, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr == nil && resp.StatusCode == http.StatusOK {
						ok.Add(1)
						if c := served[string(body)]; c != nil {
							c.Add(1)
						}
						continue
					}
					err = fmt.Errorf("status %d body %q read err %v", resp.StatusCode, body, rerr)
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}

	steps := [][]Backend{
		{blue.backend(50), green.backend(50)},
		{blue.backend(0), green.backend(100)},
		{blue.backend(100), green.backend(0)},
		{blue.backend(10), green.backend(90)},
		{green.backend(100)}, // blue removed
	}
	time.Sleep(150 * time.Millisecond)
	for i, bs := range steps {
		writeState(t, path, int64(i+2), bs...)
		version := int64(i + 2)
		eventually(t, 2*time.Second, fmt.Sprintf("state version %d applied", version), func() bool { return tr.r.State().Version == version })
		time.Sleep(300 * time.Millisecond)
	}
	blueBefore := blue.hits.Load()
	time.Sleep(250 * time.Millisecond)
	close(stop)
	wg.Wait()

	t.Logf("requests ok=%d failed=%d blue=%d green=%d", ok.Load(), failed.Load(), served["blue"].Load(), served["green"].Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during reconfiguration, first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 || served["blue"].Load() == 0 || served["green"].Load() == 0 {
		t.Fatalf("load did not exercise both backends")
	}
	if got := blue.hits.Load() - blueBefore; got != 0 {
		t.Fatalf("removed backend blue received %d new requests", got)
	}
	// The removed backend drains and its gauges disappear.
	eventually(t, 2*time.Second, "blue drained", func() bool {
		return !strings.Contains(scrape(t, tr), `slurmtune_router_backend_weight{backend="blue"}`)
	})
}

func scrape(t *testing.T, tr *testRouter) string {
	t.Helper()
	status, body := tr.get(t, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	return body
}

func TestAdminEndpoint(t *testing.T) {
	blue, green := newTestBackend(t, "blue"), newTestBackend(t, "green")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state.json")
	writeState(t, path, 1, blue.backend(100))
	tr := startRouter(t, Options{StatePath: path, AdminTokenFile: tokenFile})

	body, err := json.Marshal(State{Name: "tiny", Version: 2, Backends: []Backend{green.backend(100)}})
	if err != nil {
		t.Fatal(err)
	}
	put := func(auth string, body []byte) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, tr.url+"/admin/state", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := tr.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, auth := range []string{"", "Bearer wrong", "Basic SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS", "Bearer SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS2"} {
		if got := put(auth, body); got != http.StatusUnauthorized {
			t.Errorf("PUT with auth %q: %d, want 401", auth, got)
		}
	}
	if v := tr.r.State().Version; v != 1 {
		t.Fatalf("rejected PUT changed state to version %d", v)
	}
	if got := put("Bearer SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS", []byte(`{"backends":[{"name":"x"}]}`)); got != http.StatusBadRequest {
		t.Errorf("invalid state: %d, want 400", got)
	}
	if got := put("Bearer SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS", body); got != http.StatusOK {
		t.Fatalf("good PUT: %d", got)
	}
	if _, b := tr.get(t, "/v1/models"); b != "green" {
		t.Fatalf("after PUT routed to %q", b)
	}
	if s, err := ReadState(path); err != nil || s.Version != 2 {
		t.Fatalf("PUT not persisted to the state file: %+v %v", s, err)
	}
	// Stats over the admin API.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tr.url+"/admin/stats", nil)
	req.Header.Set("Authorization", "Bearer SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS")
	resp, err := tr.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var stats map[string]BackendStats
	err = json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if err != nil || stats["green"].Name != "green" || stats["green"].Weight != 100 {
		t.Fatalf("admin stats: %+v %v", stats, err)
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	tr := startRouter(t, Options{})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, tr.url+"/admin/state", strings.NewReader(`{"backends":[]}`))
	req.Header.Set("Authorization", "Bearer anything")
	resp, err := tr.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("admin without token configured: %d, want 404", resp.StatusCode)
	}
}

func TestInvalidStateFileIgnored(t *testing.T) {
	blue, green := newTestBackend(t, "blue"), newTestBackend(t, "green")
	path := filepath.Join(t.TempDir(), "state.json")
	writeState(t, path, 1, blue.backend(100))
	tr := startRouter(t, Options{StatePath: path})
	if _, b := tr.get(t, "/"); b != "blue" {
		t.Fatalf("initial state not loaded: %q", b)
	}
	for _, bad := range []string{`{"name":"tiny","version":2,"backends":[{"name":"green","url":`, `{"version":3,"backends":[{"name":"green","url":"http://x","weight":-5}]}`} {
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // several polls
		if v := tr.r.State().Version; v != 1 {
			t.Fatalf("invalid file applied: version %d", v)
		}
		if status, b := tr.get(t, "/"); status != http.StatusOK || b != "blue" {
			t.Fatalf("after invalid file: %d %q", status, b)
		}
	}
	if !strings.Contains(scrape(t, tr), `slurmtune_router_state_reloads_total{result="invalid"} 2`) {
		t.Error("invalid reloads not counted")
	}
	writeState(t, path, 4, green.backend(100))
	eventually(t, 2*time.Second, "valid state applied after invalid ones", func() bool { return tr.r.State().Version == 4 })
	if _, b := tr.get(t, "/"); b != "green" {
		t.Fatalf("routed to %q", b)
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	blue := newTestBackend(t, "blue")
	var logBuf lockedBuffer
	tr := startRouter(t, Options{AccessLog: &logBuf})
	if err := tr.r.Apply(t.Context(), State{Version: 5, Backends: []Backend{blue.backend(100)}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		tr.get(t, "/v1/models")
	}
	if status, _ := tr.get(t, "/fail"); status != http.StatusInternalServerError {
		t.Fatalf("/fail: %d", status)
	}
	eventually(t, 2*time.Second, "all requests recorded", func() bool { return tr.r.Stats()["blue"].Requests == 4 })
	m := scrape(t, tr)
	for _, want := range []string{
		`slurmtune_router_requests_total{backend="blue",code="200"} 3`,
		`slurmtune_router_requests_total{backend="blue",code="500"} 1`,
		`slurmtune_router_errors_total{backend="blue"} 1`,
		`slurmtune_router_request_duration_seconds_count{backend="blue"} 4`,
		`slurmtune_router_request_duration_seconds_bucket{backend="blue",le="+Inf"} 4`,
		`slurmtune_router_backend_healthy{backend="blue"} 1`,
		`slurmtune_router_backend_weight{backend="blue"} 100`,
		`slurmtune_router_state_version 5`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	st := tr.r.Stats()["blue"]
	if st.Requests != 4 || st.Errors != 1 || st.ErrorRate != 0.25 || st.P95 <= 0 {
		t.Errorf("stats %+v", st)
	}

	var lines []string
	eventually(t, 2*time.Second, "4 access log lines", func() bool {
		lines = strings.Split(strings.TrimSpace(logBuf.String()), "\n")
		return len(lines) == 4
	})
	var rec struct {
		Method, Path, Backend string
		Status                int
		Duration              int64
		Bytes                 int64
		Attempts              int
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Method != "GET" || rec.Path != "/v1/models" || rec.Backend != "blue" || rec.Status != 200 || rec.Bytes != 4 || rec.Duration <= 0 || rec.Attempts != 1 {
		t.Errorf("access log line %s", lines[0])
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	blue := newTestBackend(t, "blue")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan *Router, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- RunRouter(ctx, Options{Listener: ln, OnReady: func(r *Router, _ net.Addr) { ready <- r }})
	}()
	r := <-ready
	if err := r.Apply(t.Context(), State{Backends: []Backend{blue.backend(1)}}); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		result <- err
	}()
	eventually(t, 2*time.Second, "request in flight", func() bool { return r.Stats()["blue"].InFlight == 1 })
	cancel()
	if err := <-result; err != nil {
		t.Fatalf("in-flight request failed during shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunRouter did not return")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		t.Fatal("router still serving after shutdown")
	}
}

func TestRunRouterErrors(t *testing.T) {
	err := RunRouter(t.Context(), Options{Listen: "127.0.0.1:0", AdminTokenFile: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.Contains(err.Error(), "read admin token") {
		t.Fatalf("missing token file: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = RunRouter(t.Context(), Options{Listen: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("listen on a busy port: %v", err)
	}
}

// lockedBuffer is a goroutine-safe bytes.Buffer for capturing logs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
