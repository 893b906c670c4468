package chain

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
	"github.com/slurmtune/slurmtune/store"
)

// countingRunner counts the Slurm commands a refresh runs.
type countingRunner struct {
	mu    sync.Mutex
	inner cmdline.Runner
	argv0 []string
}

func (c *countingRunner) Run(ctx context.Context, cmd cmdline.Command) ([]byte, error) {
	c.mu.Lock()
	c.argv0 = append(c.argv0, cmd.Argv[0])
	c.mu.Unlock()
	return c.inner.Run(ctx, cmd)
}

// TestSyncCommandCountIsConstant tracks 500 jobs on the real cluster (20 real
// held jobs, the rest ids that finished long ago or never existed) and
// checks that one refresh runs one squeue and, for the jobs that left the
// queue, one sacct: never a command per job.
func TestSyncCommandCountIsConstant(t *testing.T) {
	slurmtest.RequireCluster(t)
	ctx := context.Background()
	real := local.NewClient()
	var held []string
	t.Cleanup(func() { _ = real.Cancel(context.Background(), held) })
	for i := 0; i < 20; i++ {
		id, err := real.Submit(ctx, slurm.SubmitRequest{
			Script:    []byte("#!/bin/sh\ntrue\n"),
			Comment:   "slurmtune-test:sync-count",
			ExtraArgs: []string{"--hold", "--output=/dev/null", "--job-name=st-sync-count", "--time=1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, id)
	}
	for _, n := range []int{5, 500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			st, err := store.Open(ctx, filepath.Join(t.TempDir(), "st.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			stages := []string{"prep", "train", "eval", "deploy", "s4", "s5", "s6", "s7", "s8", "s9"}
			var want []string
			for i := 0; len(want) < n; i++ {
				runID := fmt.Sprintf("count-%03d", i)
				if err := st.CreateRun(ctx, store.Run{ID: runID, Name: "count", RunDir: "/nonexistent", Transport: "local"}, stages); err != nil {
					t.Fatal(err)
				}
				for _, stage := range stages {
					if len(want) == n {
						break
					}
					id := fmt.Sprint(900000000 + len(want))
					if len(want) < len(held) {
						id = held[len(want)]
					}
					if err := st.RecordSubmitted(ctx, runID, stage, "", id); err != nil {
						t.Fatal(err)
					}
					want = append(want, id)
				}
			}
			cr := &countingRunner{inner: local.Runner{}}
			svc := &Service{Client: cmdline.New(cr), Store: st, Log: slog.New(slog.DiscardHandler)}
			start := time.Now()
			live, err := st.LiveJobs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res, err := svc.SyncJobs(ctx, live)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d tracked jobs: %d Slurm commands %v in %s; changed %d, missing %d", n, len(cr.argv0), cr.argv0, time.Since(start), res.Changed, res.Missing)
			if res.Tracked != n {
				t.Errorf("tracked %d, want %d", res.Tracked, n)
			}
			// One squeue for the live jobs, and one sacct only when some left
			// the queue (n=500: the never-existing and long-finished ids).
			cmds := []string{"squeue"}
			if n > len(held) {
				cmds = append(cmds, "sacct")
			}
			if fmt.Sprint(cr.argv0) != fmt.Sprint(cmds) {
				t.Errorf("a refresh ran %v, want %v", cr.argv0, cmds)
			}
			// The real held jobs were seen as PENDING with reason JobHeldUser.
			r, err := st.GetRun(ctx, "count-000")
			if err != nil {
				t.Fatal(err)
			}
			if s := r.Stages[0]; s.State != "PENDING" || s.Reason != "JobHeldUser" {
				t.Errorf("held job %s recorded as %s (%s)", s.JobID, s.State, s.Reason)
			}
		})
	}
}
