package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/chain"
)

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "cancel every job of a run that has not ended",
		ArgsUsage: "RUN",
		Flags:     []cli.Flag{jsonFlag(`print {"run": ID, "state": STATE, "stages": {STAGE: STATE}}`)},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("cancel: want one RUN")
			}
			return cancelRun(c.Context, e, c.Args().First(), c.Bool("json"))
		},
	}
}

func cancelRun(ctx context.Context, e *env, runID string, asJSON bool) error {
	rs, err := openRun(ctx, e, runID)
	if err != nil {
		return err
	}
	defer rs.close()
	if _, err := rs.cs.refresh(ctx); err != nil {
		e.log.Warn("could not refresh from Slurm before cancelling", "err", err)
	}
	svc, err := rs.service(ctx)
	if err != nil {
		return err
	}
	r, err := svc.Cancel(ctx, rs.run.ID)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.stdout, chain.StateOf(r))
	}
	fmt.Fprintf(e.stdout, "%s %s\n", r.ID, r.State)
	return nil
}
