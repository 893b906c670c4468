package chain

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/sweep"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// TestReconcileAdoptsArrayTasks: a submitter killed after sbatch queued a
// sweep's train array but before it recorded it leaves train[K] with open
// intents; the next command finds the array in Slurm by its tag and records
// each task as ARRAY_K.
func TestReconcileAdoptsArrayTasks(t *testing.T) {
	slurmtest.RequireCluster(t)
	ctx := context.Background()
	client := local.NewClient()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "st.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runID := NewRunID("reconcile-array", time.Now())
	stages := []string{"train[0]", "train[1]", "train[2]"}
	if err := st.CreateRun(ctx, store.Run{ID: runID, Name: "r", RunDir: t.TempDir(), Transport: "local", Submitter: "gone-host:1"}, stages); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordIntents(ctx, runID, stages); err != nil {
		t.Fatal(err)
	}
	id, err := client.Submit(ctx, slurm.SubmitRequest{Script: []byte("#!/bin/sh\ntrue\n"), Comment: templates.Comment(runID, "train"), Array: "0-2",
		ExtraArgs: []string{"--hold", "--output=/dev/null", "--job-name=st-reconcile-array", "--time=1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.Cancel(context.Background(), []string{id}); err != nil {
			t.Errorf("cancel the held array job %s (left in the queue): %v", id, err)
		}
	})
	svc := &Service{Client: client, Store: st, Log: slog.New(slog.DiscardHandler)}
	svc.Now = func() time.Time { return time.Now().Add(time.Hour) } // the submitter went quiet long ago
	res, err := svc.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.GetRun(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Adopted != 3 || res.Completed != 1 {
		t.Errorf("reconcile %+v, want 3 adopted and the run complete", res)
	}
	for k, s := range r.Stages {
		if want := id + "_" + string(rune('0'+k)); s.JobID != want {
			t.Errorf("%s recorded as job %q, want %s", s.Name, s.JobID, want)
		}
	}
}

func prepareSweep(t *testing.T, sweepYAML string) (*Prepared, error) {
	t.Helper()
	const example = "../../examples/tiny/pipeline.yaml"
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(example)
	src = append(src, sweepYAML...)
	p, err := jobs.Parse("pipeline.yaml", abs, src, jobs.LoadOptions{Sets: []string{"workdir=/scratch/runs"}})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := sweep.Resolve(p, "pipeline.yaml", src, jobs.LoadOptions{Sets: []string{"workdir=/scratch/runs"}})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Templates: ts, Slurmtune: "/opt/slurmtune"}
	return svc.PrepareSweep(context.Background(), p, tasks)
}

// TestPrepareSweep: the arrays run each task's own script; every task's
// settings are in its directory; tasks that would ask Slurm for different
// resources are refused.
func TestPrepareSweep(t *testing.T) {
	prep, err := prepareSweep(t, "sweep:\n  grid:\n    train.hyperparameters.lr: [0.001, 0.01]\n  select: {metric: perplexity, goal: min}\n")
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, sc := range prep.Scripts {
		stages = append(stages, sc.Stage)
	}
	if strings.Join(stages, " ") != "prep train eval select deploy" {
		t.Errorf("stages %v", stages)
	}
	train := string(prep.files[filepath.Join(prep.Dir, "train.sbatch")])
	if !strings.Contains(train, "#SBATCH --nodes=2\n") || strings.Contains(train, "#SBATCH --output=") ||
		!strings.HasSuffix(train, "exec "+prep.Dir+"/tasks\"/$SLURM_ARRAY_TASK_ID/train.sbatch\"\n") {
		t.Errorf("train array script:\n%s", train)
	}
	hp := string(prep.files[filepath.Join(prep.Dir, "tasks", "1", "hyperparameters.json")])
	if !strings.Contains(hp, `"lr": 0.01`) {
		t.Errorf("task 1's hyperparameters:\n%s", hp)
	}
	task := string(prep.files[filepath.Join(prep.Dir, "tasks", "1", "train.sbatch")])
	for _, want := range []string{"SLURMTUNE_RUN_DIR=" + prep.Dir + "/tasks/1\n", "SLURMTUNE_DATA_DIR=" + prep.Dir + "/data\n"} {
		if !strings.Contains(task, want) {
			t.Errorf("task 1's train script lacks %s", want)
		}
	}
	if _, ok := prep.files[filepath.Join(prep.Dir, sweep.ManifestFile)]; !ok {
		t.Error("no sweep.json")
	}
	_, err = prepareSweep(t, "sweep:\n  grid:\n    train.nodes: [1, 2]\n  select: {metric: perplexity, goal: min}\n")
	if err == nil || !strings.Contains(err.Error(), "sweep task 1 (train.nodes=2) changes the train job's Slurm options (--nodes=2, where task 0 has --nodes=1)") {
		t.Errorf("tasks with different resources: %v", err)
	}
}
