package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/store"
)

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "ask Slurm about every tracked job that has not ended and record what changed, and sample the routers of blue-green and canary deployments (for cron)",
		Flags: []cli.Flag{jsonFlag(`print {"tracked": N, "changed": N, "missing": N}`)},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return syncRuns(c.Context, e, c.Bool("json"))
		},
	}
}

func syncRuns(ctx context.Context, e *env, asJSON bool) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	cs := newClusterSet(e, st)
	defer cs.close()
	res, err := cs.refresh(ctx)
	refreshDeployments(ctx, e, st) // needs no cluster answer: done even when Slurm did not answer
	deliverNotifications(ctx, e, st)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.stdout, struct {
			Tracked int `json:"tracked"`
			Changed int `json:"changed"`
			Missing int `json:"missing"`
		}{res.Tracked, res.Changed, res.Missing})
	}
	fmt.Fprintf(e.stdout, "tracked %d, changed %d, missing %d\n", res.Tracked, res.Changed, res.Missing)
	return nil
}

// refreshDeployments does for every blue-green or canary deployment in the
// database what `deploy status` does first: it samples the router's
// per-backend counters into SQLite (the time series performance drift
// compares), imports the switch history and finishes due retirements. So a
// cron `sync` keeps the samples coming without anyone asking for a status.
// A deployment that fails is logged and skipped; it never fails sync.
func refreshDeployments(ctx context.Context, e *env, st *store.Store) {
	names, err := st.DeployingNames(ctx)
	if err != nil {
		e.log.Warn("list deployments", "err", err)
		return
	}
	for _, name := range names {
		d, err := findDeployment(ctx, st, name, "")
		if err != nil {
			continue // deploys by record only, or no snapshot left
		}
		if _, err := os.Stat(d.paths.Record); err != nil {
			continue // nothing deployed yet
		}
		if _, err := d.refresh(ctx, e, st); err != nil {
			e.log.Warn("refresh deployment", "name", name, "err", err)
		}
	}
}
