package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestE2EChainTimeLimitCapped: with train.chain_time_limit the train job
// asks for the partition's MaxTime (short: 30 min) instead of train.time,
// as Slurm reports the job's TimeLimit, over local and ssh; render writes
// the same capped --time, also when the pipeline names the REST transport
// (its partitions read back from the cluster through that connection).
// A REST submit of a chained train stage is refused before anything is
// queued: slurmrestd 22.05 (v0.0.38) rejects sbatch's batch-only
// --signal=B:SIG@T ("Invalid SIGNAL specification").
func TestE2EChainTimeLimitCapped(t *testing.T) {
	chained := []string{"--set", "cluster.partition=short", "--set", "train.time=2h", "--set", "train.chain_time_limit=true"}
	for _, transport := range []string{"local", "ssh"} {
		t.Run(transport, func(t *testing.T) {
			sets := transportSets(t, transport)
			t.Parallel()
			tmp := openTempDir(t)
			db := filepath.Join(tmp, "st.db")
			args := append([]string{"submit", quickPipeline(t), "--json", "--set", "workdir=" + filepath.Join(tmp, "runs"),
				"--set", "name=cap-" + transport}, sets...)
			r := slurmtune(t, db, append(args, chained...)...)
			if r.code != 0 {
				t.Fatalf("submit over %s: exit %d: %s", transport, r.code, r.stderr)
			}
			var sub submitJSON
			if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil || sub.Jobs["train"] == "" {
				t.Fatalf("submit --json: %v: %s", err, r.stdout)
			}
			defer slurmtune(t, db, "cancel", sub.Run)
			if got := slurmtest.JobField(t, sub.Jobs["train"], "TimeLimit"); got != "00:30:00" {
				t.Errorf("train job %s over %s: TimeLimit=%s, want 00:30:00 (short's MaxTime)", sub.Jobs["train"], transport, got)
			}
		})
	}
	for _, transport := range []string{"local", "rest"} {
		t.Run("render/"+transport, func(t *testing.T) {
			sets := transportSets(t, transport)
			dir := t.TempDir()
			args := append([]string{"render", quickPipeline(t), "-o", filepath.Join(dir, "out")}, sets...)
			r := slurmtune(t, filepath.Join(dir, "st.db"), append(args, chained...)...)
			if r.code != 0 {
				t.Fatalf("render: exit %d: %s", r.code, r.stderr)
			}
			b, err := os.ReadFile(filepath.Join(dir, "out", "train.sbatch"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "\n#SBATCH --time=00:30:00\n") {
				t.Errorf("render over %s: train.sbatch lacks --time=00:30:00:\n%s", transport, b)
			}
		})
	}
}
