// Package slurm defines what slurmtune needs from a Slurm cluster: submitting
// batch scripts, asking about many jobs at once, and cancelling them
// (Client), and asking about the cluster itself: version, partitions,
// nodes, reservations, accounts, test submits, GPU accounting (Inspector).
// The domain types and the interfaces live here; each way of reaching a
// cluster (local commands, SSH, slurmrestd) is its own implementation
// package, and slurm/connect opens the one a pipeline names.
package slurm

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"time"
)

// Client is the narrow interface every transport implements. Implementations
// must ask the cluster about any number of jobs with a constant number of
// round trips (never one call per job).
type Client interface {
	// Submit queues one batch job and returns its job id. It is never
	// retried blindly by the implementation: a submit that may or may not
	// have reached slurmctld returns an error wrapping ErrSubmitUncertain.
	Submit(ctx context.Context, req SubmitRequest) (string, error)
	// Jobs returns what the cluster knows of the given job ids. Jobs the
	// cluster no longer knows are simply absent from the result.
	Jobs(ctx context.Context, ids []string) ([]Job, error)
	// JobsByComment returns the jobs (live, and finished ones accounting
	// still has) whose comment starts with prefix. It is how a stage is
	// looked up by its tag before anything is submitted again.
	JobsByComment(ctx context.Context, prefix string) ([]Job, error)
	// Cancel cancels the given jobs. Jobs that already ended are not an error.
	Cancel(ctx context.Context, ids []string) error
}

// SubmitRequest is one batch job. Script is the full batch script, #SBATCH
// directives included; ScriptPath is where that script lives on the cluster
// (transports that work on files submit that path, the REST transport sends
// Script).
type SubmitRequest struct {
	Script     []byte
	ScriptPath string
	// WorkDir is the job's working directory on the cluster.
	WorkDir string
	// AfterOK lists job ids this job waits for (afterok), with
	// --kill-on-invalid-dep=yes so it is cancelled when one of them fails.
	AfterOK []string
	// AfterCorr lists job arrays whose task N this array's task N waits
	// for (aftercorr; cancelled like AfterOK when it fails).
	AfterCorr []string
	// AfterAny lists jobs this job waits for, however they end (afterany).
	AfterAny []string
	// Array makes the job an array: the task ids as sbatch --array takes
	// them ("0-5%2": tasks 0 to 5, at most 2 at once). The id Submit
	// returns is the array's job id.
	Array string
	// Comment is the job's comment; slurmtune tags every job with one.
	Comment string
	// Env adds environment variables for the job.
	Env map[string]string
	// Secrets adds environment variables whose values a transport must
	// neither write to a file nor put on a command line; one that cannot
	// deliver them so refuses the request.
	Secrets map[string]string
	// ExtraArgs are extra sbatch options (e.g. "--hold").
	ExtraArgs []string
}

// Dependency is req's dependencies as sbatch --dependency takes them (all
// must hold), and whether a failed one should cancel the job
// (--kill-on-invalid-dep=yes); "" when there are none.
func (req SubmitRequest) Dependency() (dep string, killOnInvalid bool) {
	var parts []string
	for _, d := range []struct {
		kind string
		ids  []string
	}{{"afterok", req.AfterOK}, {"aftercorr", req.AfterCorr}, {"afterany", req.AfterAny}} {
		if len(d.ids) > 0 {
			parts = append(parts, d.kind+":"+strings.Join(d.ids, ":"))
		}
	}
	return strings.Join(parts, ","), len(req.AfterOK) > 0 || len(req.AfterCorr) > 0
}

// Job is what slurmtune tracks of one Slurm job.
type Job struct {
	ID       string
	Name     string
	State    State
	Reason   string
	ExitCode int
	// Signal is the signal that ended the job, 0 when none.
	Signal   int
	Restarts int
	Nodes    string
	Comment  string
	Elapsed  time.Duration
	Start    time.Time
	End      time.Time
	// Source says where the answer came from: "squeue", "sacct" or "scontrol".
	Source string
}

// State is a Slurm job state name as Slurm spells it (COMPLETED, RUNNING...).
type State string

