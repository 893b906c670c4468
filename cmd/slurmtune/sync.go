package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/serve/deploy"
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

// refreshDeployments samples the routers of every blue-green or canary
// deployment into the database (see deploy.RefreshAll); it never fails sync.
func refreshDeployments(ctx context.Context, e *env, st *store.Store) {
	deploy.RefreshAll(ctx, deployDeps(e, st))
}
