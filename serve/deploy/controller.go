package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/slurmtune/slurmtune/serve"
)

// Strategies.
const (
	StrategyBlueGreen = "blue-green"
	StrategyCanary    = "canary"
)

// ErrNothingToRollBack is returned by Rollback when there is neither a
// candidate nor a previous model.
var ErrNothingToRollBack = errors.New("nothing to roll back: no candidate and no previous model within its rollback window")

// ErrNoCandidate is returned by Promote when there is no candidate.
var ErrNoCandidate = errors.New("nothing to promote: no candidate")

// ErrRemovedByHand is returned by Admit when the candidate was promoted or
// rolled back by hand before its traffic was shifted.
var ErrRemovedByHand = errors.New("the candidate was promoted or rolled back by hand before its traffic was shifted")

// errNoChange tells change that there is nothing to write.
var errNoChange = errors.New("no change")

// ErrBusy is returned by Admit while another candidate is in canary.
var ErrBusy = errors.New("a canary is in progress")

// Controller changes one deployment: its record, its routing state and its
// history, always under the deployment's lock, and cancels the serving jobs
// it takes out of service once the router has drained them.
type Controller struct {
	Name  string
	Paths Paths
	// Router applies routing states and reports stats.
	Router Router
	// Cancel cancels a serving job (scancel).
	Cancel func(ctx context.Context, jobID string) error
	Log    *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Poll is how often the controller looks at the router and the record
	// while it waits. Default 1s.
	Poll time.Duration
	// Settle bounds each wait for the router: to apply a state, to see a
	// new backend healthy, to drain a removed one. Default 60s.
	Settle time.Duration
}

func (c *Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Controller) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

func (c *Controller) poll() time.Duration {
	if c.Poll <= 0 {
		return time.Second
	}
	return c.Poll
}

func (c *Controller) settle() time.Duration {
	if c.Settle <= 0 {
		return time.Minute
	}
	return c.Settle
}

// Record reads the deployment record.
func (c *Controller) Record() (Record, error) {
	rec, ok, err := ReadRecord(c.Paths.Record)
	if err != nil {
		return Record{}, err
	}
	if !ok {
		rec.Name = c.Name
	}
	return rec, nil
}

// change runs fn on the record under the lock, then writes the routing
// state the record implies, the record and the events fn returns (nothing
// when fn returns errNoChange). The members fn takes out of service stay in
// the routing state at weight 0 (Record.Draining) until drainAndCancel
// removes them. It returns the state version written and those members.
func (c *Controller) change(ctx context.Context, fn func(rec *Record) ([]Event, []*Member, error)) (Record, int64, []*Member, error) {
	unlock, err := lock(ctx, c.Paths.Lock)
	if err != nil {
		return Record{}, 0, nil, err
	}
	defer unlock()
	rec, err := c.Record()
	if err != nil {
		return Record{}, 0, nil, err
	}
	events, removed, err := fn(&rec)
	if errors.Is(err, errNoChange) {
		return rec, rec.StateVersion, nil, nil
	}
	if err != nil {
		return rec, 0, nil, err
	}
	for _, m := range removed {
		rec.Draining = append(rec.Draining, clone(m, 0))
	}
	cur, err := c.Router.Current(ctx)
	if err != nil {
		return rec, 0, nil, fmt.Errorf("read routing state: %w", err)
	}
	version := max(cur.Version, rec.StateVersion) + 1
	st := serve.State{Name: c.Name, Version: version}
	for _, m := range rec.Members() {
		st.Backends = append(st.Backends, serve.Backend{Name: m.Backend, URL: m.URL, Weight: m.Weight,
			Run: m.Run, JobID: m.JobID, Model: modelLabel(m)})
	}
	if len(st.Backends) > 0 {
		if err := c.Router.Apply(ctx, st); err != nil {
			return rec, 0, nil, fmt.Errorf("apply routing state: %w", err)
		}
	}
	rec.StateVersion = version
	rec.UpdatedAt = c.now().UTC()
	if err := WriteRecord(c.Paths.Record, rec); err != nil {
		return rec, 0, nil, fmt.Errorf("write deployment record: %w", err)
	}
	for _, ev := range events {
		if err := c.record(ev); err != nil {
			return rec, version, removed, err
		}
	}
	return rec, version, removed, nil
}

