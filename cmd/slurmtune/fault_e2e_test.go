package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// Fault tests stop and restart the dev cluster's daemons, so they must not
// run beside other cluster tests: scripts/test.sh runs them in a serial step
// of their own (go test -run '^TestFault' -p 1), after everything else.

func devCluster(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "scripts", "dev-cluster.sh"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dev-cluster.sh %v: %v\n%s", args, err, out)
	}
}

func waitStageState(t *testing.T, db, run, stage, state string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, st := range statusOf(t, db, run).Runs[0].Stages {
			if st.Name == stage && st.State == state {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s stage %s never reached %s", run, stage, state)
		}
		time.Sleep(time.Second)
	}
}

func sleepyRun(t *testing.T, db, tmp string, extra ...string) string {
	t.Helper()
	args := append([]string{"submit", quickPipeline(t), "--set", "workdir=" + filepath.Join(tmp, "runs"),
		"--set", "train.script=" + filepath.Join(repoRoot(t), "cmd", "slurmtune", "testdata", "sleep_train.sh")}, extra...)
	r := slurmtune(t, db, args...)
	if r.code != 0 {
		t.Fatalf("submit: exit %d: %s", r.code, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

// TestFaultSlurmctldRestart stops slurmctld while a stage runs: sync fails
// fast with one line and exit 1, status still shows the last known state,
// nothing is marked wrongly; after slurmctld is back the jobs kept running
// and the next sync recovers, and the run succeeds.
func TestFaultSlurmctldRestart(t *testing.T) {
	slurmtest.RequireCluster(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	run := sleepyRun(t, db, tmp)
	waitStageState(t, db, run, "train", "RUNNING", 2*time.Minute)

	devCluster(t, "stop", "slurmctld")
	restarted := false
	defer func() {
		if !restarted {
			devCluster(t, "up")
		}
	}()
	start := time.Now()
	r := slurmtune(t, db, "sync")
	took := time.Since(start)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	t.Logf("sync with slurmctld down: exit %d after %s: %s", r.code, took.Round(time.Millisecond), last)
	if r.code != 1 || !strings.Contains(last, "slurm controller unavailable") {
		t.Errorf("sync with slurmctld down: exit %d, last line %q", r.code, last)
	}
	if took > 90*time.Second {
		t.Errorf("sync took %s to give up; it must fail fast", took)
	}
	s := slurmtune(t, db, "status", run, "--json")
	if s.code != 0 || !strings.Contains(s.stderr, "last known state") {
		t.Errorf("status with slurmctld down: exit %d: %s", s.code, s.stderr)
	}
	for _, st := range statusOf(t, db, run).Runs[0].Stages {
		if st.Name == "train" && st.State != "RUNNING" {
			t.Errorf("train recorded as %s while the controller was down", st.State)
		}
	}

	devCluster(t, "up")
	restarted = true
	end := waitEnded(t, db, run, 3*time.Minute)
	if end.Runs[0].State != "SUCCEEDED" {
		t.Fatalf("run after the controller restart: %+v", end.Runs[0])
	}
}

// TestFaultSlurmdbdDown stops slurmdbd: runs still submit, run and finish,
// and status keeps working from squeue (and scontrol for jobs sacct cannot
// answer for).
func TestFaultSlurmdbdDown(t *testing.T) {
	slurmtest.RequireCluster(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	devCluster(t, "stop", "slurmdbd")
	defer devCluster(t, "up")
	r := slurmtune(t, db, "submit", quickPipeline(t), "--wait", "--interval", "1s", "--set", "workdir="+filepath.Join(tmp, "runs"))
	if r.code != 0 {
		t.Fatalf("submit --wait with slurmdbd down: exit %d: %s", r.code, r.stderr)
	}
	run := statusOf(t, db, strings.TrimSpace(r.stdout)).Runs[0]
	if run.State != "SUCCEEDED" {
		t.Fatalf("run with slurmdbd down: %+v", run)
	}
	for _, st := range run.Stages {
		if st.ExitCode == nil || *st.ExitCode != 0 || st.Nodes == "" {
			t.Errorf("stage %s lacks its exit code or nodes: %+v", st.Name, st)
		}
	}
}

// TestFaultNodeDies kills the slurmd of the node a training job runs on:
// Slurm marks the node down and the job NODE_FAIL; the job is requeued by
// Slurm (same id) or resubmitted per the stage's retries block (new id, the
// stages after it re-pointed), runs on the node that is left, and the run
// finishes.
func TestFaultNodeDies(t *testing.T) {
	slurmtest.RequireCluster(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	run := sleepyRun(t, db, tmp, "--set", "train.retries.max=1", "--set", "train.retries.on=[NODE_FAIL]",
		"--set", "train.script="+filepath.Join(repoRoot(t), "cmd", "slurmtune", "testdata", "node_once.sh"))
	waitStageState(t, db, run, "train", "RUNNING", 2*time.Minute)
	var node, firstJob string
	for _, st := range statusOf(t, db, run).Runs[0].Stages {
		if st.Name == "train" {
			node, firstJob = st.Nodes, st.JobID
		}
	}
	if node != "st-node1" && node != "st-node2" {
		t.Fatalf("train runs on %q, want one node", node)
	}
	// The node dies: its slurmd and everything running on it (slurmstepd,
	// the job), each process of its network namespace killed by pid.
	devCluster(t, "stop", "slurmd-"+node)
	defer devCluster(t, "up")
	out, err := exec.Command("ip", "netns", "pids", node).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", node, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kill %d in %s: %v", pid, node, err)
			}
		}
	}

	deadline := time.Now().Add(6 * time.Minute)
	sawNodeFail := false
	for {
		s := statusOf(t, db, run).Runs[0]
		for _, st := range s.Stages {
			if st.Name == "train" && st.JobID == firstJob && st.State == "NODE_FAIL" {
				sawNodeFail = true
			}
		}
		if s.State == "SUCCEEDED" || s.State == "FAILED" {
			if s.State != "SUCCEEDED" {
				t.Fatalf("run after the node died: %+v", s)
			}
			for _, st := range s.Stages {
				// Either Slurm requeued the job (JobRequeue=1, the default:
				// same id, a restart) or slurmtune's retries resubmitted it.
				if st.Name == "train" && (st.Nodes == node || st.JobID == firstJob && st.Restarts == 0) {
					t.Errorf("train was neither requeued nor resubmitted to the surviving node: %+v", st)
				}
				if st.Name == "train" {
					t.Logf("train finished as job %s (first %s), restarts %d, on %s", st.JobID, firstJob, st.Restarts, st.Nodes)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not finish after the node died: %+v", s)
		}
		time.Sleep(2 * time.Second)
	}
	// The first attempt's NODE_FAIL is in the history even if a status call
	// never caught it in flight.
	if !sawNodeFail {
		out := slurmtest.Run(t, "sacct", "-n", "-X", "-P", "--duplicates", "-o", "State", "-j", firstJob)
		if !strings.Contains(out, "NODE_FAIL") {
			t.Errorf("first train job %s: sacct --duplicates says %q, want a NODE_FAIL record", firstJob, out)
		}
	}
}
