package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseState(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; empty means valid
	}{
		{"valid", `{"name":"tiny","version":7,"backends":[{"name":"blue","url":"http://10.0.0.1:8000","weight":90,"run":"r1","job_id":"12","model":"m"},{"name":"green","url":"https://n2:8000/prefix","weight":10,"health_path":"/healthz"}]}`, ""},
		{"empty backends", `{"name":"tiny","version":1,"backends":[]}`, ""},
		{"zero weight standby", `{"backends":[{"name":"a","url":"http://h:1","weight":100},{"name":"b","url":"http://h:2","weight":0}]}`, ""},
		{"not json", `{"name":`, "decode state"},
		{"unknown field", `{"backends":[{"name":"a","url":"http://h:1","weigth":100}]}`, "unknown field"},
		{"trailing data", `{"backends":[]} {}`, "trailing data"},
		{"empty name", `{"backends":[{"url":"http://h:1","weight":1}]}`, "empty name"},
		{"duplicate name", `{"backends":[{"name":"a","url":"http://h:1","weight":1},{"name":"a","url":"http://h:2","weight":1}]}`, "duplicate"},
		{"bad scheme", `{"backends":[{"name":"a","url":"ftp://h:1","weight":1}]}`, "scheme"},
		{"no host", `{"backends":[{"name":"a","url":"http://","weight":1}]}`, "missing host"},
		{"query", `{"backends":[{"name":"a","url":"http://h:1/?x=1","weight":1}]}`, "query"},
		{"negative weight", `{"backends":[{"name":"a","url":"http://h:1","weight":-1}]}`, "negative weight"},
		{"all zero", `{"backends":[{"name":"a","url":"http://h:1","weight":0}]}`, "all backend weights are 0"},
		{"relative health path", `{"backends":[{"name":"a","url":"http://h:1","weight":1,"health_path":"health"}]}`, "health_path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseState([]byte(tc.in))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("expected error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestWriteReadState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	want := State{Name: "tiny", Version: 3, Backends: []Backend{
		{Name: "blue", URL: "http://127.0.0.1:1", Weight: 90, Run: "r", JobID: "1", Model: "m"},
		{Name: "green", URL: "http://127.0.0.1:2", Weight: 10},
	}}
	if err := WriteState(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != want.Name || got.Version != want.Version || len(got.Backends) != 2 || got.Backends[0] != want.Backends[0] || got.Backends[1] != want.Backends[1] {
		t.Fatalf("round trip: got %+v want %+v", got, want)
	}
	// An invalid state is refused and leaves the file alone.
	if err := WriteState(path, State{Backends: []Backend{{Name: "x", URL: "nope", Weight: 1}}}); err == nil {
		t.Fatal("WriteState accepted an invalid state")
	}
	if _, err := ReadState(path); err != nil {
		t.Fatalf("file damaged by refused write: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if _, err := ReadState(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("ReadState of a missing file succeeded")
	}
}

func TestSmoothWeightedPick(t *testing.T) {
	mk := func(name string, healthy bool) *backend {
		b := &backend{cfg: Backend{Name: name}}
		b.healthy.Store(healthy)
		return b
	}
	a, b, c := mk("a", true), mk("b", true), mk("c", true)
	tab := newTable(State{}, []entry{{a, 5}, {b, 1}, {c, 1}})
	var seq []string
	for range 7 {
		seq = append(seq, tab.pick().cfg.Name)
	}
	if got, want := strings.Join(seq, ""), "aabacaa"; got != want {
		t.Fatalf("sequence %s, want %s (nginx smooth weighted round-robin)", got, want)
	}

	b.healthy.Store(false)
	counts := map[string]int{}
	for range 600 {
		counts[tab.pick().cfg.Name]++
	}
	if counts["b"] != 0 || counts["a"] != 500 || counts["c"] != 100 {
		t.Fatalf("with b unhealthy: %v, want a=500 c=100", counts)
	}

	a.healthy.Store(false)
	c.healthy.Store(false)
	if got := tab.pick(); got != nil {
		t.Fatalf("all unhealthy: picked %s", got.cfg.Name)
	}
	if got := (&table{}).pick(); got != nil {
		t.Fatal("empty table picked a backend")
	}
}

func TestPercentileAndWindow(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var sorted []time.Duration
	for i := 1; i <= 100; i++ {
		sorted = append(sorted, ms(i))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, ms(50)}, {0.95, ms(95)}, {0.99, ms(99)}, {1, ms(100)}, {0, ms(1)}} {
		if got := percentile(sorted, tc.q); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if percentile(nil, 0.95) != 0 {
		t.Error("percentile of nothing")
	}

	w := newWindow(8)
	now := time.Now()
	old := now.Add(-time.Hour).UnixNano()
	w.add(sample{at: old, dur: ms(1000), failed: true}) // outside the window
	for i := 1; i <= 10; i++ {                          // wraps the ring: keeps the last 8
		w.add(sample{at: now.UnixNano(), dur: ms(i), firstByte: ms(1), failed: i == 10})
	}
	s := w.summarize(now, time.Minute)
	if s.requests != 8 || s.errors != 1 || s.p95 != ms(10) || s.p50 != ms(6) || s.fb95 != ms(1) {
		t.Fatalf("summary %+v", s)
	}
}

func TestBearerAndToken(t *testing.T) {
	for _, tc := range []struct {
		header string
		tok    string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"", "", false},
	} {
		tok, ok := bearerToken(tc.header)
		if tok != tc.tok || ok != tc.ok {
			t.Errorf("bearerToken(%q) = %q,%v want %q,%v", tc.header, tok, ok, tc.tok, tc.ok)
		}
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{{"SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS\n", "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS", true}, {"  \n", "", false}, {"two words", "", false}} {
		got, err := parseToken([]byte(tc.in))
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseToken(%q) = %q,%v", tc.in, got, err)
		}
	}
}

func TestHealthURL(t *testing.T) {
	for _, tc := range []struct{ base, path, want string }{
		{"http://h:1", "/health", "http://h:1/health"},
		{"http://h:1/", "/health", "http://h:1/health"},
		{"http://h:1/v", "/healthz", "http://h:1/v/healthz"},
	} {
		u, err := parseBackendURL(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		if got := healthURL(u, tc.path); got != tc.want {
			t.Errorf("healthURL(%s, %s) = %s, want %s", tc.base, tc.path, got, tc.want)
		}
	}
}
