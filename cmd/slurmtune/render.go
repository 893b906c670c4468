package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/templates"
)

type renderOptions struct {
	outDir string
	json   bool
	// tasks are a sweep's (sweepTasks), rendered as submit queues them.
	tasks []sweep.Task
}

// renderResult is what render --json prints.
type renderResult = chain.Rendered

func renderCommand() *cli.Command {
	return &cli.Command{
		Name:      "render",
		Usage:     "write each enabled stage's sbatch script to DIR without submitting (a sweep: its array scripts and each task's tasks/K/, as submit queues them; with train.chain_time_limit, after asking the cluster for the partition's time limit)",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			setFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "`DIR` to write the scripts to (required)"},
			jsonFlag(`print {"run", "run_dir", "placeholder": true, "files": {STAGE: PATH}} (a sweep: every file by its path in the run directory, and "dependencies": {STAGE: "afterok:STAGE", ...})`),
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.String("output") == "" {
				return usagef("render: -o DIR is required")
			}
			p, err := loadPipeline(c)
			if err != nil {
				return err
			}
			tasks, err := sweepTasks(c, p, nil)
			if err != nil {
				return err
			}
			return render(c.Context, e, p, renderOptions{outDir: c.String("output"), json: c.Bool("json"), tasks: tasks})
		},
	}
}

// render writes the scripts of a run that would be submitted now
// (chain.Render). With train.chain_time_limit it asks the cluster for the
// partition's time limit, as submit does.
func render(ctx context.Context, e *env, p *jobs.Pipeline, o renderOptions) error {
	ts, err := templates.New()
	if err != nil {
		return err
	}
	self, err := e.self()
	if err != nil {
		return err
	}
	svc := &chain.Service{Templates: ts, Slurmtune: self.OnCluster(p.Cluster)}
	if p.StageOn(jobs.StageTrain) && p.Train.ChainTimeLimit {
		cl, err := connect(ctx, e, p.Cluster)
		if err != nil {
			return err
		}
		defer cl.close()
		svc.Inspector = cl.Inspector
	}
	r, err := svc.Render(ctx, p, o.tasks, o.outDir)
	if err != nil {
		return err
	}
	e.log.Info("rendered with a placeholder run id and directory: submit makes a new run id", "placeholder_run", r.Run, "placeholder_run_dir", r.RunDir)
	if o.json {
		return printJSON(e.stdout, r)
	}
	for _, p := range r.Paths {
		fmt.Fprintln(e.stdout, p)
	}
	return nil
}
