// Package cmdline implements slurm.Client on top of Slurm's own command-line
// tools (sbatch, squeue, sacct, scontrol, scancel). Where the commands run is
// a Runner's business: on this host (package slurm/local) or on a login node
// over SSH (package slurm/ssh). Output parsing lives in parse.go, apart from
// all I/O, so it can be table-tested and fuzzed.
package cmdline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/slurmtune/slurmtune/slurm"
)

// Command is one command line to run on the cluster.
type Command struct {
	Argv []string
	Env  map[string]string
	// Secrets are environment variables a Runner must not show on a
	// command line or write to a file (see slurm.SubmitRequest.Secrets).
	Secrets map[string]string
	Stdin   []byte
}

// Runner runs a command where the Slurm tools are and returns its stdout.
// A command that ran and exited non-zero returns an *ExitError.
type Runner interface {
	Run(ctx context.Context, cmd Command) ([]byte, error)
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Argv   []string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if msg == "" {
		msg = fmt.Sprintf("exit status %d", e.Code)
	}
	return fmt.Sprintf("%s: %s", e.Argv[0], msg)
}

// Client is a slurm.Client that drives Slurm's commands through a Runner.
type Client struct {
	run Runner
}

var _ slurm.Client = (*Client)(nil)

// New returns a Client that runs Slurm's commands with r.
func New(r Runner) *Client { return &Client{run: r} }

// Submit runs sbatch --parsable.
func (c *Client) Submit(ctx context.Context, req slurm.SubmitRequest) (string, error) {
	argv := SbatchArgs(req)
	cmd := Command{Argv: argv, Env: req.Env, Secrets: req.Secrets}
	if req.ScriptPath == "" {
		cmd.Stdin = req.Script
	}
	out, err := c.run.Run(ctx, cmd)
	if err != nil {
		return "", fmt.Errorf("sbatch: %w", submitError(err))
	}
	id, err := ParseSbatchParsable(out)
	if err != nil {
		return "", fmt.Errorf("sbatch: %w", err)
	}
	return id, nil
}

// SbatchArgs builds the sbatch command line for req.
func SbatchArgs(req slurm.SubmitRequest) []string {
	argv := []string{"sbatch", "--parsable"}
	if dep, kill := req.Dependency(); dep != "" {
		argv = append(argv, "--dependency="+dep)
		if kill {
			argv = append(argv, "--kill-on-invalid-dep=yes")
		}
	}
	if req.Array != "" {
		argv = append(argv, "--array="+req.Array)
	}
	if req.Comment != "" {
		argv = append(argv, "--comment="+req.Comment)
	}
	if req.WorkDir != "" {
		argv = append(argv, "--chdir="+req.WorkDir)
	}
	argv = append(argv, req.ExtraArgs...)
	if req.ScriptPath != "" {
		argv = append(argv, req.ScriptPath)
	}
	return argv
}

// Jobs asks about ids with one squeue and, for the jobs that already left
// the controller, one sacct (or one scontrol when accounting is disabled).
// For a job the controller still holds, squeue is authoritative (accounting
// is updated asynchronously and lags: right after a cancel it may still say
// PENDING); its exit code comes from squeue too.
func (c *Client) Jobs(ctx context.Context, ids []string) ([]slurm.Job, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	live, err := c.squeue(ctx, ids)
	if err != nil {
		return nil, err
	}
	found := make(map[string]slurm.Job, len(ids))
	for _, j := range live {
		if want[j.ID] {
			found[j.ID] = j
		}
	}
	var gone []string
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		done, err := c.finished(ctx, gone)
		if err != nil {
			return nil, err
		}
		for _, j := range done {
			if _, ok := found[j.ID]; want[j.ID] && !ok {
				found[j.ID] = j
			}
		}
	}
	out := make([]slurm.Job, 0, len(found))
	for _, j := range found {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return lessID(out[a].ID, out[b].ID) })
	return out, nil
}

// arrayTasks reports whether ids name array tasks (ARRAY_TASK): they are
// asked about one task a line, by ARRAY_TASK.
func arrayTasks(ids []string) bool {
	for _, id := range ids {
		if strings.Contains(id, "_") {
			return true
		}
	}
	return false
}

func (c *Client) squeue(ctx context.Context, ids []string) ([]slurm.Job, error) {
	argv := []string{"squeue", "--noheader", "--states=all", "--Format=" + SqueueFormat}
	if arrayTasks(ids) {
		argv = []string{"squeue", "--noheader", "--array", "--states=all", "--Format=" + SqueueArrayFormat}
	}
	if len(ids) > 0 {
		argv = append(argv, "--jobs="+strings.Join(ids, ","))
	}
	out, err := c.run.Run(ctx, Command{Argv: argv})
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) && strings.Contains(ee.Stderr, "Invalid job id") {
			// A single requested id that the controller already purged.
			return nil, nil
		}
		return nil, fmt.Errorf("squeue: %w", classify(err))
	}
	return ParseSqueue(out)
}

