package connect

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

// Report is what cluster check finds.
type Report struct {
	Transport        string          `json:"transport"`
	Cluster          string          `json:"cluster"`
	SlurmVersion     string          `json:"slurm_version"`
	APIVersion       string          `json:"api_version"`
	Partitions       []PartitionInfo `json:"partitions"`
	PartitionsError  string          `json:"partitions_error,omitempty"`
	ComputeSlurmtune string          `json:"compute_slurmtune"`
}

// PartitionInfo is one partition as cluster check reports it.
type PartitionInfo struct {
	Name           string `json:"name"`
	Default        bool   `json:"default"`
	State          string `json:"state"`
	Nodes          int    `json:"nodes"`
	MaxTimeSeconds int64  `json:"max_time_seconds"`
}

// Check asks the cluster what a user needs to know before submitting: the
// Slurm version, slurmrestd's API version ("-" without one) and the
// partitions. Over REST, the Slurm version and partitions come from the
// Slurm commands where this transport runs them, when they are there; not
// finding them there is reported, not an error. ComputeSlurmtune is left
// to the caller.
func (cl *Cluster) Check(ctx context.Context, log *slog.Logger) (*Report, error) {
	rep := &Report{Transport: cl.Transport, Cluster: cl.Name, APIVersion: "-", Partitions: []PartitionInfo{}}
	api, err := cl.Inspector.APIVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster check: %w", err)
	}
	if api != "" {
		rep.APIVersion = api
	}
	version, verr := slurm.ReadRetrying(ctx, log, func() (string, error) { return cl.Inspector.Version(ctx) })
	parts, perr := cl.Inspector.Partitions(ctx)
	if cl.Transport != "rest" {
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
		rep.Partitions = append(rep.Partitions, PartitionInfo{Name: p.Name, Default: p.Default, State: strings.ToLower(p.State),
			Nodes: p.TotalNodes, MaxTimeSeconds: int64(p.MaxTime.Seconds())})
	}
	return rep, nil
}

// WriteText writes the report as lines, for people.
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "transport: %s\n", rep.Transport)
	if rep.Cluster != "" {
		fmt.Fprintf(&b, "cluster: %s\n", rep.Cluster)
	}
	fmt.Fprintf(&b, "slurm version: %s\napi version: %s\n", rep.SlurmVersion, rep.APIVersion)
	if rep.PartitionsError != "" {
		fmt.Fprintf(&b, "partitions: unknown (%s)\n", rep.PartitionsError)
	} else {
		b.WriteString("partitions:\n")
		for _, p := range rep.Partitions {
			def, limit := "", "no time limit"
			if p.Default {
				def = " (default)"
			}
			if p.MaxTimeSeconds > 0 {
				limit = "max time " + (time.Duration(p.MaxTimeSeconds) * time.Second).String()
			}
			fmt.Fprintf(&b, "  %s%s: %s, %d nodes, %s\n", p.Name, def, p.State, p.Nodes, limit)
		}
	}
	fmt.Fprintf(&b, "compute slurmtune: %s\n", rep.ComputeSlurmtune)
	_, err := io.WriteString(w, b.String())
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
