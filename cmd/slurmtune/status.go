package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/metrics"
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
	v, err := metrics.StatusOfRuns(ctx, st, runs, gpu)
	if err != nil {
		return err
	}
	if o.json {
		return v.WriteJSON(e.stdout)
	}
	return v.WriteTable(e.stdout)
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
