package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/jobs/notify"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestE2ENotifications: a webhook receiver on loopback that fails twice
// before answering gets exactly one event per run end and per gate failure,
// across repeated `slurmtune sync` calls, for a run that succeeds and one
// whose gate fails.
func TestE2ENotifications(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	var got []notify.Event
	keys := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			http.Error(w, "receiver warming up", http.StatusBadGateway)
			return
		}
		var ev notify.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		got = append(got, ev)
		keys[r.Header.Get("X-Slurmtune-Delivery")]++
	}))
	defer srv.Close()

	tmp := openTempDir(t)
	db := filepath.Join(tmp, "st.db")
	submit := func(name string, extra ...string) string {
		args := append([]string{"submit", quickPipeline(t), "--set", "workdir=" + filepath.Join(tmp, "runs"), "--set", "name=" + name,
			"--set", "notify.webhook=" + srv.URL}, extra...)
		r := slurmtune(t, db, args...)
		if r.code != 0 {
			t.Fatalf("submit %s: exit %d: %s", name, r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	okRun := submit("notify-ok")
	// The quick eval's perplexity is e: a max of 2 fails the gate.
	gateRun := submit("notify-gate", "--set", "eval.gates.perplexity.max=2")

	want := map[string]int{okRun + "/succeeded": 1, gateRun + "/failed": 1, gateRun + "/gate_failed": 1}
	counts := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		c := map[string]int{}
		for _, ev := range got {
			c[ev.Run+"/"+ev.Event]++
		}
		return c
	}
	deadline := time.Now().Add(3 * time.Minute)
	extra := 3 // syncs after everything arrived: nothing more may come
	for extra > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 3 minutes of sync the receiver has %v (calls %d), want %v", counts(), calls, want)
		}
		if r := slurmtune(t, db, "sync"); r.code != 0 {
			t.Logf("sync: exit %d: %s", r.code, r.stderr)
		}
		c := counts()
		if len(c) == len(want) {
			extra--
		}
		time.Sleep(time.Second)
	}
	c := counts()
	for k, n := range want {
		if c[k] != n {
			t.Errorf("receiver got %d of %s, want %d (all: %v)", c[k], k, n, c)
		}
	}
	if len(c) != len(want) {
		t.Errorf("receiver got %v, want exactly %v", c, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range keys {
		if n != 1 {
			t.Errorf("delivery %s arrived %d times", k, n)
		}
	}
	if calls != len(want)+2 {
		t.Errorf("receiver answered %d calls, want %d (2 failures, then each event once)", calls, len(want)+2)
	}
	for _, ev := range got {
		if ev.Event == "gate_failed" && (ev.Stage != "eval" || ev.JobID == "") || ev.Name == "" || ev.Time.IsZero() {
			t.Errorf("event lacks its details: %+v", ev)
		}
	}
}
