package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
)

func retryCommand() *cli.Command {
	return &cli.Command{
		Name:      "retry",
		Usage:     "resubmit a run's failed stage (or --from STAGE) and every stage after it, keeping every attempt's history",
		ArgsUsage: "RUN",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "resubmit from this `STAGE` (default: the first that did not complete)"},
			&cli.IntFlag{Name: "task", Value: -1, Usage: "a sweep run: resubmit task `K` (its train and eval), then select and deploy"},
			&cli.BoolFlag{Name: "json", Usage: `print {"run": ID, "jobs": {STAGE: JOBID}}`},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("retry: want one RUN")
			}
			from := c.String("from")
			if k := c.Int("task"); k >= 0 {
				from = jobs.TaskStage("train", k)
			}
			return retryRun(c.Context, e, c.Args().First(), from, c.Bool("json"))
		},
	}
}

func retryRun(ctx context.Context, e *env, runID, from string, asJSON bool) error {
	rs, err := openRun(ctx, e, runID)
	if err != nil {
		return err
	}
	defer rs.close()
	if _, err := rs.cs.refresh(ctx); err != nil {
		return fmt.Errorf("retry: refresh from Slurm first: %w", err)
	}
	svc, err := rs.service(ctx)
	if err != nil {
		return err
	}
	res, err := svc.Retry(ctx, rs.run.ID, from)
	if err != nil {
		return err
	}
	return printSubmitted(e, asJSON, res)
}
