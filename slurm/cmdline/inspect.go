package cmdline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

var _ slurm.Inspector = (*Client)(nil)

// APIVersion is "": Slurm's commands speak no REST API.
func (c *Client) APIVersion(context.Context) (string, error) { return "", nil }

// nodeFormat is sinfo's --format for Nodes (ParseNodes reads it).
const nodeFormat = "--format=%N|%c|%m|%G|%T|%f"

// Nodes lists the nodes of partition ("" for all) with sinfo --Node.
func (c *Client) Nodes(ctx context.Context, partition string) ([]slurm.Node, error) {
	argv := []string{"sinfo", "--noheader", "--Node"}
	if partition != "" {
		argv = append(argv, "--partition="+partition)
	}
	out, err := c.run.Run(ctx, Command{Argv: append(argv, nodeFormat)})
	if err != nil {
		return nil, fmt.Errorf("sinfo --Node: %w", classify(err))
	}
	return ParseNodes(out)
}

// Reservations lists the reservations' names (scontrol show reservation).
func (c *Client) Reservations(ctx context.Context) ([]string, error) {
	out, err := c.run.Run(ctx, Command{Argv: []string{"scontrol", "--oneliner", "show", "reservation"}})
	if err != nil {
		return nil, fmt.Errorf("scontrol show reservation: %w", classify(err))
	}
	return ParseReservations(out), nil
}

// HasAccount looks the account up with sacctmgr.
func (c *Client) HasAccount(ctx context.Context, name string) (bool, error) {
	return c.sacctmgrHas(ctx, "account", "account", name)
}

// HasQOS looks the QOS up with sacctmgr.
func (c *Client) HasQOS(ctx context.Context, name string) (bool, error) {
	return c.sacctmgrHas(ctx, "qos", "name", name)
}

func (c *Client) sacctmgrHas(ctx context.Context, entity, field, name string) (bool, error) {
	out, err := c.run.Run(ctx, Command{Argv: []string{"sacctmgr", "--noheader", "--parsable2", "show", entity, name, "format=" + field}})
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.EqualFold(strings.TrimSpace(l), name) {
			return true, nil
		}
	}
	return false, nil
}

// TestSubmit runs sbatch --test-only with the script on stdin, the
// request's comment and its extra options.
func (c *Client) TestSubmit(ctx context.Context, req slurm.SubmitRequest) error {
	argv := []string{"sbatch", "--test-only"}
	if req.Comment != "" {
		argv = append(argv, "--comment="+req.Comment)
	}
	_, err := c.run.Run(ctx, Command{Argv: append(argv, req.ExtraArgs...), Stdin: req.Script})
	var ee *ExitError
	if errors.As(err, &ee) {
		return &slurm.RefusedError{Reason: SbatchComplaint(ee.Stderr)}
	}
	if err != nil {
		return fmt.Errorf("sbatch --test-only: %w", err)
	}
	return nil
}

// GPUAllocations asks sacct for the allocated GPUs and elapsed time of
// jobs, summed over requeues (--duplicates).
func (c *Client) GPUAllocations(ctx context.Context, ids []string) (map[string]slurm.GPUAllocation, error) {
	out, err := c.run.Run(ctx, Command{Argv: []string{"sacct", "--noheader", "--parsable2", "--allocations", "--duplicates",
		"--format=JobIDRaw,State,AllocTRES,ElapsedRaw", "--jobs=" + strings.Join(ids, ",")}})
	if err != nil {
		return nil, err
	}
	return ParseSacctGPUs(out), nil
}

// Token runs scontrol token without SLURM_JWT in its environment: scontrol
// would authenticate with the very token that was rejected, so the new one
// is minted over munge.
func (c *Client) Token(ctx context.Context, lifespan time.Duration) (string, error) {
	out, err := c.run.Run(ctx, Command{Argv: []string{"env", "-u", "SLURM_JWT", "scontrol", "token",
		"lifespan=" + strconv.Itoa(int(lifespan.Seconds()))}})
	if err != nil {
		return "", fmt.Errorf("scontrol token: %w", err)
	}
	return string(out), nil
}

