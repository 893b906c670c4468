package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
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
	cs.add(cl)
	if err := cl.checkFiles(ctx, p, c.Args().First()); err != nil {
		return err
	}
	if err := cl.computeBinary(ctx, p.Workdir); err != nil {
		return err
	}
	svc, err := e.service(st, cl)
	if err != nil {
		return err
	}
	opts := chain.SubmitOptions{IfChanged: o.ifChanged}
	if opts.Tasks, err = sweepTasks(c, p, cl.Inspector); err != nil {
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
	if err := printSubmitted(e, o.json, res); err != nil || !o.wait {
		return err
	}
	r, err := svc.Watch(ctx, res.Run.ID, o.interval, e.stderr, func(r *store.Run) { ingestRun(ctx, e, st, cl.fs, r) })
	if err != nil {
		return err
	}
	deliverNotifications(ctx, e, st)
	if r.State != store.RunSucceeded {
		return exitError{code: exitFailure, msg: fmt.Sprintf("slurmtune: run %s %s", r.ID, r.State)}
	}
	return nil
}

// printSubmitted prints the run id, or with --json {"run", "jobs"} on one
// line (submit and retry).
func printSubmitted(e *env, asJSON bool, res *chain.Submitted) error {
	if !asJSON {
		_, err := fmt.Fprintln(e.stdout, res.Run.ID)
		return err
	}
	return json.NewEncoder(e.stdout).Encode(struct {
		Run  string            `json:"run"`
		Jobs map[string]string `json:"jobs"`
	}{res.Run.ID, res.Jobs})
}
