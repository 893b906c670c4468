package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"
)

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "ask Slurm about every tracked job that has not ended and record what changed (for cron)",
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return syncRuns(c.Context, e)
		},
	}
}

func syncRuns(ctx context.Context, e *env) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	cs := newClusterSet(e, st)
	defer cs.close()
	res, err := cs.refresh(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "tracked %d, changed %d, missing %d\n", res.Tracked, res.Changed, res.Missing)
	return nil
}
