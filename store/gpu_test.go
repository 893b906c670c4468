package store

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestGPUAllocAndJobs: a job's GPU allocation, the run of a job and a
// run's jobs are recorded (the telemetry part of this test is nvml's
// TestGPUStatePersistence).
func TestGPUAllocAndJobs(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.CreateRun(ctx, Run{ID: "r1", Name: "r", RunDir: "/runs/r1", Transport: "local"}, []string{"train"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSubmitted(ctx, "r1", "train", "c", "77"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGPUAlloc(ctx, GPUAlloc{RunID: "r1", Stage: "train", JobID: "77", GPUs: 8, Elapsed: 90 * time.Minute, Source: "sacct", Final: true}); err != nil {
		t.Fatal(err)
	}
	al, err := s.GPUAllocs(ctx, "r1")
	if err != nil || len(al) != 1 || al[0].GPUHours() != 12 || !al[0].Final || al[0].Source != "sacct" {
		t.Errorf("allocs = %+v, %v", al, err)
	}
	if run, stage, err := s.RunOfJob(ctx, "77"); run != "r1" || stage != "train" || err != nil {
		t.Errorf("RunOfJob = %s %s %v", run, stage, err)
	}
	if _, _, err := s.RunOfJob(ctx, "78"); !IsNotFound(err) {
		t.Errorf("RunOfJob(unknown) = %v", err)
	}
	if js, err := s.RunJobs(ctx, "r1"); err != nil || len(js) != 1 || js[0].JobID != "77" || js[0].Stage != "train" {
		t.Errorf("RunJobs = %+v %v", js, err)
	}
	if err := s.DeleteUnsubmittedRun(ctx, "r1"); err == nil {
		t.Error("a run with a job was deleted")
	}
}

func TestSbatchJobRecord(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.CreateRun(ctx, Run{ID: "j1", Name: "train.sh", RunDir: "/jobs/j1", Transport: "local"}, []string{"job"}); err != nil {
		t.Fatal(err)
	}
	want := SbatchJob{RunID: "j1", Script: "/home/u/train.sh", Args: []string{"a b", "--x"}, Options: []string{"--gres=gpu:1"},
		Output: "out-%j.log", OutputResolved: "/home/u/out-5.log"}
	if err := s.SetSbatchJob(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSbatchJob(ctx, "j1")
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Errorf("GetSbatchJob = %+v, %v", got, err)
	}
	if err := s.DeleteUnsubmittedRun(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRun(ctx, "j1"); !IsNotFound(err) {
		t.Errorf("deleted run: %v", err)
	}
	if _, err := s.GetSbatchJob(ctx, "j1"); !IsNotFound(err) {
		t.Errorf("deleted run's sbatch record: %v", err)
	}
}
