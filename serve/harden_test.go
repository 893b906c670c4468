package serve

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAdminTokenFileRefused: the router refuses an admin token file that
// group or others can read, and a token shorter than 32 bytes.
func TestAdminTokenFileRefused(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("k", MinAdminTokenLen)
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string // "" accepted, else in the error
	}{
		{"private", good + "\n", 0o600, ""},
		{"group-readable", good, 0o640, "readable by group or others"},
		{"world-readable", good, 0o644, "readable by group or others"},
		{"short", "s3cret", 0o600, "at least 32 bytes"},
		{"one character", "x", 0o600, "at least 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			tok, err := ReadAdminToken(p)
			if tc.want == "" {
				if err != nil || tok != good {
					t.Fatalf("ReadAdminToken = %q, %v", tok, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("ReadAdminToken accepted or unclear: %q, %v", tok, err)
			}
			if len(tc.content) > 3 && strings.Contains(err.Error(), tc.content) {
				t.Errorf("error shows the token: %v", err)
			}
			// RunRouter refuses to start with it.
			if err := RunRouter(t.Context(), Options{Listen: "127.0.0.1:0", AdminTokenFile: p}); err == nil {
				t.Error("RunRouter started with a refused token file")
			}
		})
	}
	// A FIFO or a directory is not a token file (and must not hang).
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, fifo} {
		if _, err := ReadAdminToken(p); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s as token file: %v", p, err)
		}
	}
}

// TestStateBackendCap: one state cannot name more than MaxBackends backends.
func TestStateBackendCap(t *testing.T) {
	mk := func(n int) State {
		s := State{Name: "cap", Version: 1}
		for i := range n {
			s.Backends = append(s.Backends, Backend{Name: fmt.Sprintf("b%d", i), URL: fmt.Sprintf("http://127.0.0.1:%d", 10000+i), Weight: 1})
		}
		return s
	}
	if err := mk(MaxBackends).Validate(); err != nil {
		t.Fatalf("%d backends refused: %v", MaxBackends, err)
	}
	err := mk(8000).Validate()
	if err == nil || !strings.Contains(err.Error(), "8000 backends") {
		t.Fatalf("8000 backends: %v", err)
	}
	data, _ := json.Marshal(mk(MaxBackends + 1))
	if _, err := ParseState(data); err == nil {
		t.Fatal("ParseState accepted too many backends")
	}
}

// TestXRealIPReplaced: a client cannot pass its own X-Real-IP to the
// backend; the router sets it to the client address, as it does
// X-Forwarded-For.
func TestXRealIPReplaced(t *testing.T) {
	got := make(chan http.Header, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			got <- r.Header.Clone()
		}
	}))
	defer be.Close()
	r := NewRouter(Config{})
	defer r.Close()
	if err := r.Apply(t.Context(), State{Name: "x", Version: 1, Backends: []Backend{{Name: "a", URL: be.URL, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(r)
	defer front.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, front.URL+"/v1/models", nil)
	req.Header.Set("X-Real-IP", "6.6.6.6")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-got
	if v := h.Values("X-Real-IP"); len(v) != 1 || v[0] != "127.0.0.1" {
		t.Errorf("backend saw X-Real-IP %q, want [127.0.0.1]", v)
	}
	if v := h.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("backend saw X-Forwarded-For %q", v)
	}
}

// TestUnloggedPromptsCounted: a completion answered 2xx whose body was
// streamed (the buffer budget was spent) is not logged but is counted as
// dropped.
func TestUnloggedPromptsCounted(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			t.Errorf("backend read the request: %v", err)
		}
		_, _ = io.WriteString(w, `{"choices":[]}`) // the client checks the answer
	}))
	defer be.Close()
	pl, err := OpenPromptLog(filepath.Join(t.TempDir(), "p.jsonl"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	r := NewRouter(Config{PromptLog: pl, MaxBufferedTotal: 100})
	defer r.Close()
	if err := r.Apply(t.Context(), State{Name: "x", Version: 1, Backends: []Backend{{Name: "a", URL: be.URL, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(r)
	defer front.Close()
	resp, err := http.Post(front.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"`+strings.Repeat("p", 500)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The handler counts after the answer went out.
	eventually(t, 2*time.Second, "the streamed prompt counted as dropped", func() bool { return pl.Dropped() == 1 })
	if pl.Logged() != 0 {
		t.Errorf("logged %d, want 0", pl.Logged())
	}
}

// TestBodyDeadlineSparesSlowAnswers: the body deadline bounds how the
// request arrives, not how long the backend takes to answer.
func TestBodyDeadlineSparesSlowAnswers(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			t.Errorf("backend read the request: %v", err)
		}
		time.Sleep(700 * time.Millisecond)
		_, _ = io.WriteString(w, "slow but fine") // the client checks the answer
	}))
	defer be.Close()
	r := NewRouter(Config{BodyGrace: 200 * time.Millisecond, BodyMinRate: 1 << 20})
	defer r.Close()
	if err := r.Apply(t.Context(), State{Name: "x", Version: 1, Backends: []Backend{{Name: "a", URL: be.URL, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(r)
	defer front.Close()
	for _, size := range []int{100, 2 << 20} { // buffered, streamed
		resp, err := http.Post(front.URL+"/v1/completions", "application/json", strings.NewReader(strings.Repeat("x", size)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "slow but fine" {
			t.Errorf("%d-byte body: %d %q", size, resp.StatusCode, b)
		}
	}
}

// TestMemoryLimitBoundsBufferBudget: the buffered bodies get a quarter of
// the process memory limit, which RunRouter sets as the runtime's.
func TestMemoryLimitBoundsBufferBudget(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	tr := startRouter(t, Options{MemoryLimit: 64 << 20})
	if got := tr.r.cfg.MaxBufferedTotal; got != 16<<20 {
		t.Errorf("buffer budget %d, want 16 MiB", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 64<<20 {
		t.Errorf("runtime memory limit %d, want 64 MiB", got)
	}
}

// TestConnectionCap: past MaxConns a new connection is closed at once;
// once one closes, another is accepted.
func TestConnectionCap(t *testing.T) {
	tr := startRouter(t, Options{MaxConns: 2})
	addr := strings.TrimPrefix(tr.url, "http://")
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond) // both accepted
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if err := extra.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("third connection: %v, want closed at once (EOF)", err)
	}
	held[0].Close()
	eventually(t, 3*time.Second, "a connection accepted after one closed", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			return false // closed by the limit: try again
		}
		if err := c.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			return false
		}
		b, _ := io.ReadAll(c)
		return strings.HasPrefix(string(b), "HTTP/1.1 200")
	})
	if !strings.Contains(scrape(t, &testRouter{url: tr.url, client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}), "slurmtune_router_connections_rejected_total") {
		t.Error("no rejected-connections metric")
	}
}
