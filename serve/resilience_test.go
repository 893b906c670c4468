package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// earlyAnswerBackend answers before it has read the request: it sends its
// headers at once, then echoes the body as it arrives. Model servers that
// stream do this; net/http's HTTP/1 server used to close the router's
// request body at the first response byte, which cut such answers off.
func earlyAnswerBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("backend: %v", err)
		}
		w.Header().Set("X-Request-Length", fmt.Sprint(r.ContentLength))
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		_, _ = io.Copy(w, r.Body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// slowBody yields data in two parts with a pause between them.
type slowBody struct {
	parts [][]byte
	pause time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(b.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.parts[0])
	b.parts[0] = b.parts[0][n:]
	if len(b.parts[0]) == 0 {
		b.parts = b.parts[1:]
		if len(b.parts) > 0 {
			time.Sleep(b.pause)
		}
	}
	return n, nil
}

func TestBackendAnsweringBeforeTheBodyArrives(t *testing.T) {
	backend := earlyAnswerBackend(t)
	for _, tc := range []struct {
		name      string
		size      int
		maxBuffer int64
		chunked   bool
	}{
		{"small buffered", 2 << 10, 0, false},
		{"small chunked buffered", 2 << 10, 0, true},
		{"small streamed", 2 << 10, -1, false},
		{"large streamed", 3 << 20, 0, false},
		{"large chunked streamed", 3 << 20, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := startRouter(t, Options{MaxBufferedBody: tc.maxBuffer})
			if err := tr.r.Apply(t.Context(), State{Backends: []Backend{{Name: "early", URL: backend.URL, Weight: 1}}}); err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte("0123456789abcdef"), tc.size/16)
			half := len(data) / 2
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tr.url+"/v1/completions",
				&slowBody{parts: [][]byte{data[:half], data[half:]}, pause: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.chunked {
				req.ContentLength = int64(len(data))
			}
			resp, err := tr.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("answer: %d of %d bytes, err %v", len(got), len(data), err)
			}
			// A buffered body reaches the backend with its length even
			// when the client sent it chunked.
			wantLen := fmt.Sprint(len(data))
			if tc.chunked && (tc.maxBuffer < 0 || int64(len(data)) > DefaultMaxBufferedBody) {
				wantLen = "-1"
			}
			if l := resp.Header.Get("X-Request-Length"); l != wantLen {
				t.Errorf("backend saw Content-Length %s, want %s", l, wantLen)
			}
			if n := tr.r.buffered.Load(); n != 0 {
				t.Errorf("%d buffered bytes still reserved after the request", n)
			}
		})
	}
}

