package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slurmtune/slurmtune/serve"
	"github.com/slurmtune/slurmtune/serve/drift"
)

// CanaryConfig is how a canary is judged.
type CanaryConfig struct {
	Duration time.Duration
	// MinRequests is the fewest requests the canary must have served for a
	// verdict (and the stable model for its numbers to be the baseline).
	MinRequests int
	// ErrorRateMargin is how much higher (absolute) the canary's error rate
	// may be than the stable model's.
	ErrorRateMargin float64
	// LatencyMargin is how much higher (relative) its p95 latency may be;
	// differences under MinLatencyDelta (default 10ms) never count.
	LatencyMargin   float64
	MinLatencyDelta time.Duration
	// RollbackWindow is passed on to Promote.
	RollbackWindow time.Duration
}

// Window is one backend's traffic over the canary.
type Window = drift.Window

// Since is the traffic of a backend between two snapshots of the router's
// stats (drift.CountersWindow); the p95 is the router's windowed p95 at now.
func Since(start, now serve.BackendStats) Window {
	return drift.CountersWindow(int64(start.Requests), int64(start.Errors), int64(now.Requests), int64(now.Errors), now.P95)
}

// Verdict is the outcome of Judge.
type Verdict struct {
	Decided bool
	Promote bool
	Reason  string
}

// Judge compares the canary's window with the stable model's. Before the
// end (final false) it only decides to roll back, as soon as the canary
// has MinRequests requests and an error rate over the limit. At the end it
// rolls back for too little traffic, too many errors or too slow a p95, and
// promotes otherwise. With fewer than MinRequests on the stable model its
// numbers are no baseline: the canary's error rate must then stay within
// the margin of zero and latency is not compared.
func Judge(canary, stable Window, cfg CanaryConfig, final bool) Verdict {
	minDelta := cfg.MinLatencyDelta
	if minDelta <= 0 {
		minDelta = 10 * time.Millisecond
	}
	baseOK := stable.Requests >= cfg.MinRequests
	baseRate := 0.0
	if baseOK {
		baseRate = stable.ErrorRate()
	}
	errLimit := baseRate + cfg.ErrorRateMargin
	if canary.Requests >= cfg.MinRequests && canary.ErrorRate() > errLimit {
		return Verdict{Decided: true, Reason: fmt.Sprintf("canary error rate %.3f (%d/%d) above the limit %.3f (stable %.3f over %d requests + margin %.3f)",
			canary.ErrorRate(), canary.Errors, canary.Requests, errLimit, baseRate, stable.Requests, cfg.ErrorRateMargin)}
	}
	if !final {
		return Verdict{}
	}
	if canary.Requests < cfg.MinRequests {
		return Verdict{Decided: true, Reason: fmt.Sprintf("too little canary traffic to judge: %d requests, need %d", canary.Requests, cfg.MinRequests)}
	}
	latency := "stable p95 not compared (too few stable requests)"
	if baseOK {
		limit := max(time.Duration(float64(stable.P95)*(1+cfg.LatencyMargin)), stable.P95+minDelta)
		if canary.P95 > limit {
			return Verdict{Decided: true, Reason: fmt.Sprintf("canary p95 %v above the limit %v (stable p95 %v, margin %.0f%%)",
				canary.P95.Round(time.Millisecond), limit.Round(time.Millisecond), stable.P95.Round(time.Millisecond), cfg.LatencyMargin*100)}
		}
		latency = fmt.Sprintf("p95 %v vs stable %v", canary.P95.Round(time.Millisecond), stable.P95.Round(time.Millisecond))
	}
	return Verdict{Decided: true, Promote: true, Reason: fmt.Sprintf("canary healthy over %d requests: error rate %.3f vs stable %.3f, %s",
		canary.Requests, canary.ErrorRate(), baseRate, latency)}
}

// Outcome of a canary or of waiting out a rollback window.
type Outcome struct {
	Promoted bool
	Reason   string
	// ByHand is true when someone promoted or rolled back by hand.
	ByHand bool
}

