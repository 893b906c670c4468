package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/store"
)

type submitOptions struct {
	wait     bool
	json     bool
	interval time.Duration
}

func submitCommand() *cli.Command {
	return &cli.Command{
		Name:      "submit",
		Usage:     "submit a pipeline's stages as one chain of Slurm jobs and print the run id",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			setFlag(),
			&cli.BoolFlag{Name: "wait", Usage: "show progress until the run ends; exit 0 only if it succeeded"},
			&cli.BoolFlag{Name: "json", Usage: `print {"run": ID, "jobs": {STAGE: JOBID}}`},
			&cli.DurationFlag{Name: "interval", Value: 5 * time.Second, Usage: "how often --wait asks Slurm"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			p, err := loadPipeline(c)
			if err != nil {
				return err
			}
			return submit(c, e, p, submitOptions{wait: c.Bool("wait"), json: c.Bool("json"), interval: c.Duration("interval")})
		},
	}
}

func submit(c *cli.Context, e *env, p *jobs.Pipeline, o submitOptions) error {
	ctx := c.Context
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	cl, err := connect(ctx, e, p)
	if err != nil {
		return err
	}
	defer cl.close()
	svc, err := e.service(st, cl)
	if err != nil {
		return err
	}
	res, err := svc.Submit(ctx, p)
	if err != nil {
		return err
	}
	if o.json {
		out := struct {
			Run  string            `json:"run"`
			Jobs map[string]string `json:"jobs"`
		}{res.Run.ID, res.Jobs}
		if err := json.NewEncoder(e.stdout).Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(e.stdout, res.Run.ID)
	}
	if !o.wait {
		return nil
	}
	last := ""
	r, err := svc.Follow(ctx, res.Run.ID, o.interval, func(r *store.Run) {
		line := progressLine(r)
		if line != last {
			fmt.Fprintln(e.stderr, line)
			last = line
		}
	})
	if err != nil {
		return err
	}
	if r.State != store.RunSucceeded {
		return exitError{code: exitFailure, msg: fmt.Sprintf("slurmtune: run %s %s", r.ID, r.State)}
	}
	return nil
}

// progressLine is one line of --wait progress: the run state and each stage's.
func progressLine(r *store.Run) string {
	s := fmt.Sprintf("%s %s:", r.ID, r.State)
	for _, st := range r.Stages {
		s += fmt.Sprintf(" %s=%s", st.Name, st.State)
		if st.Reason != "" && st.State != "COMPLETED" {
			s += "(" + st.Reason + ")"
		}
	}
	return s
}