func TestRetriesAnotherBackendWhenOneCannotBeReached(t *testing.T) {
	live := newTestBackend(t, "live")
	doomed := newTestBackend(t, "doomed")
	// Health checks far apart: the router learns that doomed died from a
	// failed request, not from a probe.
	var access lockedBuffer
	tr := startRouter(t, Options{HealthInterval: time.Hour, AccessLog: &access})
	if err := tr.r.Apply(t.Context(), State{Backends: []Backend{live.backend(50), doomed.backend(50)}}); err != nil {
		t.Fatal(err)
	}
	if st := tr.r.Stats(); !st["doomed"].Healthy || !st["live"].Healthy {
		t.Fatalf("before: %+v", st)
	}
	doomed.srv.Close()
	time.Sleep(100 * time.Millisecond) // let the transport notice its idle connection closed

	for i := range 20 {
		resp, err := tr.client.Post(tr.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "live" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// The access log has one line per request, naming the backend that
	// answered and how many were tried.
	eventually(t, 2*time.Second, "20 access log lines", func() bool { return strings.Count(access.String(), "\n") >= 20 })
	if got := access.String(); strings.Count(got, "\n") != 20 || !strings.Contains(got, `"backend":"live","status":200`) ||
		strings.Count(got, `"attempts":2`) != 1 || strings.Contains(got, `"backend":"doomed"`) {
		t.Errorf("access log:\n%s", got)
	}
	// A request without a body is retried too.
	doomedB := tr.r.table.Load().lookup("doomed")
	for try := 0; doomedB.errors.Load() < 2 && try < 4; try++ { // round-robin: doomed's turn comes within two
		doomedB.healthy.Store(true)
		if status, body := tr.get(t, "/v1/models"); status != http.StatusOK || body != "live" {
			t.Fatalf("GET: %d %q", status, body)
		}
	}
	st := tr.r.Stats()
	if st["doomed"].Healthy || st["doomed"].Errors != 2 || st["live"].Requests < 21 {
		t.Errorf("after: doomed %+v, live %+v", st["doomed"], st["live"])
	}
	metrics := scrape(t, tr)
	for _, want := range []string{`slurmtune_router_retries_total{backend="doomed"} 2`, `slurmtune_router_backend_healthy{backend="doomed"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// With nothing left to try the client gets one clear 502.
	if err := tr.r.Apply(t.Context(), State{Version: 2, Backends: []Backend{doomed.backend(1), {Name: "gone", URL: doomed.srv.URL + "/x", Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	tr.r.table.Load().entries[0].b.healthy.Store(true) // as if a probe had just passed
	tr.r.table.Load().entries[1].b.healthy.Store(true)
	resp, err := tr.client.Post(tr.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "no backend could be connected to") {
		t.Errorf("all backends down: %d %s", resp.StatusCode, body)
	}
	eventually(t, 2*time.Second, "the 502 logged", func() bool { return strings.Contains(access.String(), `"status":502`) })
	if lines := strings.Split(strings.TrimSpace(access.String()), "\n"); !strings.Contains(lines[len(lines)-1], `"backend":"none","status":502`) ||
		!strings.Contains(lines[len(lines)-1], `"attempts":2`) {
		t.Errorf("last access log line %s", lines[len(lines)-1])
	}
}

func TestPromptLog(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	path := filepath.Join(t.TempDir(), "prompts.jsonl")
	tr := startRouter(t, Options{PromptLog: path})
	if err := tr.r.Apply(t.Context(), State{Backends: []Backend{a.backend(1), b.backend(0)}}); err != nil {
		t.Fatal(err)
	}
	post := func(p, body string) int {
		t.Helper()
		resp, err := tr.client.Post(tr.url+p, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	post("/v1/completions", `{"model":"tiny","prompt":"once upon a time"}`)
	post("/v1/completions", `{"model":"tiny","prompt":["first of two","second of two"]}`)
	post("/v1/chat/completions", `{"model":"tiny","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"},`+
		`{"role":"assistant","content":"hi"},{"role":"user","content":[{"type":"text","text":"how are you"},{"type":"image_url","image_url":{"url":"x"}}]}]}`)
	post("/v1/completions", `{"prompt":[1,2,3]}`)                              // token ids: nothing to log
	post("/v1/completions", `not json`)                                        // nothing to log
	post("/v1/embeddings", `{"input":"not a completion"}`)                     // not a completion
	if code := post("/fail/completions", `{"prompt":"failed"}`); code != 500 { // answered with an error
		t.Fatalf("/fail: %d", code)
	}

	eventually(t, 5*time.Second, "prompts flushed", func() bool {
		data, _ := os.ReadFile(path)
		return bytes.Count(data, []byte("\n")) >= 4
	})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []PromptEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e PromptEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if e.Backend != "a" || e.Time.IsZero() || !strings.HasSuffix(e.Path, "/completions") {
			t.Errorf("entry %+v", e)
		}
		got = append(got, e)
	}
	var prompts []string
	for _, e := range got {
		prompts = append(prompts, e.Prompt)
	}
	want := []string{"once upon a time", "first of two", "second of two", "hello\nhow are you"}
	if strings.Join(prompts, "|") != strings.Join(want, "|") {
		t.Errorf("prompts %q, want %q", prompts, want)
	}
	if m := scrape(t, tr); !strings.Contains(m, "slurmtune_router_prompts_logged_total 4") {
		t.Errorf("metrics: no slurmtune_router_prompts_logged_total 4")
	}
}

func TestPromptLogRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prompts.jsonl")
	l, err := OpenPromptLog(path, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		l.Record("b", "/v1/completions", fmt.Appendf(nil, `{"prompt":"prompt number %d"}`, i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Record("b", "/v1/completions", []byte(`{"prompt":"after close: dropped"}`)) // a handler outliving a forced shutdown
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Logged() != 40 || l.Dropped() != 1 || l.Failed() != 0 {
		t.Fatalf("logged %d dropped %d failed %d", l.Logged(), l.Dropped(), l.Failed())
	}
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) > 1000 || len(old) > 1000 || len(cur) == 0 {
		t.Errorf("sizes: current %d, rotated %d (limit 1000)", len(cur), len(old))
	}
	if !bytes.Contains(cur, []byte(`"prompt number 39"`)) {
		t.Errorf("last prompt not in the current file:\n%s", cur)
	}
	if _, err := OpenPromptLog(filepath.Join(path, "not-a-dir", "x"), 0); err == nil {
		t.Error("opening a prompt log under a file: no error")
	}
}

func TestPromptsOf(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"prompt":"a b c"}`, []string{"a b c"}},
		{`{"prompt":["x","y"]}`, []string{"x", "y"}},
		{`{"prompt":[[1,2]]}`, nil},
		{`{"prompt":[1,2]}`, nil},
		{`{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"a"},{"role":"user","content":"q2"}]}`, []string{"q1\nq2"}},
		{`{"messages":[{"role":"system","content":"only system"}]}`, nil},
		{`{"messages":[{"role":"user","content":[{"type":"text","text":"t1"},{"type":"text","text":"t2"}]}]}`, []string{"t1\nt2"}},
		{`{"input":"embedding"}`, nil},
		{`{`, nil},
		{`[]`, nil},
	} {
		var got []string
		for _, e := range promptsOf(promptRecord{body: []byte(tc.body)}) {
			got = append(got, e.Prompt)
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("%s: got %q, want %q", tc.body, got, tc.want)
		}
	}
}

