package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	connectpkg "github.com/slurmtune/slurmtune/slurm/connect"
)

// clusterReport is what cluster check prints (as lines or --json).
type clusterReport = connectpkg.Report

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "cluster connection commands",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "connect as the pipeline says; print the transport, Slurm version, API version and partitions; exit 0 or 1",
			ArgsUsage: "FILE",
			Flags:     []cli.Flag{setFlag(), jsonFlag(`print {"transport", "cluster", "slurm_version", "api_version", "partitions": [...], "compute_slurmtune"}`)},
			Action: func(c *cli.Context) error {
				e, err := newEnv(c)
				if err != nil {
					return err
				}
				p, err := loadPipeline(c)
				if err != nil {
					return err
				}
				cl, err := connect(c.Context, e, p.Cluster)
				if err != nil {
					return err
				}
				defer cl.close()
				rep, err := clusterCheck(c.Context, e, cl, p.Workdir)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(e.stdout, rep)
				}
				return rep.WriteText(e.stdout)
			},
		}},
	}
}

// clusterCheck asks the cluster (connect.Cluster.Check) and adds the
// slurmtune the job scripts will call.
func clusterCheck(ctx context.Context, e *env, cl *cluster, workdir string) (*clusterReport, error) {
	rep, err := cl.Check(ctx, e.log)
	if err != nil {
		return nil, err
	}
	rep.ComputeSlurmtune = cl.slurmtune + " (this binary)"
	if b := cl.binaryPlan(ctx, workdir); b != nil {
		if rep.ComputeSlurmtune, err = b.Check(ctx, cl.Cluster); err != nil {
			return nil, fmt.Errorf("cluster check: %w", err)
		}
	}
	return rep, nil
}