func modelLabel(m *Member) string {
	if m.Version == "" {
		return m.Model
	}
	return m.Model + "@" + m.Version
}

// record completes ev and appends it to the history.
func (c *Controller) record(ev Event) error {
	if ev.ID == "" {
		ev.ID = NewEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = c.now().UTC()
	}
	ev.Name = c.Name
	c.log().Info("deploy event", "action", ev.Action, "reason", ev.Reason, "from", ev.From.String(), "to", ev.To.String())
	return AppendEvent(c.Paths.History, ev)
}

func clone(m *Member, weight int) *Member {
	if m == nil {
		return nil
	}
	cp := *m
	cp.Weight = weight
	return &cp
}

// retirePrevious takes the previous model out of the record, returning it
// with its retire event.
func (c *Controller) retirePrevious(rec *Record, reason string) ([]Event, []*Member) {
	if rec.Previous == nil {
		return nil, nil
	}
	p := rec.Previous
	rec.Previous, rec.RetireAt = nil, time.Time{}
	return []Event{{Action: ActionRetire, Reason: reason, Strategy: rec.Strategy, From: clone(p, 0), To: clone(rec.Stable, rec.Stable.Weight)}}, []*Member{p}
}

// Admit puts cand behind the router according to strategy: as the stable
// model if the deployment has none, else at 100% (blue-green, the old
// stable kept at weight 0 until rollbackWindow has passed) or at
// canaryPercent (canary). cand first joins at weight 0 until the router
// reports it healthy. It returns the action taken (ActionDeploy,
// ActionPromote or ActionCanary).
func (c *Controller) Admit(ctx context.Context, cand Member, strategy string, canaryPercent int, canaryDuration, rollbackWindow time.Duration) (string, error) {
	// 1: join at weight 0 (the previous model, if any, is retired: one
	// rollback target at a time).
	var first bool
	_, version, removed, err := c.change(ctx, func(rec *Record) ([]Event, []*Member, error) {
		if rec.Candidate != nil {
			return nil, nil, fmt.Errorf("%w: deployment %s already has a candidate (run %s): promote or roll it back first", ErrBusy, c.Name, rec.Candidate.Run)
		}
		rec.Strategy = strategy
		first = rec.Stable == nil
		if first {
			rec.Stable = clone(&cand, 100)
			return []Event{{Action: ActionDeploy, Reason: "first model of the deployment (smoke tests passed)", Strategy: strategy, To: clone(&cand, 100)}}, nil, nil
		}
		events, removed := c.retirePrevious(rec, "superseded: run "+cand.Run+" is being deployed")
		rec.Candidate = clone(&cand, 0)
		return events, removed, nil
	})
	if err != nil {
		return "", err
	}
	c.drainAndCancel(ctx, version, removed)
	if first {
		// The first model is the stable one already, with nothing to roll
		// back to: a router that does not see it healthy is worth a warning,
		// not a failed deploy.
		if err := c.waitHealthy(ctx, version, cand.Backend); err != nil {
			c.log().Warn("the router does not see the first model healthy yet", "backend", cand.Backend, "err", err)
		}
		return ActionDeploy, nil
	}
	if err := c.waitHealthy(ctx, version, cand.Backend); errors.Is(err, ErrRemovedByHand) {
		return "", err
	} else if err != nil {
		_, rerr := c.Rollback(context.WithoutCancel(ctx), "the router never saw the new server healthy: "+err.Error())
		return "", errors.Join(err, rerr)
	}
	if ctx.Err() != nil {
		_, rerr := c.Rollback(context.WithoutCancel(ctx), "deploy stage interrupted")
		return "", errors.Join(ctx.Err(), rerr)
	}
	// 2: shift traffic.
	if strategy == StrategyCanary {
		_, _, _, err := c.change(ctx, func(rec *Record) ([]Event, []*Member, error) {
			if rec.Candidate == nil || rec.Candidate.Backend != cand.Backend {
				return nil, nil, ErrRemovedByHand
			}
			rec.Candidate.Weight = canaryPercent
			rec.Stable.Weight = 100 - canaryPercent
			rec.CanaryUntil = c.now().Add(canaryDuration).UTC()
			return []Event{{Action: ActionCanary, Reason: fmt.Sprintf("smoke tests passed; canary at %d%% for %s", canaryPercent, canaryDuration),
				Strategy: strategy, From: clone(rec.Stable, rec.Stable.Weight), To: clone(rec.Candidate, canaryPercent)}}, nil, nil
		})
		if err != nil {
			return "", err
		}
		return ActionCanary, nil
	}
	if _, err := c.Promote(ctx, "blue-green: smoke tests passed and the router sees the new server healthy", rollbackWindow); err != nil {
		return "", err
	}
	return ActionPromote, nil
}

