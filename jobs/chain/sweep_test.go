package chain

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

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
	t.Cleanup(func() { client.Cancel(context.Background(), []string{id}) })
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
