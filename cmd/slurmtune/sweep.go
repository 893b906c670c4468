package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/sweep"
)

func sweepCommand() *cli.Command {
	return &cli.Command{
		Name:  "sweep",
		Usage: "a sweep run's own steps (the select job runs `sweep select`)",
		Subcommands: []*cli.Command{{
			Name:  "select",
			Usage: "pick the best task that passed every gate and point the run's checkpoints and eval at it; exit 1 with the reason when none passed",
			Flags: []cli.Flag{&cli.StringFlag{Name: "run-dir", Required: true, Usage: "the sweep run's directory"}},
			Action: func(c *cli.Context) error {
				e, err := newEnv(c)
				if err != nil {
					return err
				}
				sel, err := sweep.SelectRun(c.Context, c.String("run-dir"))
				if sel != nil {
					for _, t := range sel.Tasks {
						fmt.Fprintf(e.stdout, "slurmtune: task %d: %s\n", t.Task, t.Line(sel.Metric))
					}
				}
				if err != nil {
					return exitError{code: exitFailure, msg: "slurmtune: FAILED: " + err.Error()}
				}
				fmt.Fprintf(e.stdout, "slurmtune: winner: task %d\n", *sel.Winner)
				return nil
			},
		}},
	}
}

// sweepTasks resolves the sweep of the pipeline file the command names
// (nil when p is not a sweep), checked against the cluster's MaxArraySize
// (see sweep.Tasks).
func sweepTasks(c *cli.Context, p *jobs.Pipeline, cluster sweep.ArraySizer) ([]sweep.Task, error) {
	return sweep.Tasks(c.Context, p, c.Args().First(), jobs.LoadOptions{Sets: c.StringSlice("set")}, cluster)
}