func TestBufferedBodiesShareABudget(t *testing.T) {
	r := NewRouter(Config{MaxBufferedBody: 2000, MaxBufferedTotal: 3000})
	defer r.Close()
	newReq := func(n int, chunked bool) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/v1/completions", bytes.NewReader(bytes.Repeat([]byte("x"), n)))
		if chunked {
			req.ContentLength = -1
		}
		return req
	}
	w := httptest.NewRecorder()
	first, reserved1, err := r.bufferBody(w, newReq(2000, false))
	if err != nil || first == nil || reserved1 != 2000 || r.buffered.Load() != 2000 {
		t.Fatalf("first: %v reserved %d, total %d, err %v", first != nil, reserved1, r.buffered.Load(), err)
	}
	// Over the budget: streamed, nothing reserved.
	second, reserved2, err := r.bufferBody(w, newReq(2000, false))
	if err != nil || second != nil || reserved2 != 0 || r.buffered.Load() != 2000 {
		t.Fatalf("second: %v reserved %d, total %d, err %v", second != nil, reserved2, r.buffered.Load(), err)
	}
	r.buffered.Add(-reserved1) // the first request is done
	// A chunked body reserves the most it may read, then what it read.
	req := newReq(500, true)
	third, reserved3, err := r.bufferBody(w, req)
	if err != nil || third == nil || reserved3 != 500 || r.buffered.Load() != 500 || req.ContentLength != 500 {
		t.Fatalf("chunked: %v reserved %d, total %d, length %d, err %v", third != nil, reserved3, r.buffered.Load(), req.ContentLength, err)
	}
}
