package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// slurmShim is a directory of sbatch, squeue, sacct, scontrol, scancel,
// sinfo and sacctmgr stand-ins that log their name to a file and run the
// real command: put it first on PATH to count the Slurm commands slurmtune
// runs.
type slurmShim struct{ dir, log string }

func newSlurmShim(tb testing.TB) *slurmShim {
	tb.Helper()
	s := &slurmShim{dir: tb.TempDir()}
	s.log = filepath.Join(s.dir, "calls.log")
	for _, name := range []string{"sbatch", "squeue", "sacct", "scontrol", "scancel", "sinfo", "sacctmgr"} {
		real, err := exec.LookPath(name)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		body := fmt.Sprintf("#!/bin/sh\necho %s >>%s\nexec %s \"$@\"\n", name, s.log, real)
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// calls returns how many times each command ran since the last call.
func (s *slurmShim) calls(tb testing.TB) map[string]int {
	tb.Helper()
	b, err := os.ReadFile(s.log)
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	os.Remove(s.log)
	out := map[string]int{}
	for _, l := range strings.Fields(string(b)) {
		out[l]++
	}
	return out
}

func (s *slurmShim) run(tb testing.TB, db string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "SLURMTUNE_DB="+db, "PATH="+s.dir+":"+os.Getenv("PATH"))
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		tb.Fatalf("slurmtune %v: %v\n%s", args, err, se.String())
	}
	return so.String()
}

// BenchmarkSweepSubmit submits an N-point sweep of the tiny pipeline (its
// prep held, so nothing runs, and cancelled after) through a PATH shim that
// counts the Slurm commands: sbatch/op is the submission's sbatch calls
// (five whatever N), refresh-calls/op the Slurm commands of one `status`
// refresh of the run's 2N+3 jobs (the same for N = 10 and N = 100).
func BenchmarkSweepSubmit(b *testing.B) {
	slurmtest.RequireCluster(b)
	shim := newSlurmShim(b)
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("points=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			file := sweepPipeline(b, dir, fmt.Sprintf("sweep:\n  grid:\n    train.hyperparameters.seed: {from: 1, to: %d, step: 1}\n"+
				"  max_parallel: 2\n  select: {metric: perplexity, goal: min}\n", n))
			var sbatch, refresh int
			for i := 0; i < b.N; i++ {
				db := filepath.Join(dir, fmt.Sprintf("st-%d.db", i))
				shim.calls(b)
				out := shim.run(b, db, "submit", file, "--json", "--set", "workdir="+filepath.Join(dir, "runs"), "--set", "prep.sbatch_args=[--begin=now+1hour]")
				c := shim.calls(b)
				sbatch += c["sbatch"]
				var sub submitJSON
				if err := json.Unmarshal([]byte(out), &sub); err != nil {
					b.Fatalf("submit --json: %v\n%s", err, out)
				}
				b.StopTimer()
				shim.run(b, db, "status", sub.Run, "--json")
				c = shim.calls(b)
				for _, k := range []string{"squeue", "sacct", "scontrol", "sinfo", "sacctmgr", "sbatch", "scancel"} {
					refresh += c[k]
				}
				if i == 0 {
					b.Logf("%d points: submit ran sbatch %d times; one status refresh ran %v", n, sbatch, c)
				}
				shim.run(b, db, "cancel", sub.Run)
				b.StartTimer()
			}
			b.ReportMetric(float64(sbatch)/float64(b.N), "sbatch/op")
			b.ReportMetric(float64(refresh)/float64(b.N), "refresh-calls/op")
		})
	}
}
