package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/chain"
)

type logsOptions struct {
	run, stage string
	follow     bool
	json       bool
	interval   time.Duration
}

// logMeta is what logs --json prints.
type logMeta = chain.StageLog

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a stage's log; -f follows it until the stage ends",
		ArgsUsage: "RUN STAGE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing as the log grows, until the stage ends"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "how often -f looks for more"},
			jsonFlag(`print the log's metadata instead of the log: {"run", "stage", "job_id", "state", "attempt", "restarts", "nodes", "log", "exists"}`),
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 2 {
				return usagef("logs: want RUN STAGE")
			}
			if c.Bool("json") && c.Bool("follow") {
				return usagef("logs: --json prints the log's metadata and cannot follow it")
			}
			return logs(c.Context, e, logsOptions{run: c.Args().Get(0), stage: c.Args().Get(1), follow: c.Bool("follow"),
				json: c.Bool("json"), interval: c.Duration("interval")})
		},
	}
}

func logs(ctx context.Context, e *env, o logsOptions) error {
	rs, err := openRun(ctx, e, o.run)
	if err != nil {
		return err
	}
	defer rs.close()
	lg, err := chain.StageLogOf(rs.run, o.stage)
	var unknown *chain.UnknownStageError
	if errors.As(err, &unknown) {
		return usagef("%v", err)
	}
	cl, err := rs.cluster(ctx)
	if err != nil {
		return err
	}
	if o.json {
		if lg.Exists, err = chain.LogExists(ctx, cl.fs, lg.Log); err != nil {
			return err
		}
		return printJSON(e.stdout, lg)
	}
	err = chain.CopyLog(ctx, cl.fs, lg.Log, e.stdout, chain.LogFollow{Follow: o.follow, Interval: o.interval,
		Ended: func(ctx context.Context) (bool, error) {
			if _, err := rs.cs.refresh(ctx); err != nil {
				e.log.Warn("could not refresh from Slurm", "err", err)
			}
			return chain.StageEnded(ctx, rs.st, rs.run.ID, o.stage)
		}})
	if errors.Is(err, chain.ErrNoLog) {
		return fmt.Errorf("no log yet for %s/%s (%s): the job has not started", rs.run.ID, o.stage, lg.Log)
	}
	return err
}
