package main

import (
	"context"
	"strconv"
	"strings"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

// lastRestartReasons says, for every stage of runs that restarted, why it
// last did: the state Slurm was seen to end it with before the restart
// (PREEMPTED, TIMEOUT, NODE_FAIL, ...), else "requeued" (the job requeued
// itself, or nobody looked while it was down). It reads the recorded
// transitions, one query per run that has a restarted stage.
func lastRestartReasons(ctx context.Context, st *store.Store, runs []*store.Run) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, r := range runs {
		restarted := false
		for _, s := range r.Stages {
			restarted = restarted || s.Restarts > 0
		}
		if !restarted {
			continue
		}
		ts, err := st.Transitions(ctx, r.ID)
		if err != nil {
			continue // status shows what it can
		}
		out[r.ID] = map[string]string{}
		for _, s := range r.Stages {
			if s.Restarts > 0 {
				out[r.ID][s.Name] = lastRestartReason(ts, s.Name, s.JobID)
			}
		}
	}
	return out
}

// lastRestartReason reads one stage's transitions (in order).
func lastRestartReason(ts []store.Transition, stage, jobID string) string {
	why, seen := "", ""
	for _, t := range ts {
		if t.Stage != stage || t.JobID != jobID {
			continue
		}
		if st := slurm.ParseState(t.To); st.Terminal() || st == slurm.StateRequeued {
			seen = string(st)
		}
		if rest, ok := strings.CutPrefix(t.Reason, "restart "); ok {
			if n, _, _ := strings.Cut(rest, " "); n != "" {
				if _, err := strconv.Atoi(n); err != nil {
					continue
				}
			}
			why = "requeued"
			if seen != "" && seen != string(slurm.StateCompleted) && seen != string(slurm.StateRequeued) {
				why = seen
			}
			seen = ""
		}
	}
	return why
}

// restartsCell is the RESTARTS column: the count, and why the last one.
func restartsCell(n int, why string) string {
	if n == 0 || why == "" {
		return strconv.Itoa(n)
	}
	return strconv.Itoa(n) + " (" + why + ")"
}
