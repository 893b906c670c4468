package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
	"github.com/slurmtune/slurmtune/templates"
)

// TestE2ESbatchAdoptsLostAnswer: sbatch queues the job and dies before it
// answers (a PATH shim runs the real sbatch, then SIGKILLs itself). The
// wrapper does not know the job id, so it looks the job up by its tag, as
// pipeline submits do: it prints the job's id, exits 0, tracks it, and the
// job is in Slurm exactly once.
func TestE2ESbatchAdoptsLostAnswer(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	db := filepath.Join(t.TempDir(), "st.db")
	cmd := sbatchThroughShim(t, "kill -KILL $$", "--time=5", "--wrap", "sleep 1")
	cmd.Env = append(cmd.Env, "SLURMTUNE_DB="+db)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("sbatch whose answer was lost: %v\nstdout: %s\nstderr: %s", err, so.String(), se.String())
	}
	id := strings.TrimSpace(so.String())
	if !regexp.MustCompile(`^[0-9]+$`).MatchString(id) {
		t.Fatalf("printed %q, want the adopted job's id\nstderr: %s", so.String(), se.String())
	}
	var s statusOut
	if r := slurmtune(t, db, "status", "--no-sync", "--json"); json.Unmarshal([]byte(r.stdout), &s) != nil || len(s.Runs) != 1 {
		t.Fatalf("status: want one run, got exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	run := s.Runs[0].ID
	tagged := slurmJobsTagged(t, run+":")
	t.Cleanup(func() {
		for _, ids := range slurmJobsTagged(t, run+":") {
			_ = exec.Command("scancel", ids...).Run()
		}
	})
	if ids := tagged["slurmtune:"+run+":job"]; len(ids) != 1 || ids[0] != id {
		t.Errorf("jobs tagged for run %s: %v, want exactly %s", run, tagged, id)
	}
	if st := s.Runs[0].Stages[0]; st.Name != "job" || st.JobID != id {
		t.Errorf("tracked stage %+v, want job %s", st, id)
	}
}

// TestE2ESbatchInterruptedAdopted: slurmtune sbatch is interrupted (SIGINT)
// while sbatch runs, after the job reached Slurm (a PATH shim runs the real
// sbatch, then hangs). The job is not orphaned: its run and run directory
// stay, and the run tracks the job (at once, or after the next sync).
func TestE2ESbatchInterruptedAdopted(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	db := filepath.Join(t.TempDir(), "st.db")
	name := fmt.Sprintf("intr%d", time.Now().UnixNano()%1e9)
	cmd := sbatchThroughShim(t, "exec sleep 60", "--time=5", "-J", name, "--wrap", "sleep 1")
	cmd.Env = append(cmd.Env, "SLURMTUNE_DB="+db)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the job never reached Slurm")
		}
		id = strings.TrimSpace(slurmtest.Run(t, "squeue", "-h", "--states=all", "-n", name, "-O", "JobID:0"))
	}
	t.Cleanup(func() { _ = exec.Command("scancel", id).Run() })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	t.Logf("interrupted slurmtune sbatch: %v\nstdout: %s\nstderr: %s", err, so.String(), se.String())
	var s statusOut
	if r := slurmtune(t, db, "status", "--json"); json.Unmarshal([]byte(r.stdout), &s) != nil || len(s.Runs) != 1 {
		t.Fatalf("status: want the job's run, got exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if s.Runs[0].Stages[0].JobID != id {
		if sy := slurmtune(t, db, "sync"); sy.code != 0 {
			t.Errorf("sync: exit %d: %s", sy.code, sy.stderr)
		}
		s = statusOf(t, db, s.Runs[0].ID)
	}
	if st := s.Runs[0].Stages[0]; st.JobID != id {
		t.Errorf("stage %+v does not track job %s, which reached Slurm", st, id)
	}
	if _, err := os.Stat(filepath.Join(s.Runs[0].RunDir, "job.sbatch")); err != nil {
		t.Errorf("the queued job's run directory is gone: %v", err)
	}
}

// sbatchThroughShim is `slurmtune sbatch ARGS` with an sbatch on its PATH
// that runs the real one and then does what after says instead of
// answering (the job is in Slurm; its id never reaches slurmtune).
func sbatchThroughShim(t *testing.T, after string, args ...string) *exec.Cmd {
	t.Helper()
	real, err := exec.LookPath("sbatch")
	if err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(t.TempDir(), "shim")
	if err := os.Mkdir(shim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shim, "sbatch"), []byte("#!/bin/sh\n"+templates.Quote(real)+
		" \"$@\" >/dev/null || exit\n"+after+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, append([]string{"sbatch"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+shim+":"+os.Getenv("PATH"), "SLURMTUNE_GPU_EXPORTER=0")
	return cmd
}
