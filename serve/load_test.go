package serve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// completionBody is a typical small non-streamed completion response.
const completionBody = `{"id":"cmpl-1","object":"text_completion","created":1,"model":"tiny","choices":[{"index":0,"text":" world","finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}`

func completionHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, completionBody)
	})
}

type loadResult struct {
	sent, failed  int
	elapsed       time.Duration
	p50, p90, p99 time.Duration
	max           time.Duration
}

func (l loadResult) String() string {
	return fmt.Sprintf("%5d req in %v (%.0f req/s) failed=%d p50=%v p90=%v p99=%v max=%v",
		l.sent, l.elapsed.Round(time.Millisecond), float64(l.sent)/l.elapsed.Seconds(), l.failed,
		l.p50, l.p90, l.p99, l.max)
}

// runLoad sends POST requests to url open-loop at rps for d (at most 512 in
// flight) and reports the latency of each request from its send.
func runLoad(ctx context.Context, client *http.Client, url string, rps int, d time.Duration) loadResult {
	interval := time.Second / time.Duration(rps)
	n := int(d / interval)
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	sem := make(chan struct{}, 512)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"model":"tiny","prompt":"hello","max_tokens":1}`))
			if err != nil {
				failed.Add(1)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat[i] = time.Since(t0)
			if err != nil || resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	res := loadResult{sent: n, failed: int(failed.Load()), elapsed: time.Since(start)}
	slices.Sort(lat)
	res.p50, res.p90, res.p99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	res.max = lat[len(lat)-1]
	return res
}

func envInt(t *testing.T, key string, def int) int {
	if v := os.Getenv(key); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive integer", key, v)
		}
		return n
	}
	return def
}

// TestLoad compares latency against a loopback backend directly and through
// the router at a fixed request rate, with each part in its own process as
// deployed: the backend (this test binary, re-executed), the router (the
// slurmtune binary named by SLURMTUNE_BIN, run as `slurmtune router` with
// its default access and prompt logs) and the load generator (this test).
// It only runs with SLURMTUNE_LOAD=1 (scripts/bench/router.sh);
// SLURMTUNE_LOAD_RPS (default 1000), SLURMTUNE_LOAD_SECONDS (default 3) and
// SLURMTUNE_LOAD_ROUNDS (default 3) size it. With SLURMTUNE_LOAD_STRICT=1 it
// fails if the router adds more than 1ms at p99 (median of the rounds).
func TestLoad(t *testing.T) {
	if os.Getenv("SLURMTUNE_LOAD") == "" {
		t.Skip("load test: set SLURMTUNE_LOAD=1 or run scripts/bench/router.sh")
	}
	bin := os.Getenv("SLURMTUNE_BIN")
	if bin == "" {
		t.Fatal("SLURMTUNE_BIN: the slurmtune binary to run the router with (scripts/bench/router.sh builds it)")
	}
	rps := envInt(t, "SLURMTUNE_LOAD_RPS", 1000)
	d := time.Duration(envInt(t, "SLURMTUNE_LOAD_SECONDS", 3)) * time.Second
	rounds := envInt(t, "SLURMTUNE_LOAD_ROUNDS", 3)

	backendURL := startProcess(t, exec.Command(os.Args[0], "-test.run=^TestLoadBackendProcess$"), "SLURMTUNE_LOAD_BACKEND=1")
	dir := t.TempDir()
	state := filepath.Join(dir, "router.json")
	if err := WriteState(state, State{Name: "load", Version: 1, Backends: []Backend{{Name: "b", URL: backendURL, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	router := exec.Command(bin, "router", "--listen", addr, "--state", state, "--access-log", filepath.Join(dir, "access.log"))
	router.Stderr = os.Stderr
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = router.Process.Signal(os.Interrupt)
		_ = router.Wait()
	})
	routerURL := "http://" + addr

	tr := &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx := t.Context()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Post(routerURL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("router did not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Warm up connection pools on both paths.
	runLoad(ctx, client, backendURL+"/v1/completions", rps, d/6)
	runLoad(ctx, client, routerURL+"/v1/completions", rps, d/6)

	var direct, routed []loadResult
	for range rounds { // alternate so that both paths see similar machine noise
		direct = append(direct, runLoad(ctx, client, backendURL+"/v1/completions", rps, d))
		routed = append(routed, runLoad(ctx, client, routerURL+"/v1/completions", rps, d))
	}
	var addedP50s, addedP99s []time.Duration
	for i := range rounds {
		a50, a99 := routed[i].p50-direct[i].p50, routed[i].p99-direct[i].p99
		addedP50s, addedP99s = append(addedP50s, a50), append(addedP99s, a99)
		t.Logf("round %d direct: %v", i+1, direct[i])
		t.Logf("round %d router: %v", i+1, routed[i])
		t.Logf("round %d added:  p50=%v p99=%v", i+1, a50, a99)
	}
	median := func(ds []time.Duration) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	addedP99 := median(addedP99s)
	t.Logf("added latency, median of %d rounds: p50=%v p99=%v (target p99 < 1ms)", rounds, median(addedP50s), addedP99)
	for _, res := range append(direct, routed...) {
		if res.failed != 0 {
			t.Errorf("%d requests failed", res.failed)
		}
	}
	if os.Getenv("SLURMTUNE_LOAD_STRICT") != "" && addedP99 > time.Millisecond {
		t.Errorf("router adds %v at p99, target < 1ms", addedP99)
	}
}

// TestLoadBackendProcess is the backend process of TestLoad: it serves
// completionHandler on a loopback port, prints its URL and exits when its
// stdin closes.
func TestLoadBackendProcess(t *testing.T) {
	if os.Getenv("SLURMTUNE_LOAD_BACKEND") == "" {
		t.Skip("the backend process of TestLoad")
	}
	srv := httptest.NewServer(completionHandler())
	defer srv.Close()
	fmt.Println(srv.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// startProcess starts cmd with env added, reads the URL it prints as its
// first line and stops it (closing its stdin) at cleanup.
func startProcess(t *testing.T, cmd *exec.Cmd, env ...string) string {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return strings.TrimSpace(line)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// BenchmarkRouterServeHTTP measures the router's request path (pick, proxy
// over a pooled loopback connection, metrics, stats) without a client-side
// HTTP hop.
func BenchmarkRouterServeHTTP(b *testing.B) {
	backend := httptest.NewServer(completionHandler())
	defer backend.Close()
	r := NewRouter(Config{})
	defer r.Close()
	if err := r.Apply(b.Context(), State{Backends: []Backend{{Name: "b", URL: backend.URL, Weight: 1}}}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, "http://router/v1/completions", strings.NewReader(`{"prompt":"hello"}`))
			req.RemoteAddr = "127.0.0.1:1"
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// BenchmarkBackendDirect is the same request without the router, for
// comparison with BenchmarkRouterServeHTTP.
func BenchmarkBackendDirect(b *testing.B) {
	backend := httptest.NewServer(completionHandler())
	defer backend.Close()
	tr := newTransport(0)
	defer tr.CloseIdleConnections()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, backend.URL+"/v1/completions", strings.NewReader(`{"prompt":"hello"}`))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
