package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

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
				rep, err := clusterCheck(c.Context, e, cl)
				if err != nil {
					return err
				}
				if err := computeCheck(c.Context, e, cl, p.Workdir, rep); err != nil {
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

// clusterReport is what cluster check finds (printed as lines or --json).
type clusterReport struct {
	Transport        string          `json:"transport"`
	Cluster          string          `json:"cluster"`
	SlurmVersion     string          `json:"slurm_version"`
	APIVersion       string          `json:"api_version"`
	Partitions       []partitionJSON `json:"partitions"`
	PartitionsError  string          `json:"partitions_error,omitempty"`
	ComputeSlurmtune string          `json:"compute_slurmtune"`
}

type partitionJSON struct {
	Name           string `json:"name"`
	Default        bool   `json:"default"`
	State          string `json:"state"`
	Nodes          int    `json:"nodes"`
	MaxTimeSeconds int64  `json:"max_time_seconds"`
}

// clusterCheck asks the cluster what a user needs to know before
// submitting. Over REST, the Slurm version and partitions come from the
// Slurm commands where this transport runs them (this host, or the login
// node over SSH), when they are there.
func clusterCheck(ctx context.Context, e *env, cl *cluster) (*clusterReport, error) {
	rep := &clusterReport{Transport: cl.transport, Cluster: cl.name, APIVersion: "-", Partitions: []partitionJSON{}}
	if rc, ok := cl.client.(*rest.Client); ok {
		if err := rc.Ping(ctx); err != nil {
			return nil, fmt.Errorf("cluster check: %w", err)
		}
		v, err := rc.APIVersion(ctx)
		if err != nil {
			return nil, fmt.Errorf("cluster check: %w", err)
		}
		rep.APIVersion = v
	}
	cmds := cmdline.New(cl.runner)
	version, verr := withReadRetries(ctx, e, func() (string, error) { return cmds.Version(ctx) })
	parts, perr := cmds.Partitions(ctx)
	if cl.transport != "rest" {
		// Over local and SSH these commands are the transport itself.
		if verr != nil {
			return nil, fmt.Errorf("cluster check: %w", verr)
		}
		if perr != nil {
			return nil, fmt.Errorf("cluster check: %w", perr)
		}
	}
	if verr != nil {
		version = "unknown (no Slurm commands where this transport runs them: " + firstLine(verr.Error()) + ")"
	}
	rep.SlurmVersion = strings.TrimPrefix(version, "slurm-wlm ")
	if perr != nil {
		rep.PartitionsError = firstLine(perr.Error())
	}
	for _, p := range parts {
		rep.Partitions = append(rep.Partitions, partitionJSON{Name: p.Name, Default: p.Default, State: strings.ToLower(p.State),
			Nodes: p.TotalNodes, MaxTimeSeconds: int64(p.MaxTime.Seconds())})
	}
	return rep, nil
}

// computeCheck adds the slurmtune the job scripts will call.
func computeCheck(ctx context.Context, e *env, cl *cluster, workdir string, rep *clusterReport) error {
	b, err := cl.binaryPlan(ctx, e, workdir)
	if err != nil {
		return err
	}
	if b == nil {
		rep.ComputeSlurmtune = cl.slurmtune + " (this binary)"
		return nil
	}
	what, err := b.Check(ctx, loginShell{cl.runner})
	if err != nil {
		return fmt.Errorf("cluster check: %w", err)
	}
	rep.ComputeSlurmtune = what
	return nil
}

// printClusterReport prints the report as lines.
func printClusterReport(w io.Writer, rep *clusterReport) {
	fmt.Fprintf(w, "transport: %s\n", rep.Transport)
	if rep.Cluster != "" {
		fmt.Fprintf(w, "cluster: %s\n", rep.Cluster)
	}
	fmt.Fprintf(w, "slurm version: %s\n", rep.SlurmVersion)
	fmt.Fprintf(w, "api version: %s\n", rep.APIVersion)
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

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
