package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestE2ERetryOnTimeout: a train stage that hits its time limit is
// resubmitted by sync per its retries block (a new job id), the eval and
// deploy stages wait on the new job, and the run succeeds with both
// attempts in its history.
func TestE2ERetryOnTimeout(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	r := slurmtune(t, db, "submit", quickPipeline(t), "--json", "--set", "workdir="+filepath.Join(tmp, "runs"),
		"--set", "train.script="+filepath.Join(repoRoot(t), "cmd", "slurmtune", "testdata", "timeout_once.sh"),
		"--set", "train.time=1", "--set", "train.retries.max=1", "--set", "train.retries.on=[TIMEOUT]")
	if r.code != 0 {
		t.Fatalf("submit: exit %d: %s", r.code, r.stderr)
	}
	var sub submitJSON
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil {
		t.Fatalf("submit --json: %v: %s", err, r.stdout)
	}
	s := waitEnded(t, db, sub.Run, 5*time.Minute)
	run := s.Runs[0]
	if run.State != "SUCCEEDED" {
		t.Fatalf("run after a retried TIMEOUT: %+v", run)
	}
	for _, st := range run.Stages {
		switch st.Name {
		case "train", "eval", "deploy":
			if st.JobID == sub.Jobs[st.Name] {
				t.Errorf("%s still has its first job %s; want a resubmitted one", st.Name, st.JobID)
			}
		}
	}
	log := slurmtune(t, db, "logs", sub.Run, "train").stdout
	if !strings.Contains(log, "first attempt") || !strings.Contains(log, "second attempt") {
		t.Errorf("train log lacks both attempts:\n%s", log)
	}
}
