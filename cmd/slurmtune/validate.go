package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/templates"
)

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a pipeline file; exit 0 when valid, 2 with FILE:LINE:COL messages when not",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			setFlag(),
			&cli.BoolFlag{Name: "cluster", Usage: "also check against the cluster: partition, nodes, time limits, account, QOS, sbatch --test-only (exit 1 when it cannot be reached)"},
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
			for _, w := range p.Warnings(c.Args().First()) {
				fmt.Fprintln(e.stderr, w.Error())
			}
			if c.Bool("cluster") {
				cl, err := connect(c.Context, e, p.Cluster)
				if err != nil {
					return err
				}
				defer cl.close()
				ts, err := templates.New()
				if err != nil {
					return err
				}
				prep, err := (&chain.Service{Client: cl.client, Templates: ts, Slurmtune: cl.slurmtune}).Prepare(p)
				if err != nil {
					return err
				}
				errs, warnings, err := preflight(c.Context, cl.runner, p, c.Args().First(), prep.Scripts)
				if err != nil {
					return err
				}
				for _, w := range warnings {
					fmt.Fprintf(e.stderr, "%s: warning: %s\n", c.Args().First(), w)
				}
				if len(errs) > 0 {
					return errs
				}
				fmt.Fprintf(e.stdout, "%s: valid, and the cluster can run it (stages: %v)\n", c.Args().First(), p.Stages())
				return nil
			}
			fmt.Fprintf(e.stdout, "%s: valid (stages: %v)\n", c.Args().First(), p.Stages())
			return nil
		},
	}
}
