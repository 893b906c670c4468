package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/metrics"
	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/store"
)

type statusOptions struct {
	run    string
	json   bool
	noSync bool
	limit  int
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show runs and their stages (refreshed from Slurm first)",
		ArgsUsage: "[RUN]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "no-sync", Usage: "show what the database knows without asking Slurm"},
			&cli.IntFlag{Name: "limit", Value: 20, Usage: "show at most N runs (0: all)"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() > 1 {
				return usagef("status: at most one RUN")
			}
			return status(c.Context, e, statusOptions{run: c.Args().First(), json: c.Bool("json"), noSync: c.Bool("no-sync"), limit: c.Int("limit")})
		},
	}
}

func status(ctx context.Context, e *env, o statusOptions) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if !o.noSync {
		syncQuietly(ctx, e, st)
	}
	var runs []*store.Run
	if o.run != "" {
		r, err := st.GetRun(ctx, o.run)
		if err != nil {
			return err
		}
		runs = []*store.Run{r}
	} else if runs, err = st.ListRuns(ctx, o.limit); err != nil {
		return err
	}
	gpu := gpuSummaries(ctx, e, st, runs, !o.noSync)
	restarts := lastRestartReasons(ctx, st, runs)
	mets, err := metrics.StatusOf(ctx, st, runs)
	if err != nil {
		return err
	}
	if o.json {
		return writeStatusJSON(e.stdout, runs, gpu, restarts, mets)
	}
	return writeStatusTable(e.stdout, runs, gpu, restarts, mets)
}

// syncQuietly refreshes from Slurm; when the cluster cannot be asked, status
// still shows what the database knows, with a warning.
func syncQuietly(ctx context.Context, e *env, st *store.Store) {
	cs := newClusterSet(e, st)
	defer cs.close()
	if _, err := cs.refresh(ctx); err != nil {
		e.log.Warn("could not refresh from Slurm; showing the last known state", "err", err)
	}
}

type stageJSON struct {
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

type runJSON struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	State     string      `json:"state"`
	Transport string      `json:"transport"`
	Cluster   string      `json:"cluster"`
	RunDir    string      `json:"run_dir"`
	Created   time.Time   `json:"created_at"`
	Stages    []stageJSON `json:"stages"`
	// GPUHours is allocated GPUs x elapsed over the run's jobs; the source
	// is "sacct", "pipeline" or "sacct+pipeline".
	GPUHours       *float64 `json:"gpu_hours"`
	GPUHoursSource string   `json:"gpu_hours_source"`
	// Metrics is the run's last train loss and its eval report.
	Metrics *metrics.Status `json:"metrics"`
}

func writeStatusJSON(w io.Writer, runs []*store.Run, gpu map[string]*nvml.RunGPU, restarts map[string]map[string]string, mets map[string]*metrics.Status) error {
	out := struct {
		Runs []runJSON `json:"runs"`
	}{Runs: []runJSON{}}
	for _, r := range runs {
		rj := runJSON{ID: r.ID, Name: r.Name, State: r.State, Transport: r.Transport, Cluster: r.Cluster, RunDir: r.RunDir,
			Created: r.CreatedAt.UTC(), Stages: []stageJSON{}, Metrics: mets[r.ID]}
		g := gpu[r.ID]
		if g != nil {
			rj.GPUHours, rj.GPUHoursSource = g.Hours, g.Source
		}
		for _, s := range r.Stages {
			sj := stageJSON{Name: s.Name, JobID: s.JobID, State: s.State, ExitCode: s.ExitCode,
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

func writeStatusTable(w io.Writer, runs []*store.Run, gpu map[string]*nvml.RunGPU, restarts map[string]map[string]string, mets map[string]*metrics.Status) error {
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, oneLine(name), state, gpuH, loss, ev, s.Name, dash(s.JobID), s.State, exit,
				restartsCell(s.Restarts, restarts[r.ID][s.Name]), s.Elapsed, nvml.UtilCell(gpu[r.ID].StageOf(s.Name)), dash(s.Nodes), dash(reasonCell(s)))
		}
		if len(r.Stages) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", r.ID, oneLine(r.Name), r.State, nvml.HoursCell(gpu[r.ID]),
				mets[r.ID].LossCell(), mets[r.ID].EvalCell())
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return nvml.WriteFootnote(w, runs, gpu)
}

// reasonCell is Slurm's reason, and the log's error line of a failed job.
func reasonCell(s store.Stage) string {
	switch {
	case s.Error == "":
		return s.Reason
	case s.Reason == "":
		return oneLine(s.Error)
	}
	return s.Reason + ": " + oneLine(s.Error)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a user-chosen name from breaking the table.
func oneLine(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}
