package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/slurm/rest"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "cluster connection commands",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "connect as the pipeline says; print the transport, Slurm version, API version and partitions; exit 0 or 1",
			ArgsUsage: "FILE",
			Flags:     []cli.Flag{setFlag()},
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
				if err := clusterCheck(c.Context, e, cl); err != nil {
					return err
				}
				return computeCheck(c.Context, e, cl, p.Workdir)
			},
		}},
	}
}

// clusterCheck asks the cluster what a user needs to know before
// submitting. Over REST, the Slurm version and partitions come from the
// Slurm commands where this transport runs them (this host, or the login
// node over SSH), when they are there.
func clusterCheck(ctx context.Context, e *env, cl *cluster) error {
	fmt.Fprintf(e.stdout, "transport: %s\n", cl.transport)
	if cl.name != "" {
		fmt.Fprintf(e.stdout, "cluster: %s\n", cl.name)
	}
	api := "-"
	if rc, ok := cl.client.(*rest.Client); ok {
		if err := rc.Ping(ctx); err != nil {
			return fmt.Errorf("cluster check: %w", err)
		}
		v, err := rc.APIVersion(ctx)
		if err != nil {
			return fmt.Errorf("cluster check: %w", err)
		}
		api = v
	}
	cmds := cmdline.New(cl.runner)
	version, verr := withReadRetries(ctx, e, func() (string, error) { return cmds.Version(ctx) })
	parts, perr := cmds.Partitions(ctx)
	if cl.transport != "rest" {
		// Over local and SSH these commands are the transport itself.
		if verr != nil {
			return fmt.Errorf("cluster check: %w", verr)
		}
		if perr != nil {
			return fmt.Errorf("cluster check: %w", perr)
		}
	}
	if verr != nil {
		version = "unknown (no Slurm commands where this transport runs them: " + firstLine(verr.Error()) + ")"
	}
	fmt.Fprintf(e.stdout, "slurm version: %s\n", strings.TrimPrefix(version, "slurm-wlm "))
	fmt.Fprintf(e.stdout, "api version: %s\n", api)
	if perr != nil {
		fmt.Fprintf(e.stdout, "partitions: unknown (%s)\n", firstLine(perr.Error()))
		return nil
	}
	fmt.Fprintln(e.stdout, "partitions:")
	for _, p := range parts {
		def, limit := "", "no time limit"
		if p.Default {
			def = " (default)"
		}
		if p.MaxTime > 0 {
			limit = "max time " + p.MaxTime.String()
		}
		fmt.Fprintf(e.stdout, "  %s%s: %s, %d nodes, %s\n", p.Name, def, strings.ToLower(p.State), p.TotalNodes, limit)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// computeCheck reports the slurmtune the job scripts will call.
func computeCheck(ctx context.Context, e *env, cl *cluster, workdir string) error {
	b, err := cl.binaryPlan(workdir)
	if err != nil {
		return err
	}
	if b == nil {
		fmt.Fprintf(e.stdout, "compute slurmtune: %s (this binary)\n", cl.slurmtune)
		return nil
	}
	what, err := b.Check(ctx, loginShell{cl.runner})
	if err != nil {
		return fmt.Errorf("cluster check: %w", err)
	}
	fmt.Fprintf(e.stdout, "compute slurmtune: %s\n", what)
	return nil
}
