package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

// StatusView is what `slurmtune status` shows of runs: their stages, GPU
// summaries (package nvml), last train loss, eval verdict and why each
// stage last restarted.
type StatusView struct {
	Runs     []*store.Run
	GPU      map[string]*nvml.RunGPU
	Restarts map[string]map[string]string
	Metrics  map[string]*Status
	// Sweeps are the sweep runs' tables (by run id).
	Sweeps map[string]*sweep.View
}

// StatusOfRuns builds the status view of runs with their GPU summaries.
func StatusOfRuns(ctx context.Context, st *store.Store, runs []*store.Run, gpu map[string]*nvml.RunGPU) (StatusView, error) {
	v := StatusView{Runs: runs, GPU: gpu, Restarts: lastRestartReasons(ctx, st, runs)}
	var err error
	if v.Metrics, err = StatusOf(ctx, st, runs); err != nil {
		return v, err
	}
	v.Sweeps, err = sweep.Views(ctx, st, runs)
	return v, err
}

// StatusStage is one stage in `slurmtune status --json`.
type StatusStage struct {
	Name     string `json:"name"`
	JobID    string `json:"job_id"`
	State    string `json:"state"`
	ExitCode *int   `json:"exit_code"`
	Restarts int    `json:"restarts"`
	Nodes    string `json:"nodes"`
	Reason   string `json:"reason"`
	// Error is the line a failed job's log said why with ("" otherwise).
	Error   string `json:"error"`
	Attempt int    `json:"attempt"`
	Elapsed int64  `json:"elapsed_seconds"`
	// LastRestartReason is why the stage's job last restarted (see
	// lastRestartReasons); "" when it never did.
	LastRestartReason string `json:"last_restart_reason"`
	// GPU telemetry (see gpu.go): mean utilization over the stage's GPUs,
	// "ok"/"unavailable"/"" telemetry, allocated GPUs and GPU-hours.
	GPUUtilPct       *float64 `json:"gpu_util_pct"`
	GPUTelemetry     string   `json:"gpu_telemetry"`
	GPUUnderutilized bool     `json:"gpu_underutilized"`
	GPUs             int      `json:"gpus"`
	GPUHours         *float64 `json:"gpu_hours"`
}

// StatusRun is one run in `slurmtune status --json`.
type StatusRun struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	State     string        `json:"state"`
	Transport string        `json:"transport"`
	Cluster   string        `json:"cluster"`
	RunDir    string        `json:"run_dir"`
	Created   time.Time     `json:"created_at"`
	Stages    []StatusStage `json:"stages"`
	// GPUHours is allocated GPUs x elapsed over the run's jobs; the source
	// is "sacct", "pipeline" or "sacct+pipeline".
	GPUHours       *float64 `json:"gpu_hours"`
	GPUHoursSource string   `json:"gpu_hours_source"`
	// Metrics is the run's last train loss and its eval report.
	Metrics *Status `json:"metrics"`
	// Sweep is a sweep run's table (absent for other runs).
	Sweep *sweep.View `json:"sweep,omitempty"`
}

// WriteJSON writes the view as `status --json` prints it.
func (v StatusView) WriteJSON(w io.Writer) error {
	runs, gpu, restarts, mets := v.Runs, v.GPU, v.Restarts, v.Metrics
	out := struct {
		Runs []StatusRun `json:"runs"`
	}{Runs: []StatusRun{}}
	for _, r := range runs {
		rj := StatusRun{ID: r.ID, Name: r.Name, State: r.State, Transport: r.Transport, Cluster: r.Cluster, RunDir: r.RunDir,
			Created: r.CreatedAt.UTC(), Stages: []StatusStage{}, Metrics: mets[r.ID], Sweep: v.Sweeps[r.ID]}
		g := gpu[r.ID]
		if g != nil {
			rj.GPUHours, rj.GPUHoursSource = g.Hours, g.Source
		}
		for _, s := range r.Stages {
			sj := StatusStage{Name: s.Name, JobID: s.JobID, State: s.State, ExitCode: s.ExitCode,
				Restarts: s.Restarts, Nodes: s.Nodes, Reason: s.Reason, Error: s.Error, Attempt: s.Attempt, Elapsed: int64(s.Elapsed / time.Second),
				LastRestartReason: restarts[r.ID][s.Name]}
			if sg := g.StageOf(s.Name); sg != nil {
				sj.GPUUtilPct, sj.GPUTelemetry, sj.GPUUnderutilized, sj.GPUs, sj.GPUHours = sg.UtilPct, sg.Telemetry, sg.Underutilized, sg.GPUs, sg.Hours
			}
			rj.Stages = append(rj.Stages, sj)
		}
		out.Runs = append(out.Runs, rj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteTable writes the view as `status` prints it.
func (v StatusView) WriteTable(w io.Writer) error {
	runs, gpu, restarts, mets := v.Runs, v.GPU, v.Restarts, v.Metrics
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tNAME\tSTATE\tGPU-H\tLOSS\tEVAL\tSTAGE\tJOB\tSLURM STATE\tEXIT\tRESTARTS\tELAPSED\tGPU UTIL\tNODES\tREASON")
	for _, r := range runs {
		for i, s := range r.Stages {
			id, name, state, gpuH, loss, ev := r.ID, r.Name, r.State, nvml.HoursCell(gpu[r.ID]), mets[r.ID].LossCell(), mets[r.ID].EvalCell()
			if i > 0 {
				id, name, state, gpuH, loss, ev = "", "", "", "", "", ""
			}
			exit := "-"
			if s.ExitCode != nil {
				exit = strconv.Itoa(*s.ExitCode)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, nvml.OneLine(name), state, gpuH, loss, ev, s.Name, nvml.Dash(s.JobID), s.State, exit,
				restartsCell(s.Restarts, restarts[r.ID][s.Name]), s.Elapsed, nvml.UtilCell(gpu[r.ID].StageOf(s.Name)), nvml.Dash(s.Nodes), nvml.Dash(reasonCell(s)))
		}
		if len(r.Stages) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", r.ID, nvml.OneLine(r.Name), r.State, nvml.HoursCell(gpu[r.ID]),
				mets[r.ID].LossCell(), mets[r.ID].EvalCell())
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := nvml.WriteFootnote(w, runs, gpu); err != nil {
		return err
	}
	return WriteSweepTables(w, runs, v.Sweeps, false)
}

// reasonCell is Slurm's reason, and the log's error line of a failed job.
func reasonCell(s store.Stage) string {
	switch {
	case s.Error == "":
		return s.Reason
	case s.Reason == "":
		return nvml.OneLine(s.Error)
	}
	return s.Reason + ": " + nvml.OneLine(s.Error)
}

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
