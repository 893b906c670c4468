package conformance_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// The transport benchmarks (scripts/bench/transports.sh runs them):
//
//   - BenchmarkRefresh/TRANSPORT: one status refresh of 1,000 tracked jobs
//     (20 real held jobs, jobs that finished long ago, ids that never
//     existed), as `slurmtune status` and `sync` do it; ns/op is its wall
//     time, roundtrips/op the Slurm commands (SSH session execs) or HTTP
//     requests it took. BenchmarkRefresh/TRANSPORT-live asks only about the
//     20 live jobs (a run in flight).
//   - BenchmarkSubmitChain/TRANSPORT: submitting a 4-stage run, four
//     sbatch each after the previous (afterok; the first held, so nothing
//     runs), against sbatch run directly (sbatch-direct). The scripts are
//     written beforehand; each chain is cancelled outside the timer.

func BenchmarkRefresh(b *testing.B) {
	held := heldJobs(b, 20, "slurmtune-conformance:bench-refresh")
	all := trackedIDs(b, held, 1000)
	for i, mk := range transports() {
		for _, set := range []struct {
			suffix string
			ids    []string
		}{{"", all}, {"-live", held}} {
			b.Run(transportNames[i]+set.suffix, func(b *testing.B) {
				tr := mk(b)
				ctx := context.Background()
				if _, err := tr.client.Jobs(ctx, set.ids); err != nil { // warm up
					b.Fatal(err)
				}
				tr.trips()
				b.ResetTimer()
				for range b.N {
					js, err := tr.client.Jobs(ctx, set.ids)
					if err != nil {
						b.Fatal(err)
					}
					if len(js) < len(held) {
						b.Fatalf("%d jobs answered, want at least the %d held ones", len(js), len(held))
					}
				}
				b.StopTimer()
				n, what := tr.trips()
				b.ReportMetric(float64(n)/float64(b.N), "roundtrips/op")
				b.ReportMetric(float64(len(set.ids)), "jobs")
				b.Logf("%s: %d tracked jobs, %d refreshes, round trips %s", tr.name, len(set.ids), b.N, what)
			})
		}
	}
}

func BenchmarkSubmitChain(b *testing.B) {
	dir, err := os.MkdirTemp("", "slurmtune-bench-submit-")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	stages := []string{"prep", "train", "eval", "deploy"}
	script := func(stage string) (string, []byte) {
		return filepath.Join(dir, stage+".sbatch"),
			[]byte("#!/bin/bash\n#SBATCH --job-name=st-bench-" + stage + "\n#SBATCH --time=1\n#SBATCH --mem=10M\ntrue\n")
	}
	for _, st := range stages {
		p, body := script(st)
		if err := os.WriteFile(p, body, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	log := "--output=" + filepath.Join(dir, "%j.log")

	// The baseline: sbatch on this host, as a user would type it.
	b.Run("sbatch-direct", func(b *testing.B) {
		slurmtest.RequireCluster(b)
		ctx := context.Background()
		var ids []string
		defer func() { cancelAll(b, ids) }()
		for i := range b.N {
			var prev string
			for _, st := range stages {
				p, _ := script(st)
				args := []string{"--comment=slurmtune-bench:" + st + ":" + fmt.Sprint(i), "--chdir=" + dir, log}
				if prev == "" {
					args = append(args, "--hold")
				} else {
					args = append(args, "--dependency=afterok:"+prev, "--kill-on-invalid-dep=yes")
				}
				id, err := sbatchRaw(ctx, append(args, p)...)
				if err != nil {
					b.Fatalf("sbatch: %v", err)
				}
				ids = append(ids, id)
				prev = id
			}
		}
	})
	for i, mk := range transports() {
		b.Run(transportNames[i], func(b *testing.B) {
			tr := mk(b)
			ctx := context.Background()
			var ids []string
			defer func() { cancelAll(b, ids) }()
			tr.trips()
			for n := range b.N {
				var prev []string
				for _, st := range stages {
					p, body := script(st)
					req := slurm.SubmitRequest{Script: body, ScriptPath: p, WorkDir: dir, AfterOK: prev,
						Comment: "slurmtune-bench:" + st + ":" + fmt.Sprint(n), ExtraArgs: []string{log}}
					if prev == nil {
						req.ExtraArgs = append(req.ExtraArgs, "--hold")
					}
					id, err := tr.client.Submit(ctx, req)
					if err != nil {
						b.Fatalf("submit %s: %v", st, err)
					}
					ids = append(ids, id)
					prev = []string{id}
				}
			}
			b.StopTimer()
			n, _ := tr.trips()
			b.ReportMetric(float64(n)/float64(b.N), "roundtrips/op")
		})
	}
}

func cancelAll(tb testing.TB, ids []string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := local.NewClient().Cancel(ctx, ids); err != nil {
		tb.Errorf("cancel %d benchmark jobs: %v", len(ids), err)
	}
}
