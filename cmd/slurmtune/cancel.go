package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"
)

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "cancel every job of a run that has not ended",
		ArgsUsage: "RUN",
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("cancel: want one RUN")
			}
			return cancelRun(c.Context, e, c.Args().First())
		},
	}
}

func cancelRun(ctx context.Context, e *env, runID string) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	run, err := st.GetRun(ctx, runID)
	if err != nil {
		return err
	}
	cs := newClusterSet(e, st)
	defer cs.close()
	if _, err := cs.refresh(ctx); err != nil {
		e.log.Warn("could not refresh from Slurm before cancelling", "err", err)
	}
	svc, err := cs.service(ctx, run.ClusterConfig)
	if err != nil {
		return err
	}
	r, err := svc.Cancel(ctx, run.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %s\n", r.ID, r.State)
	return nil
}