// finished asks accounting about ids, or the controller when accounting is
// disabled.
func (c *Client) finished(ctx context.Context, ids []string) ([]slurm.Job, error) {
	format := SacctFormat
	if arrayTasks(ids) {
		format = SacctArrayFormat
	}
	argv := []string{"sacct", "--noheader", "--parsable2", "--allocations", "--duplicates",
		"--format=" + format, "--jobs=" + strings.Join(ids, ",")}
	out, err := c.run.Run(ctx, Command{Argv: argv})
	if err == nil {
		return ParseSacct(out)
	}
	if !accountingDisabled(err) {
		return nil, fmt.Errorf("sacct: %w", classify(err))
	}
	out, err = c.run.Run(ctx, Command{Argv: []string{"scontrol", "--oneliner", "show", "job"}})
	if err != nil {
		return nil, fmt.Errorf("scontrol show job: %w", classify(err))
	}
	return ParseScontrolJobs(out)
}

// JobsByComment lists the controller's jobs and accounting's jobs of the last
// 30 days whose comment starts with prefix.
func (c *Client) JobsByComment(ctx context.Context, prefix string) ([]slurm.Job, error) {
	live, err := c.squeue(ctx, nil)
	if err != nil {
		return nil, err
	}
	found := map[string]slurm.Job{}
	for _, j := range live {
		if strings.HasPrefix(j.Comment, prefix) {
			found[j.ID] = j
		}
	}
	argv := []string{"sacct", "--noheader", "--parsable2", "--allocations", "--allusers",
		"--starttime=now-30days", "--format=" + SacctFormat}
	out, err := c.run.Run(ctx, Command{Argv: argv})
	switch {
	case err == nil:
		acct, err := ParseSacct(out)
		if err != nil {
			return nil, err
		}
		for _, j := range acct {
			if !strings.HasPrefix(j.Comment, prefix) {
				continue
			}
			if _, ok := found[j.ID]; !ok {
				found[j.ID] = j
			}
		}
	case accountingDisabled(err):
	default:
		return nil, fmt.Errorf("sacct: %w", classify(err))
	}
	res := make([]slurm.Job, 0, len(found))
	for _, j := range found {
		res = append(res, j)
	}
	sort.Slice(res, func(a, b int) bool { return lessID(res[a].ID, res[b].ID) })
	return res, nil
}

// Cancel runs one scancel for all ids.
func (c *Client) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	argv := append([]string{"scancel"}, ids...)
	_, err := c.run.Run(ctx, Command{Argv: argv})
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) && onlyAlreadyDone(ee.Stderr) {
			return nil
		}
		return fmt.Errorf("scancel: %w", classify(err))
	}
	return nil
}

// Version returns the Slurm version the cluster's tools report.
func (c *Client) Version(ctx context.Context) (string, error) {
	out, err := c.run.Run(ctx, Command{Argv: []string{"sinfo", "--version"}})
	if err != nil {
		return "", fmt.Errorf("sinfo --version: %w", classify(err))
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "slurm "), nil
}

// MaxArraySize returns the cluster's MaxArraySize (scontrol show config):
// an array's task ids run from 0 to MaxArraySize-1.
func (c *Client) MaxArraySize(ctx context.Context) (int, error) {
	out, err := c.run.Run(ctx, Command{Argv: []string{"scontrol", "show", "config"}})
	if err != nil {
		return 0, fmt.Errorf("scontrol show config: %w", classify(err))
	}
	return ParseMaxArraySize(out)
}

// Partitions lists the cluster's partitions.
func (c *Client) Partitions(ctx context.Context) ([]slurm.Partition, error) {
	out, err := c.run.Run(ctx, Command{Argv: []string{"scontrol", "--oneliner", "show", "partition"}})
	if err != nil {
		return nil, fmt.Errorf("scontrol show partition: %w", classify(err))
	}
	return ParsePartitions(out)
}

func onlyAlreadyDone(stderr string) bool {
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if line == "" {
			continue
		}
		if !strings.Contains(line, "already completing or completed") && !strings.Contains(line, "Invalid job id") {
			return false
		}
	}
	return true
}

func accountingDisabled(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && (strings.Contains(ee.Stderr, "accounting storage is disabled") ||
		strings.Contains(ee.Stderr, "Problem talking to the database") ||
		strings.Contains(ee.Stderr, "Connection refused") && strings.Contains(ee.Stderr, "slurmdbd"))
}

// classify marks failures to reach slurmctld with slurm.ErrUnavailable.
func classify(err error) error {
	var ee *ExitError
	if errors.As(err, &ee) {
		s := ee.Stderr
		if strings.Contains(s, "Unable to contact slurm controller") || strings.Contains(s, "Socket timed out") ||
			strings.Contains(s, "Connection refused") || strings.Contains(s, "Slurm backup controller in standby mode") {
			return fmt.Errorf("%w: %v", slurm.ErrUnavailable, err)
		}
	}
	return err
}

func lessID(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
