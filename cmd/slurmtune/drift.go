package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/serve/deploy"
	"github.com/slurmtune/slurmtune/serve/drift"
	"github.com/slurmtune/slurmtune/store"
)

// exitDrift is the exit code of `slurmtune drift` when a drift check
// crossed its alert threshold.
const exitDrift = 4

func driftCommand() *cli.Command {
	return &cli.Command{
		Name:      "drift",
		Usage:     "check a deployment's stable model for data and performance drift",
		ArgsUsage: "NAME",
		Description: "Compares the prompts the stable model's server logged with its training data (prompt length\n" +
			"and word frequency PSI) and its recent error rate and p95 latency with its first window after\n" +
			"the switch (router stats sampled into the database by this command and by deploy status).\n" +
			"Exits 4 when a check crosses its alert threshold, after posting a JSON alert to monitor.webhook.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "the router state `FILE` of the deployment (default: deploy.router.state of the newest serving run named NAME)"},
			jsonFlag("print the report as JSON"),
			&cli.BoolFlag{Name: "no-webhook", Usage: "do not post an alert to monitor.webhook"},
		},
		Action: func(c *cli.Context) error {
			return withDeployment(c, "drift", func(ctx context.Context, e *env, st *store.Store, d *deploy.Deployment) error {
				rep, err := checkDrift(ctx, e, st, d, !c.Bool("no-webhook"))
				if err != nil {
					return err
				}
				if c.Bool("json") {
					err = printJSON(e.stdout, rep)
				} else {
					rep.WriteText(e.stdout)
				}
				if err == nil && rep.Drifted {
					return exitError{code: exitDrift}
				}
				return err
			})
		},
	}
}

// checkDrift runs the drift checks of d's stable model (posting the alert
// when post is set).
func checkDrift(ctx context.Context, e *env, st *store.Store, d *deploy.Deployment, post bool) (*drift.Alert, error) {
	t, err := d.DriftTarget(ctx, st)
	if err != nil {
		return nil, err
	}
	return drift.Check{Store: st, Log: e.log, Post: post, UserAgent: "slurmtune/" + version,
		Deliver: func(ctx context.Context) { deliverNotifications(ctx, e, st) }}.Run(ctx, t)
}

// skipWithoutDrift is submit --if-drift: true (after printing a line) when
// the deployment named like the pipeline has not drifted (the alert is
// posted as by drift).
func skipWithoutDrift(c *cli.Context, e *env, p *jobs.Pipeline) (bool, error) {
	if !c.Bool("if-drift") {
		return false, nil
	}
	ctx := contextOf(c)
	st, err := e.openStore(ctx)
	if err != nil {
		return true, err
	}
	defer st.Close()
	d, err := deploy.ForPipeline(ctx, st, servingSlurm(), e.log, p)
	if err != nil {
		return true, err
	}
	rep, err := checkDrift(ctx, e, st, d, true)
	if err != nil {
		return true, err
	}
	if !rep.Drifted {
		fmt.Fprintf(e.stdout, "no drift detected for deployment %s (level %s): not submitting\n", p.Name, rep.Level)
		return true, nil
	}
	e.log.Info("drift detected: submitting", "deployment", p.Name, "reasons", strings.Join(rep.Reasons, "; "))
	return false, nil
}
