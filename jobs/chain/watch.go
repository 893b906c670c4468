package chain

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/slurmtune/slurmtune/jobs/notify"
	"github.com/slurmtune/slurmtune/store"
)

// Watch follows the run until it ends (Follow, every interval), calling
// seen after each refresh and writing a ProgressLine to w whenever it
// changes; then it queues the webhook events the run's end revealed.
func (s *Service) Watch(ctx context.Context, runID string, interval time.Duration, w io.Writer, seen func(*store.Run)) (*store.Run, error) {
	last := ""
	r, err := s.Follow(ctx, runID, interval, func(r *store.Run) {
		if seen != nil {
			seen(r)
		}
		if line := ProgressLine(r); line != last {
			fmt.Fprintln(w, line)
			last = line
		}
	})
	if err != nil {
		return nil, err
	}
	if _, err := notify.Queue(ctx, s.Store, time.Now()); err != nil {
		s.Log.Warn("queue notifications", "err", err)
	}
	return r, nil
}

// ProgressLine is one line of progress: the run state and each stage's.
func ProgressLine(r *store.Run) string {
	s := fmt.Sprintf("%s %s:", r.ID, r.State)
	for _, st := range r.Stages {
		s += fmt.Sprintf(" %s=%s", st.Name, st.State)
		if st.Reason != "" && st.State != "COMPLETED" {
			s += "(" + st.Reason + ")"
		}
	}
	return s
}

// RunState is a run's state and each stage's (cancel --json).
type RunState struct {
	Run    string            `json:"run"`
	State  string            `json:"state"`
	Stages map[string]string `json:"stages"`
}

// StateOf is r's RunState.
func StateOf(r *store.Run) RunState {
	rs := RunState{Run: r.ID, State: r.State, Stages: map[string]string{}}
	for _, st := range r.Stages {
		rs.Stages[st.Name] = st.State
	}
	return rs
}
