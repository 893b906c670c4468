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

// exitDrift is drift's exit code when a check crossed its alert threshold.
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
			stateFlag(),
			jsonFlag("print the report as JSON"),
			&cli.BoolFlag{Name: "no-webhook", Usage: "do not post an alert to monitor.webhook"},
		},
		Action: deploymentAction("drift: want exactly one deployment NAME", func(c *cli.Context, e *env, st *store.Store, d *deploy.Deployment) error {
			rep, err := driftCheck(e, st, !c.Bool("no-webhook")).Run(c.Context, d)
			if err := printResult(e, c.Bool("json"), rep, err); err != nil || !rep.Drifted {
				return err
			}
			return exitError{code: exitDrift}
		}),
	}
}

// driftCheck is a drift check that posts its alert when post is set.
func driftCheck(e *env, st *store.Store, post bool) drift.Check {
	return drift.Check{Store: st, Log: e.log, Post: post, UserAgent: "slurmtune/" + version,
		Deliver: func(ctx context.Context) { deliverNotifications(ctx, e, st) }}
}

// skipWithoutDrift is submit --if-drift: true (after printing a line) when
// the deployment named like the pipeline has not drifted (the alert is
// posted as by drift).
func skipWithoutDrift(c *cli.Context, e *env, p *jobs.Pipeline) (bool, error) {
	if !c.Bool("if-drift") {
		return false, nil
	}
	st, err := e.openStore(c.Context)
	if err != nil {
		return true, err
	}
	defer st.Close()
	d, err := deploy.ForPipeline(c.Context, deployDeps(e, st), p)
	if err != nil {
		return true, err
	}
	rep, err := driftCheck(e, st, true).Run(c.Context, d)
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
