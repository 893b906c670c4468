package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/jobs/notify"
	"github.com/slurmtune/slurmtune/store"
)

type submitOptions struct {
	wait      bool
	json      bool
	ifChanged bool
	interval  time.Duration
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
			&cli.BoolFlag{Name: "if-changed", Usage: "for cron: skip (exit 0) when a run with the same inputs is in flight or succeeded"},
			&cli.BoolFlag{Name: "if-drift", Usage: "for cron: submit only when slurmtune drift finds the deployment of this pipeline drifted (else print a line, exit 0)"},
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
			if skip, err := skipWithoutDrift(c, e, p); skip || err != nil {
				return err
			}
			return submit(c, e, p, submitOptions{wait: c.Bool("wait"), json: c.Bool("json"), ifChanged: c.Bool("if-changed"), interval: c.Duration("interval")})
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
	cs := newClusterSet(e, st)
	defer cs.close()
	// Finish what an earlier, killed slurmtune left before adding to it.
	if _, err := cs.refresh(ctx); err != nil {
		e.log.Warn("could not reconcile and refresh earlier runs", "err", err)
	}
	cl, err := connect(ctx, e, p.Cluster)
	if err != nil {
		return err
	}
	cs.conns[cl.config] = cl
	if err := cl.checkFiles(ctx, p, c.Args().First()); err != nil {
		return err
	}
	if err := cl.computeBinary(ctx, e, p.Workdir); err != nil {
		return err
	}
	svc, err := e.service(st, cl)
	if err != nil {
		return err
	}
	opts := chain.SubmitOptions{IfChanged: o.ifChanged}
	if opts.Tasks, err = sweepTasks(c, p, cl.client); err != nil {
		return err
	}
	if o.ifChanged {
		if opts.Fingerprint, err = chain.Fingerprint(p); err != nil {
			return err
		}
	}
	res, err := svc.Submit(ctx, p, opts)
	if err != nil {
		return err
	}
	if res.Skipped != nil {
		fmt.Fprintf(e.stdout, "skipped: run %s has the same inputs\n", res.Skipped.ID)
		return nil
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
		ingestRun(ctx, e, st, cl.fs, r)
		line := progressLine(r)
		if line != last {
			fmt.Fprintln(e.stderr, line)
			last = line
		}
	})
	if err != nil {
		return err
	}
	if _, err := notify.Queue(ctx, st, time.Now()); err != nil {
		e.log.Warn("queue notifications", "err", err)
	}
	deliverNotifications(ctx, e, st)
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
