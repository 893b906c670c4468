package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

func intp(v int) *int { return &v }

func TestRunEvents(t *testing.T) {
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	keys := func(evs []Keyed) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.Key+"="+e.Event.Event)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		run  store.Run
		want []string
	}{
		{"running", store.Run{ID: "r", State: "RUNNING", Stages: []store.Stage{{Name: "train", State: "RUNNING", Attempt: 1}}}, nil},
		{"succeeded", store.Run{ID: "r", State: store.RunSucceeded, Stages: []store.Stage{{Name: "train", State: "COMPLETED", Attempt: 1}}},
			[]string{"r:succeeded:1=succeeded"}},
		{"gate failed", store.Run{ID: "r", State: store.RunFailed, Stages: []store.Stage{
			{Name: "train", State: "COMPLETED", Attempt: 1}, {Name: "eval", State: "FAILED", ExitCode: intp(3), Attempt: 1, JobID: "7"},
			{Name: "deploy", State: "CANCELLED", Attempt: 1}}},
			[]string{"r:gate_failed:eval:1=gate_failed", "r:failed:1=failed"}},
		{"eval crashed is no gate failure", store.Run{ID: "r", State: store.RunFailed, Stages: []store.Stage{
			{Name: "eval", State: "FAILED", ExitCode: intp(1), Attempt: 2}}}, []string{"r:failed:2=failed"}},
		{"requeued twice", store.Run{ID: "r", State: "RUNNING", Stages: []store.Stage{{Name: "train", State: "RUNNING", Restarts: 2, Attempt: 1}}},
			[]string{"r:preempted:train:1:1=preempted", "r:preempted:train:1:2=preempted"}},
	} {
		got := keys(RunEvents(&tc.run, now))
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	}
	ev := RunEvents(&store.Run{ID: "r", Name: "tiny", State: store.RunFailed, Stages: []store.Stage{
		{Name: "train", State: "TIMEOUT", Reason: "TimeLimit", JobID: "9", Attempt: 1}}}, now)[0].Event
	if ev.Stage != "train" || ev.JobID != "9" || ev.Reason != "TIMEOUT (TimeLimit)" || ev.Name != "tiny" || ev.Type != "slurmtune.event" || !ev.Time.Equal(now) {
		t.Errorf("failed event: %+v", ev)
	}
}

func TestWants(t *testing.T) {
	if Wants(jobs.Notify{}, "failed") || !Wants(jobs.Notify{Webhook: "http://x"}, "drift") ||
		Wants(jobs.Notify{Webhook: "http://x", On: []string{"failed"}}, "succeeded") {
		t.Error("Wants")
	}
}

// TestQueueAndDeliver: a real SQLite store and a real HTTP receiver that
// fails twice: each event is queued once however often Queue runs, is
// retried with backoff, and arrives exactly once.
func TestQueueAndDeliver(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "st.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var mu sync.Mutex
	var got []Event
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		var ev Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || r.Header.Get("X-Slurmtune-Delivery") == "" {
			t.Errorf("bad delivery: %v %v", err, r.Header)
		}
		got = append(got, ev)
	}))
	defer srv.Close()

	run := store.Run{ID: "r1", Name: "tiny", PipelineFile: "p.yaml", RunDir: "/x", Transport: "local"}
	if err := st.CreateRun(ctx, run, []string{"train"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := Config(jobs.Notify{Webhook: srv.URL, On: []string{"succeeded", "failed"}})
	if err := st.SetRunNotify(ctx, "r1", cfg); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordSubmitted(ctx, "r1", "train", "c", "5"); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishSubmission(ctx, "r1", "complete", ""); err != nil {
		t.Fatal(err)
	}
	// The run ends.
	if _, err := st.UpdateJob(ctx, store.TrackedJob{RunID: "r1", Stage: "train", JobID: "5"}, slurm.Job{ID: "5", State: slurm.StateCompleted}); err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	d := DefaultDelivery()
	d.Now = func() time.Time { return clock }
	for i := 0; i < 6; i++ {
		n, err := Queue(ctx, st, clock)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && n != 1 || i > 0 && n != 0 {
			t.Fatalf("Queue #%d queued %d", i, n)
		}
		res, err := d.Deliver(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %+v", i, res)
		clock = clock.Add(5 * time.Second) // past the 2 s and 4 s backoffs
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 || len(got) != 1 || got[0].Event != "succeeded" || got[0].Run != "r1" {
		t.Errorf("receiver: %d calls, events %+v; want 2 failures and one succeeded event", calls, got)
	}
	ns, _ := st.Notifications(ctx, "r1")
	if len(ns) != 1 || ns[0].Attempts != 3 || ns[0].LastError != "" {
		t.Errorf("outbox: %+v", ns)
	}
}