// SbatchComplaint is sbatch's error output on one line.
func SbatchComplaint(stderr string) string {
	var msgs []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "sbatch: error:"))
		if l != "" {
			msgs = append(msgs, l)
		}
	}
	if len(msgs) == 0 {
		return "no reason given"
	}
	return strings.Join(msgs, "; ")
}

// ParseNodes reads sinfo --noheader --Node --format=%N|%c|%m|%G|%T, with
// the features (|%f) as an optional sixth field; a node listed twice (in
// several partitions) counts once.
func ParseNodes(out []byte) ([]slurm.Node, error) {
	seen := map[string]bool{}
	var nodes []slurm.Node
	for i, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 5 && len(f) != 6 {
			return nil, fmt.Errorf("sinfo line %d: want 5 or 6 fields, got %d: %q", i+1, len(f), line)
		}
		n := slurm.Node{Name: f[0], State: f[4], GPUs: gpuCount(f[3]), GPUTypes: gresGPUTypes(f[3])}
		var err error
		if n.CPUs, err = strconv.Atoi(strings.TrimSuffix(f[1], "+")); err != nil {
			return nil, fmt.Errorf("sinfo line %d: CPUs %q", i+1, f[1])
		}
		n.MemMB, _ = strconv.ParseInt(strings.TrimSuffix(f[2], "+"), 10, 64)
		if len(f) == 6 {
			for _, name := range strings.Split(f[5], ",") {
				if name != "" && name != "(null)" {
					n.Features = append(n.Features, name)
				}
			}
		}
		if !seen[n.Name] {
			seen[n.Name] = true
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// gpuCount is the number of GPUs in a node's gres as sinfo's %G prints it:
// "gpu:4", "gpu:a100:8(S:0-1)", "gpu:a100:4,gpu:v100:2,shard:8", "(null)".
func gpuCount(gres string) int {
	total := 0
	for _, item := range splitGres(gres) {
		if i := strings.IndexByte(item, '('); i >= 0 {
			item = item[:i]
		}
		f := strings.Split(item, ":")
		if len(f) < 2 || f[0] != "gpu" {
			continue
		}
		if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
			total += n
		}
	}
	return total
}

// gresGPUTypes are the GPU types in a node's gres as sinfo's %G prints it
// ("gpu:a100:4(S:0-1),gpu:v100:2" -> a100, v100; "gpu:4" has none).
func gresGPUTypes(gres string) []string {
	var out []string
	for _, item := range splitGres(gres) {
		if i := strings.IndexByte(item, '('); i >= 0 {
			item = item[:i]
		}
		f := strings.Split(item, ":")
		if len(f) == 3 && f[0] == "gpu" {
			out = append(out, f[1])
		}
	}
	return out
}

// splitGres splits sinfo's %G at the commas outside parentheses.
func splitGres(gres string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range gres {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			out = append(out, gres[start:i])
			start = i + 1
		}
	}
	return append(out, gres[start:])
}

// ParseReservations reads the names of scontrol --oneliner show
// reservation.
func ParseReservations(out []byte) []string {
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, tok := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(tok, "ReservationName="); ok {
				names = append(names, v)
			}
		}
	}
	return names
}

// ParseSacctGPUs reads sacct --parsable2 --format=JobIDRaw,State,
// AllocTRES,ElapsedRaw: per job, the most GPUs of any of its runs, the
// elapsed time of all of them, and whether its last one ended.
func ParseSacctGPUs(out []byte) map[string]slurm.GPUAllocation {
	rows := map[string]slurm.GPUAllocation{}
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 4 || f[0] == "" {
			continue
		}
		el, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			continue
		}
		row := rows[f[0]]
		row.GPUs = max(row.GPUs, TRESGPUs(f[2]))
		row.Elapsed += time.Duration(el) * time.Second
		row.Ended = slurm.ParseState(f[1]).Terminal()
		rows[f[0]] = row
	}
	return rows
}

// TRESGPUs is N of gres/gpu=N in a TRES list, else the sum of typed
// gres/gpu:TYPE=N, else 0.
func TRESGPUs(tres string) int {
	typed := 0
	for kv := range strings.SplitSeq(tres, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		switch {
		case k == "gres/gpu":
			return n
		case strings.HasPrefix(k, "gres/gpu:"):
			typed += n
		}
	}
	return typed
}
