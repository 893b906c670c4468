package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

type logsOptions struct {
	run, stage string
	follow     bool
	json       bool
	interval   time.Duration
}

// logMeta is what logs --json prints: where the log is and the job's state.
type logMeta struct {
	Run      string `json:"run"`
	Stage    string `json:"stage"`
	JobID    string `json:"job_id"`
	State    string `json:"state"`
	Attempt  int    `json:"attempt"`
	Restarts int    `json:"restarts"`
	Nodes    string `json:"nodes"`
	Log      string `json:"log"`
	Exists   bool   `json:"exists"`
}

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
	st, cs, r := rs.st, rs.cs, rs.run
	var stage *store.Stage
	for i := range r.Stages {
		if r.Stages[i].Name == o.stage {
			stage = &r.Stages[i]
		}
	}
	if stage == nil {
		names := make([]string, len(r.Stages))
		for i, s := range r.Stages {
			names[i] = s.Name
		}
		return usagef("run %s has no stage %q (stages: %v)", r.ID, o.stage, names)
	}
	cl, err := rs.cluster(ctx)
	if err != nil {
		return err
	}
	path := templates.LayoutOf(r.RunDir).LogPath(o.stage)
	if o.json {
		exists, err := chain.LogExists(ctx, cl.fs, path)
		if err != nil {
			return err
		}
		return printJSON(e.stdout, logMeta{Run: r.ID, Stage: stage.Name, JobID: stage.JobID, State: stage.State, Attempt: stage.Attempt,
			Restarts: stage.Restarts, Nodes: stage.Nodes, Log: path, Exists: exists})
	}
	err = chain.CopyLog(ctx, cl.fs, path, e.stdout, chain.LogFollow{Follow: o.follow, Interval: o.interval,
		Ended: func(ctx context.Context) (bool, error) {
			if _, err := cs.refresh(ctx); err != nil {
				e.log.Warn("could not refresh from Slurm", "err", err)
			}
			cur, err := st.GetRun(ctx, r.ID)
			if err != nil {
				return false, err
			}
			for _, s := range cur.Stages {
				if s.Name == o.stage && (s.Terminal() || s.State == store.StateNotSubmitted) {
					return true, nil
				}
			}
			return false, nil
		}})
	if errors.Is(err, chain.ErrNoLog) {
		return fmt.Errorf("no log yet for %s/%s (%s): the job has not started", r.ID, o.stage, path)
	}
	return err
}