// RunCanary watches the canary cand (already at its share of traffic) until
// Judge decides or its duration ends, then promotes or rolls it back. A
// promotion or rollback by hand in the meantime ends the watch. If ctx ends
// first the canary is rolled back.
func (c *Controller) RunCanary(ctx context.Context, cand Member, cfg CanaryConfig) (Outcome, error) {
	rec, err := c.Record()
	if err != nil {
		return Outcome{}, err
	}
	if rec.Candidate == nil || rec.Candidate.Backend != cand.Backend || rec.Stable == nil {
		return c.handOutcome(rec, cand), nil
	}
	stableName := rec.Stable.Backend
	start, ok := c.waitApplied(ctx, rec.StateVersion)
	if !ok {
		reason := "canary needs router stats and the router publishes none (run it with a stats file, or set deploy.router.admin_url)"
		if ctx.Err() != nil {
			reason = "deploy stage interrupted"
		}
		_, rerr := c.Rollback(context.WithoutCancel(ctx), reason)
		return Outcome{Reason: reason}, rerr
	}
	deadline := c.now().Add(cfg.Duration)
	if !rec.CanaryUntil.IsZero() {
		deadline = rec.CanaryUntil
	}
	var last Verdict
	misses := 0
	for {
		if !sleep(ctx, c.poll()) {
			_, rerr := c.Rollback(context.WithoutCancel(ctx), "deploy stage interrupted during the canary")
			return Outcome{Reason: "interrupted"}, errors.Join(ctx.Err(), rerr)
		}
		rec, err := c.Record()
		if err != nil {
			return Outcome{}, err
		}
		if rec.Candidate == nil || rec.Candidate.Backend != cand.Backend {
			return c.handOutcome(rec, cand), nil
		}
		final := !c.now().Before(deadline)
		snap, err := c.Router.Stats(ctx)
		if err != nil {
			misses++
			c.log().Warn("router stats", "err", err)
			if !final && misses < 10 {
				continue
			}
			reason := "lost the router's stats during the canary: " + err.Error()
			if _, rerr := c.Rollback(ctx, reason); rerr != nil {
				return Outcome{}, rerr
			}
			return Outcome{Reason: reason}, nil
		}
		misses = 0
		// The candidate joined at weight 0: all its requests are canary traffic.
		cw := Since(serve.BackendStats{}, snap.Backends[cand.Backend])
		sw := Since(start.Backends[stableName], snap.Backends[stableName])
		last = Judge(cw, sw, cfg, final)
		c.log().Debug("canary", "canary", cw, "stable", sw, "final", final)
		if !last.Decided {
			continue
		}
		if last.Promote {
			if _, err := c.Promote(ctx, "canary: "+last.Reason, cfg.RollbackWindow); err != nil {
				if errors.Is(err, ErrNoCandidate) {
					continue // changed by hand under us: the next look says how
				}
				return Outcome{}, err
			}
			return Outcome{Promoted: true, Reason: last.Reason}, nil
		}
		if _, err := c.Rollback(ctx, "canary: "+last.Reason); err != nil {
			return Outcome{}, err
		}
		return Outcome{Reason: last.Reason}, nil
	}
}

// handOutcome says what happened to cand when it is no longer the
// candidate without this controller deciding it.
func (c *Controller) handOutcome(rec Record, cand Member) Outcome {
	if rec.Stable != nil && rec.Stable.Backend == cand.Backend {
		return Outcome{Promoted: true, ByHand: true, Reason: "promoted by hand"}
	}
	return Outcome{ByHand: true, Reason: "rolled back by hand"}
}

// WaitRetire waits until the rollback window of the model cand replaced is
// over and retires that model. It returns early (Promoted false) if cand
// stopped being the stable model meanwhile (a rollback by hand).
func (c *Controller) WaitRetire(ctx context.Context, cand Member) (Outcome, error) {
	for {
		rec, err := c.Record()
		if err != nil {
			return Outcome{}, err
		}
		if rec.Stable == nil || rec.Stable.Backend != cand.Backend {
			return Outcome{ByHand: true, Reason: "rolled back by hand"}, nil
		}
		if rec.Previous == nil {
			return Outcome{Promoted: true}, nil
		}
		if !c.now().Before(rec.RetireAt) {
			if _, err := c.RetireDue(ctx); err != nil {
				return Outcome{}, err
			}
			continue
		}
		wait := min(c.poll(), max(rec.RetireAt.Sub(c.now()), 10*time.Millisecond))
		if !sleep(ctx, wait) {
			return Outcome{Promoted: true}, ctx.Err()
		}
	}
}
