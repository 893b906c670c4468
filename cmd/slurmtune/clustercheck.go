package main

import (
	"context"
	"fmt"
	"io"
	"time"

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
				printClusterReport(e.stdout, rep)
				return nil
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
	b, err := cl.binaryPlan(ctx, e, workdir)
	if err != nil {
		return nil, err
	}
	if b == nil {
		rep.ComputeSlurmtune = cl.slurmtune + " (this binary)"
		return rep, nil
	}
	if rep.ComputeSlurmtune, err = b.Check(ctx, cl.Cluster); err != nil {
		return nil, fmt.Errorf("cluster check: %w", err)
	}
	return rep, nil
}

// printClusterReport prints the report as lines.
func printClusterReport(w io.Writer, rep *clusterReport) {
	fmt.Fprintf(w, "transport: %s\n", rep.Transport)
	if rep.Cluster != "" {
		fmt.Fprintf(w, "cluster: %s\n", rep.Cluster)
	}
	fmt.Fprintf(w, "slurm version: %s\napi version: %s\n", rep.SlurmVersion, rep.APIVersion)
	if rep.PartitionsError != "" {
		fmt.Fprintf(w, "partitions: unknown (%s)\n", rep.PartitionsError)
	} else {
		fmt.Fprintln(w, "partitions:")
		for _, p := range rep.Partitions {
			def, limit := "", "no time limit"
			if p.Default {
				def = " (default)"
			}
			if p.MaxTimeSeconds > 0 {
				limit = "max time " + (time.Duration(p.MaxTimeSeconds) * time.Second).String()
			}
			fmt.Fprintf(w, "  %s%s: %s, %d nodes, %s\n", p.Name, def, p.State, p.Nodes, limit)
		}
	}
	fmt.Fprintf(w, "compute slurmtune: %s\n", rep.ComputeSlurmtune)
}
