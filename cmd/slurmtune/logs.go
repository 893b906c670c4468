package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/urfave/cli/v2"

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
	path := templates.LayoutOf(r.RunDir).StageLogPath(o.stage)
	if o.json {
		_, err := cl.fs.ReadAt(ctx, path, 0, 1)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read log: %w", err)
		}
		return printJSON(e.stdout, logMeta{Run: r.ID, Stage: stage.Name, JobID: stage.JobID, State: stage.State, Attempt: stage.Attempt,
			Restarts: stage.Restarts, Nodes: stage.Nodes, Log: path, Exists: err == nil})
	}
	var off int64
	const chunk = 1 << 20
	for {
		for {
			b, err := cl.fs.ReadAt(ctx, path, off, chunk)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					if !o.follow {
						return fmt.Errorf("no log yet for %s/%s (%s): the job has not started", r.ID, o.stage, path)
					}
					break
				}
				return fmt.Errorf("read log: %w", err)
			}
			if len(b) == 0 {
				break
			}
			if _, err := e.stdout.Write(b); err != nil {
				return err
			}
			off += int64(len(b))
		}
		if !o.follow {
			return nil
		}
		if _, err := cs.refresh(ctx); err != nil {
			e.log.Warn("could not refresh from Slurm", "err", err)
		}
		cur, err := st.GetRun(ctx, r.ID)
		if err != nil {
			return err
		}
		done := false
		for _, s := range cur.Stages {
			if s.Name == o.stage && (s.Terminal() || s.State == store.StateNotSubmitted) {
				done = true
			}
		}
		if done {
			// One last read for what was written before the end.
			b, err := cl.fs.ReadAt(ctx, path, off, chunk)
			for err == nil && len(b) > 0 {
				e.stdout.Write(b)
				off += int64(len(b))
				b, err = cl.fs.ReadAt(ctx, path, off, chunk)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.interval):
		}
	}
}
