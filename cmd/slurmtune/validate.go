package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/preflight"
	connectpkg "github.com/slurmtune/slurmtune/slurm/connect"
)

type validateOptions struct {
	file    string
	cluster bool
	json    bool
}

// validateResult is what validate --json prints.
type validateResult = preflight.Result

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a pipeline file; exit 0 when valid, 2 with FILE:LINE:COL messages when not",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			setFlag(),
			&cli.BoolFlag{Name: "cluster", Usage: "also check against the cluster: partition, nodes, time limits, account, QOS, sbatch --test-only (exit 1 when it cannot be reached)"},
			jsonFlag(`print {"file", "valid", "cluster_checked", "stages", "errors": [{"file", "line", "col", "set", "message", "text"}], "warnings"}`),
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			o := validateOptions{file: c.Args().First(), cluster: c.Bool("cluster"), json: c.Bool("json")}
			p, err := loadPipeline(c)
			var open preflight.Connect
			if o.cluster {
				open = func(ctx context.Context, cc jobs.Cluster) (preflight.Target, func(), error) {
					cl, err := connect(ctx, e, cc)
					if err != nil {
						return preflight.Target{}, nil, err
					}
					return preflight.Target{Client: cl.client, Inspector: cl.Inspector, FS: cl.fs, Where: cl.Where(), Slurmtune: cl.slurmtune}, cl.close, nil
				}
			}
			res, err := preflight.ValidateFile(c.Context, o.file, jobs.LoadOptions{Sets: c.StringSlice("set")}, p, err, connectpkg.HostFS(), open)
			if err != nil {
				return err
			}
			return printValidate(e, o, res)
		},
	}
}

// printValidate prints the verdict: lines (problems on stderr) or JSON on
// stdout; exit 2 when the file has problems.
func printValidate(e *env, o validateOptions, res *preflight.Result) error {
	if o.json {
		for _, w := range res.FileWarnings {
			res.Warnings = append(res.Warnings, w.Error())
		}
		if err := printJSON(e.stdout, res); err != nil || res.Valid {
			return err
		}
		return exitError{code: exitInvalid}
	}
	for _, w := range res.FileWarnings {
		fmt.Fprintln(e.stderr, w.Error())
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "%s: warning: %s\n", o.file, w)
	}
	switch {
	case !res.Valid:
		return res.Problems
	case o.cluster:
		fmt.Fprintf(e.stdout, "%s: valid, and the cluster can run it (stages: %v)\n", o.file, res.Stages)
	default:
		fmt.Fprintf(e.stdout, "%s: valid (stages: %v)\n", o.file, res.Stages)
	}
	return nil
}
