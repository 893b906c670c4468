package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/store"
)

// TestWindowsFromSamples: performance drift compares the first
// baseline_window of a model's sampled router counters with its last window.
func TestWindowsFromSamples(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(m int, req, errs int64, p95 time.Duration) store.DeploySample {
		return store.DeploySample{At: t0.Add(time.Duration(m) * time.Minute), Requests: req, Errors: errs, P95: p95}
	}
	ms := time.Millisecond
	samples := []store.DeploySample{at(0, 0, 0, 0), at(30, 100, 1, 10*ms), at(60, 200, 2, 12*ms), at(120, 400, 2, 11*ms),
		at(170, 500, 3, 11*ms), at(180, 600, 40, 90*ms)}
	base, cur, note := windowsFromSamples(samples, t0.Add(180*time.Minute), time.Hour, 15*time.Minute)
	if note != "" || base.Requests != 200 || base.Errors != 2 || base.P95 != 12*ms || cur.Requests != 100 || cur.Errors != 37 || cur.P95 != 90*ms {
		t.Errorf("windows: %+v %+v %q", base, cur, note)
	}
	// Counters that restarted (the router restarted) count from zero.
	samples = append(samples, at(181, 10, 0, 5*ms))
	if _, cur, _ := windowsFromSamples(samples, t0.Add(181*time.Minute), time.Hour, 15*time.Minute); cur.Requests != 10 {
		t.Errorf("after a restart: %+v", cur)
	}
	if _, _, note := windowsFromSamples(samples[:3], t0.Add(60*time.Minute), time.Hour, 45*time.Minute); !strings.Contains(note, "overlaps") {
		t.Errorf("young deployment: note %q", note)
	}
	if _, _, note := windowsFromSamples(samples[:1], t0, time.Hour, 15*time.Minute); !strings.Contains(note, "1 router stats samples") {
		t.Errorf("one sample: note %q", note)
	}
}

type fixedTarget Target

func (t fixedTarget) DriftTarget(context.Context) (Target, error) { return Target(t), nil }

// TestCheckPostsAlert: a check that alerts posts its report to
// monitor.webhook once, as JSON with slurmtune's User-Agent (the request
// drift always sent), and says so in the report; without Post nothing is
// sent.
func TestCheckPostsAlert(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "st.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	type request struct {
		header http.Header
		body   []byte
	}
	got := make(chan request, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- request{r.Header.Clone(), b}
	}))
	defer hook.Close()

	lines := func(path, key string, n int, words []string) {
		var b strings.Builder
		for i := range n {
			line, _ := json.Marshal(map[string]string{key: fmt.Sprintf("%s %s %s", words[i%len(words)], words[(i+1)%len(words)], words[(i*7+3)%len(words)])})
			b.Write(line)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base, prod := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "prompts.jsonl")
	lines(base, "text", 200, []string{"the", "cluster", "runs", "a", "training", "job", "on", "nodes", "with", "gpus"})
	lines(prod, "prompt", 200, []string{"invoice", "refund", "password", "shipping", "warranty", "coupon"})
	p := &jobs.Pipeline{Name: "tiny", Monitor: jobs.Monitor{Webhook: hook.URL, MinPrompts: 50}}
	src := fixedTarget{Deployment: "tiny", Pipeline: p, Run: "tiny-1", Model: "m", Version: "v", Backend: "tiny-1",
		Data: base, ServerPromptLog: prod, RouterPromptLog: filepath.Join(dir, "router.prompts.jsonl")}

	quiet, err := Check{Store: st, Log: slog.New(slog.DiscardHandler), UserAgent: "slurmtune/test"}.Run(context.Background(), src)
	if err != nil || !quiet.Drifted || quiet.Webhook != "" {
		t.Fatalf("without Post: %+v, %v", quiet, err)
	}
	rep, err := Check{Store: st, Log: slog.New(slog.DiscardHandler), Post: true, UserAgent: "slurmtune/test"}.Run(context.Background(), src)
	if err != nil || !rep.Drifted || rep.Webhook != "sent" || rep.Production.Prompts != 200 || rep.Baseline.Prompts != 200 {
		t.Fatalf("with Post: %+v, %v", rep, err)
	}
	r := <-got
	var alert Alert
	if err := json.Unmarshal(r.body, &alert); err != nil || alert.Type != "slurmtune.drift" || !alert.Drifted || alert.Run != "tiny-1" {
		t.Errorf("webhook body %s (%v)", r.body, err)
	}
	if r.header.Get("Content-Type") != "application/json" || r.header.Get("User-Agent") != "slurmtune/test" || r.header.Get("X-Slurmtune-Event") != "" {
		t.Errorf("webhook headers %v", r.header)
	}
	select {
	case r := <-got:
		t.Errorf("a second request: %s", r.body)
	default:
	}
}
