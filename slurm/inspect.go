package slurm

import (
	"context"
	"errors"
	"time"
)

// Inspector answers questions about the cluster itself rather than about
// jobs: what cluster check, validate --cluster (preflight), the chained
// train time limit and GPU accounting ask. Every transport implements it;
// a question a transport cannot answer returns an error wrapping
// ErrNotAvailable.
type Inspector interface {
	// Version is the Slurm version the cluster reports ("22.05.8").
	Version(ctx context.Context) (string, error)
	// APIVersion is the slurmrestd API version in use ("v0.0.38"), "" for
	// transports that do not speak to slurmrestd.
	APIVersion(ctx context.Context) (string, error)
	// Partitions lists the cluster's partitions.
	Partitions(ctx context.Context) ([]Partition, error)
	// Nodes lists the nodes of partition ("" for every node), each once.
	Nodes(ctx context.Context, partition string) ([]Node, error)
	// Reservations lists the names of the cluster's reservations.
	Reservations(ctx context.Context) ([]string, error)
	// HasAccount and HasQOS look an account or a QOS up in accounting.
	HasAccount(ctx context.Context, name string) (bool, error)
	HasQOS(ctx context.Context, name string) (bool, error)
	// TestSubmit asks Slurm whether it would take req as it is (sbatch
	// --test-only: nothing is queued). A request Slurm refuses returns a
	// *RefusedError; any other error means Slurm could not be asked.
	TestSubmit(ctx context.Context, req SubmitRequest) error
	// GPUAllocations asks accounting for the GPUs each job was allocated
	// and how long it ran, summed over its requeues. Jobs accounting does
	// not know are absent.
	GPUAllocations(ctx context.Context, ids []string) (map[string]GPUAllocation, error)
	// Token mints a JWT for slurmrestd valid for lifespan, authenticated
	// by munge where the commands run (never by an old token). It returns
	// scontrol token's output (SLURM_JWT=...).
	Token(ctx context.Context, lifespan time.Duration) (string, error)
	// MaxArraySize is the cluster's MaxArraySize: a job array's task ids
	// run from 0 to MaxArraySize-1.
	MaxArraySize(ctx context.Context) (int, error)
}

// Node is what preflight needs of one node.
type Node struct {
	Name  string
	CPUs  int
	MemMB int64
	// GPUs is the node's GPU count; GPUTypes the typed GPUs' types
	// (gpu:a100:4 -> a100).
	GPUs     int
	GPUTypes []string
	// Features are the node's available features.
	Features []string
	State    string
}

// GPUAllocation is what accounting says of one job's GPUs: the most it was
// allocated (AllocTRES gres/gpu), its elapsed time over every run of it,
// and whether it has ended (then the answer is final).
type GPUAllocation struct {
	GPUs    int
	Elapsed time.Duration
	Ended   bool
}

// RefusedError is a request Slurm refused; Reason is its complaint on one
// line.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "slurm refuses the job: " + e.Reason }

// ErrNotAvailable marks a question the transport cannot ask (no Slurm
// commands where a REST connection runs them, for instance).
var ErrNotAvailable = errors.New("not available over this transport")
