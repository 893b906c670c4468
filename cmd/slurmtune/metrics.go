package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/metrics"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

// `slurmtune metrics` and `compare`: package metrics reads and builds
// what they show.

type metricsOptions struct {
	run, stage, name string
	json, csv        bool
	noSync           bool
}

func metricsCommand() *cli.Command {
	return &cli.Command{
		Name:      "metrics",
		Usage:     "show the training curves and eval metrics a run's stages reported (refreshed first)",
		ArgsUsage: "RUN",
		Description: "Prints every point the run's payloads appended to $SLURMTUNE_METRICS_FILE\n" +
			"(see the README's payload contract) with its step, time, Slurm job, retry\n" +
			"attempt and restart, after reading what is new.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "stage", Usage: "only this stage's metrics (train, eval, ...)"},
			&cli.StringFlag{Name: "name", Usage: "only this metric (loss, learning_rate, ...)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "csv", Usage: "print CSV"},
			&cli.BoolFlag{Name: "no-sync", Usage: "show what the database knows without asking Slurm or reading new lines"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("metrics: want one RUN")
			}
			if c.Bool("json") && c.Bool("csv") {
				return usagef("metrics: --json and --csv exclude each other")
			}
			return showMetrics(c.Context, e, metricsOptions{run: c.Args().First(), stage: c.String("stage"), name: c.String("name"),
				json: c.Bool("json"), csv: c.Bool("csv"), noSync: c.Bool("no-sync")})
		},
	}
}

// refreshRuns syncs with Slurm and reads what is new for the runs, unless
// noSync; it returns the runs as the database then has them.
func refreshRuns(ctx context.Context, e *env, st *store.Store, runs []*store.Run, noSync bool) ([]*store.Run, error) {
	if noSync {
		return runs, nil
	}
	cs := newClusterSet(e, st)
	defer cs.close()
	if _, err := cs.refresh(ctx); err != nil {
		e.log.Warn("could not refresh from Slurm; showing the last known state", "err", err)
	}
	out := make([]*store.Run, len(runs))
	for i, r := range runs {
		var err error
		if out[i], err = st.GetRun(ctx, r.ID); err != nil {
			return nil, err
		}
	}
	ingestRuns(ctx, e, st, cs, out)
	return out, nil
}

func showMetrics(ctx context.Context, e *env, o metricsOptions) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := st.GetRun(ctx, o.run)
	if err != nil {
		return err
	}
	runs, err := refreshRuns(ctx, e, st, []*store.Run{r}, o.noSync)
	if err != nil {
		return err
	}
	out, err := metrics.Show(ctx, st, runs[0], store.MetricFilter{Stage: o.stage, Name: o.name})
	switch {
	case err != nil:
		return err
	case o.json:
		return printJSON(e.stdout, out)
	case o.csv:
		return out.WriteCSV(e.stdout)
	}
	return out.WriteText(e.stdout)
}

type compareOptions struct {
	runs   []string
	json   bool
	noSync bool
}

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "compare runs: differing hyperparameters, final train loss, eval metrics and gates, GPU-hours, wall time, restarts",
		ArgsUsage: "RUN RUN... | SWEEP-RUN",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "no-sync", Usage: "show what the database knows without asking Slurm or reading new lines"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() < 1 {
				return usagef("compare: want at least two RUNs, or one sweep run")
			}
			return compareRuns(c.Context, e, compareOptions{runs: c.Args().Slice(), json: c.Bool("json"), noSync: c.Bool("no-sync")})
		},
	}
}

func compareRuns(ctx context.Context, e *env, o compareOptions) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	var runs []*store.Run
	for _, id := range o.runs {
		r, err := st.GetRun(ctx, id)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	runs, err = refreshRuns(ctx, e, st, runs, o.noSync)
	if err != nil {
		return err
	}
	out, err := metrics.Compare(ctx, st, runs)
	if err != nil {
		return err
	}
	if len(runs) < 2 && len(out.Sweeps) == 0 {
		return usagef("compare: want at least two RUNs (%s is not a sweep)", runs[0].ID)
	}
	if o.json {
		return printJSON(e.stdout, out)
	}
	return out.WriteText(e.stdout)
}

// ingestRuns reads what is new for each run on its cluster, one connection
// per cluster configuration.
func ingestRuns(ctx context.Context, e *env, st *store.Store, cs *clusterSet, runs []*store.Run) {
	for _, r := range runs {
		if !metrics.HasJobs(r) {
			continue
		}
		cl, err := cs.get(ctx, r.ClusterConfig)
		if err != nil {
			e.log.Warn("could not reach the cluster for metrics", "run", r.ID, "err", err)
			continue
		}
		metrics.Ingest(ctx, e.log, st, cl.fs, r)
	}
}

// ingestRun reads what is new for one run (see metrics.Ingest).
func ingestRun(ctx context.Context, e *env, st *store.Store, fsys slurm.FileSystem, r *store.Run) {
	metrics.Ingest(ctx, e.log, st, fsys, r)
}
