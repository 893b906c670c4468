package drift

import (
	"strings"
	"testing"
	"time"

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