// Job states slurmtune reasons about.
const (
	StatePending     State = "PENDING"
	StateRunning     State = "RUNNING"
	StateSuspended   State = "SUSPENDED"
	StateCompleting  State = "COMPLETING"
	StateConfiguring State = "CONFIGURING"
	StateRequeued    State = "REQUEUED"
	StateResizing    State = "RESIZING"
	StateCompleted   State = "COMPLETED"
	StateFailed      State = "FAILED"
	StateCancelled   State = "CANCELLED"
	StateTimeout     State = "TIMEOUT"
	StateNodeFail    State = "NODE_FAIL"
	StatePreempted   State = "PREEMPTED"
	StateOutOfMemory State = "OUT_OF_MEMORY"
	StateBootFail    State = "BOOT_FAIL"
	StateDeadline    State = "DEADLINE"
	StateUnknown     State = "UNKNOWN"
)

// ParseState normalises a state as squeue, sacct, scontrol or slurmrestd
// print it: "CANCELLED by 0" becomes CANCELLED, "OOM" becomes OUT_OF_MEMORY,
// compact codes (CD, R, PD...) are expanded.
func ParseState(s string) State {
	s = strings.TrimSpace(strings.ToUpper(s))
	if i := strings.IndexAny(s, " +"); i >= 0 {
		s = s[:i]
	}
	switch s {
	case "PD":
		return StatePending
	case "R":
		return StateRunning
	case "S":
		return StateSuspended
	case "CG":
		return StateCompleting
	case "CF":
		return StateConfiguring
	case "RQ":
		return StateRequeued
	case "CD":
		return StateCompleted
	case "F":
		return StateFailed
	case "CA":
		return StateCancelled
	case "TO":
		return StateTimeout
	case "NF":
		return StateNodeFail
	case "PR":
		return StatePreempted
	case "OOM":
		return StateOutOfMemory
	case "BF":
		return StateBootFail
	case "DL":
		return StateDeadline
	case "":
		return StateUnknown
	}
	return State(s)
}

// Terminal reports whether a job in this state will not run again by itself.
func (s State) Terminal() bool {
	switch s {
	case StateCompleted, StateFailed, StateCancelled, StateTimeout, StateNodeFail,
		StatePreempted, StateOutOfMemory, StateBootFail, StateDeadline:
		return true
	}
	return false
}

// Succeeded reports whether the job ended well.
func (s State) Succeeded() bool { return s == StateCompleted }

// ErrSubmitUncertain marks a submit whose outcome is unknown (the connection
// broke after the request was sent). Callers look the job up by its comment
// before submitting again.
var ErrSubmitUncertain = errors.New("submit outcome unknown")

// ErrUnavailable marks a cluster that cannot be reached at all (slurmctld
// down, host unreachable). Reads may be retried; writes are not.
var ErrUnavailable = errors.New("slurm controller unavailable")

// Partition is what preflight checks need of a partition.
type Partition struct {
	Name    string
	State   string
	Default bool
	// MaxTime is 0 when unlimited.
	MaxTime    time.Duration
	TotalNodes int
}

// FileSystem is the cluster-side filesystem where run directories live (the
// login node's view of the shared filesystem). Paths are absolute paths on
// the cluster.
type FileSystem interface {
	// MkdirAll creates path and its parents; path, when created, gets
	// exactly perm.
	MkdirAll(ctx context.Context, path string, perm fs.FileMode) error
	// WriteFile writes data atomically: readers see the old file or the
	// whole new one, never a part.
	WriteFile(ctx context.Context, path string, data []byte, perm fs.FileMode) error
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// ReadAt returns up to max bytes of path from offset on (fewer at the
	// end of the file); it is how a growing log is followed.
	ReadAt(ctx context.Context, path string, offset int64, max int) ([]byte, error)
}

// pendingReasons are reasons Slurm gives a job while it waits and keeps on
// the record after it ran; they say nothing about how the job ended.
var pendingReasons = map[string]bool{
	"Dependency": true, "Priority": true, "Resources": true, "BeginTime": true, "None": true,
	"JobHeldUser": true, "JobHeldAdmin": true, "ReqNodeNotAvail": true, "Reservation": true,
}

// EffectiveReason is the reason worth showing for j: a leftover waiting
// reason on a job that has ended is dropped (DependencyNeverSatisfied, a
// reason for ending, stays).
func EffectiveReason(j Job) string {
	if j.State.Terminal() && pendingReasons[j.Reason] {
		return ""
	}
	return j.Reason
}
