package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// StatusMember is one model server in a Status.
type StatusMember struct {
	Run     string `json:"run"`
	JobID   string `json:"job_id"`
	URL     string `json:"url"`
	Weight  int    `json:"weight"`
	Model   string `json:"model,omitempty"`
	Version string `json:"version,omitempty"`
}

// StatusEvent is one switch in a Status.
type StatusEvent struct {
	Time   time.Time     `json:"time"`
	Action string        `json:"action"`
	Reason string        `json:"reason"`
	From   *StatusMember `json:"from"`
	To     *StatusMember `json:"to"`
}

// Status is a deployment as `slurmtune deploy status --json` prints it: the
// stable model, the candidate, the previous model kept for rollback, and
// every switch.
type Status struct {
	Name      string        `json:"name"`
	Strategy  string        `json:"strategy"`
	Stable    *StatusMember `json:"stable"`
	Candidate *StatusMember `json:"candidate"`
	Previous  *StatusMember `json:"previous,omitempty"`
	History   []StatusEvent `json:"history"`
	retireAt  time.Time
}

func toStatusMember(m *Member) *StatusMember {
	if m == nil {
		return nil
	}
	return &StatusMember{Run: m.Run, JobID: m.JobID, URL: m.URL, Weight: m.Weight, Model: m.Model, Version: m.Version}
}

// Status refreshes the deployment and returns its status.
func (d *Deployment) Status(ctx context.Context) (*Status, error) {
	rec, err := d.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	return d.status(ctx, rec)
}

func (d *Deployment) status(ctx context.Context, rec Record) (*Status, error) {
	evs, err := d.Store.DeployEvents(ctx, d.Name)
	if err != nil {
		return nil, err
	}
	out := &Status{Name: d.Name, Strategy: rec.Strategy, Stable: toStatusMember(rec.Stable),
		Candidate: toStatusMember(rec.Candidate), Previous: toStatusMember(rec.Previous), History: []StatusEvent{}, retireAt: rec.RetireAt}
	if out.Strategy == "" && d.Pipeline != nil {
		out.Strategy = d.Pipeline.Deploy.Strategy
	}
	for _, ev := range evs {
		se := StatusEvent{Time: ev.At.UTC(), Action: ev.Action, Reason: ev.Reason}
		var full Event
		if json.Unmarshal([]byte(ev.Detail), &full) == nil {
			se.From, se.To = toStatusMember(full.From), toStatusMember(full.To)
		}
		out.History = append(out.History, se)
	}
	return out, nil
}

// WriteText writes the status as `slurmtune deploy status` prints it.
func (s *Status) WriteText(w io.Writer) {
	fmt.Fprintf(w, "deployment %s (%s)\n", s.Name, s.Strategy)
	line := func(role string, m *StatusMember) {
		if m == nil {
			fmt.Fprintf(w, "  %-9s -\n", role)
			return
		}
		fmt.Fprintf(w, "  %-9s run %s  job %s  %s  weight %d  %s@%s\n", role, m.Run, m.JobID, m.URL, m.Weight, m.Model, m.Version)
	}
	line("stable", s.Stable)
	line("candidate", s.Candidate)
	if s.Previous != nil {
		line("previous", s.Previous)
		fmt.Fprintf(w, "            (kept for rollback until %s)\n", s.retireAt.Local().Format(time.DateTime))
	}
	fmt.Fprintln(w, "history:")
	for _, h := range s.History {
		from, to := "-", "-"
		if h.From != nil {
			from = h.From.Run
		}
		if h.To != nil {
			to = h.To.Run
		}
		fmt.Fprintf(w, "  %s  %-12s %s -> %s: %s\n", h.Time.Local().Format(time.DateTime), h.Action, from, to, h.Reason)
	}
}