// Promote gives the candidate all the traffic; the stable model becomes the
// previous one, kept at weight 0 for rollbackWindow.
func (c *Controller) Promote(ctx context.Context, reason string, rollbackWindow time.Duration) (Record, error) {
	rec, version, removed, err := c.change(ctx, func(rec *Record) ([]Event, []*Member, error) {
		if rec.Candidate == nil {
			return nil, nil, ErrNoCandidate
		}
		events, removed := c.retirePrevious(rec, "superseded by a promotion")
		old, cand := rec.Stable, rec.Candidate
		rec.Previous = clone(old, 0)
		rec.RetireAt = c.now().Add(rollbackWindow).UTC()
		rec.Stable = clone(cand, 100)
		rec.Candidate = nil
		rec.CanaryUntil = time.Time{}
		return append(events, Event{Action: ActionPromote, Reason: reason, Strategy: rec.Strategy, From: clone(old, 0), To: clone(cand, 100)}), removed, nil
	})
	if err != nil {
		return rec, err
	}
	c.drainAndCancel(ctx, version, removed)
	return rec, nil
}

// Rollback takes the candidate out of service if there is one; otherwise
// it gives all the traffic back to the previous model and takes the stable
// one out of service. The server taken out is cancelled once drained.
func (c *Controller) Rollback(ctx context.Context, reason string) (Record, error) {
	rec, version, removed, err := c.change(ctx, func(rec *Record) ([]Event, []*Member, error) {
		switch {
		case rec.Candidate != nil:
			cand := rec.Candidate
			rec.Candidate, rec.CanaryUntil = nil, time.Time{}
			if rec.Stable != nil {
				rec.Stable.Weight = 100
			}
			return []Event{{Action: ActionRollback, Reason: reason, Strategy: rec.Strategy, From: clone(cand, 0), To: clone(rec.Stable, 100)}}, []*Member{cand}, nil
		case rec.Previous != nil && rec.Stable != nil:
			bad, prev := rec.Stable, rec.Previous
			rec.Stable, rec.Previous, rec.RetireAt = clone(prev, 100), nil, time.Time{}
			return []Event{{Action: ActionRollback, Reason: reason, Strategy: rec.Strategy, From: clone(bad, 0), To: clone(prev, 100)}}, []*Member{bad}, nil
		}
		return nil, nil, ErrNothingToRollBack
	})
	if err != nil {
		return rec, err
	}
	c.drainAndCancel(ctx, version, removed)
	return rec, nil
}

// RetireDue retires the previous model if its rollback window has passed.
func (c *Controller) RetireDue(ctx context.Context) (bool, error) {
	retired := false
	_, version, removed, err := c.change(ctx, func(rec *Record) ([]Event, []*Member, error) {
		if rec.Previous == nil || c.now().Before(rec.RetireAt) {
			return nil, nil, errNoChange
		}
		retired = true
		ev, rm := c.retirePrevious(rec, "rollback window over")
		return ev, rm, nil
	})
	if err != nil {
		return false, err
	}
	c.drainAndCancel(ctx, version, removed)
	return retired, nil
}

// Reject records that a new server never got traffic (its smoke tests
// failed, or it never came up) and cancels its job.
func (c *Controller) Reject(ctx context.Context, cand Member, action, reason string) error {
	unlock, err := lock(ctx, c.Paths.Lock)
	if err != nil {
		return err
	}
	rec, rerr := c.Record()
	err = c.record(Event{Action: action, Reason: reason, Strategy: rec.Strategy, From: rec.Stable, To: clone(&cand, 0)})
	unlock()
	if cand.JobID != "" && c.Cancel != nil {
		if cerr := c.Cancel(ctx, cand.JobID); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cancel serving job %s: %w", cand.JobID, cerr))
		}
	}
	return errors.Join(rerr, err)
}

// waitApplied waits until the router reports a routing state of at least
// version (false if it publishes no stats: then it waits a few polls).
func (c *Controller) waitApplied(ctx context.Context, version int64) (Snapshot, bool) {
	deadline := c.now().Add(c.settle())
	misses := 0
	for {
		snap, err := c.Router.Stats(ctx)
		switch {
		case err == nil && snap.StateVersion >= version:
			return snap, true
		case err != nil:
			misses++
			if errors.Is(err, ErrNoStats) && misses >= 3 {
				c.log().Warn("router publishes no stats: assuming it applied the routing state", "version", version, "err", err)
				return Snapshot{}, false
			}
		}
		if c.now().After(deadline) || !sleep(ctx, c.poll()) {
			return snap, false
		}
	}
}

// waitHealthy waits until the router has applied version and sees backend
// healthy.
func (c *Controller) waitHealthy(ctx context.Context, version int64, backend string) error {
	if _, ok := c.waitApplied(ctx, version); !ok {
		return nil // no stats: the smoke tests vouch for the server
	}
	deadline := c.now().Add(c.settle())
	for {
		if !c.isMember(backend) {
			return ErrRemovedByHand
		}
		snap, err := c.Router.Stats(ctx)
		if err == nil && snap.Backends[backend].Healthy {
			return nil
		}
		if c.now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("backend %s not healthy in the router after %s", backend, c.settle())
		}
		if !sleep(ctx, c.poll()) {
			return ctx.Err()
		}
	}
}

// isMember reports whether backend is still in the record (true when the
// record cannot be read: the caller's timeout decides then).
func (c *Controller) isMember(backend string) bool {
	rec, err := c.Record()
	if err != nil {
		return true
	}
	for _, m := range rec.Members() {
		if m.Backend == backend {
			return true
		}
	}
	return false
}

// drainAndCancel waits until the router has applied version and has no
// request in flight on the removed (draining) members, then removes them
// from the routing state and, once the router has applied that, cancels
// their jobs.
func (c *Controller) drainAndCancel(ctx context.Context, version int64, removed []*Member) {
	if len(removed) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if _, ok := c.waitApplied(ctx, version); ok {
		deadline := c.now().Add(c.settle())
		for {
			snap, err := c.Router.Stats(ctx)
			busy := false
			for _, m := range removed {
				if b, ok := snap.Backends[m.Backend]; err == nil && ok && b.InFlight > 0 {
					busy = true
				}
			}
			if !busy || c.now().After(deadline) {
				break
			}
			sleep(ctx, c.poll())
		}
	}
	gone := map[string]bool{}
	for _, m := range removed {
		gone[m.Backend] = true
	}
	_, version, _, err := c.change(ctx, func(rec *Record) ([]Event, []*Member, error) {
		kept := rec.Draining[:0]
		for _, m := range rec.Draining {
			if !gone[m.Backend] {
				kept = append(kept, m)
			}
		}
		if len(kept) == len(rec.Draining) {
			return nil, nil, errNoChange
		}
		rec.Draining = kept
		return nil, nil, nil
	})
	if err != nil {
		c.log().Error("remove drained servers from the routing state", "err", err)
		return
	}
	c.waitApplied(ctx, version)
	for _, m := range removed {
		if m.JobID == "" || c.Cancel == nil {
			continue
		}
		if err := c.Cancel(ctx, m.JobID); err != nil {
			c.log().Error("cancel serving job", "job", m.JobID, "run", m.Run, "err", err)
		} else {
			c.log().Info("cancelled serving job", "job", m.JobID, "run", m.Run)
		}
	}
}

// FinishDrains completes the drains an earlier controller left unfinished
// (it died before the router had drained a server it took out): those of a
// record nobody has changed for the settle time.
func (c *Controller) FinishDrains(ctx context.Context) error {
	rec, err := c.Record()
	if err != nil || len(rec.Draining) == 0 || c.now().Sub(rec.UpdatedAt) < c.settle() {
		return err
	}
	c.drainAndCancel(ctx, rec.StateVersion, rec.Draining)
	return nil
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
