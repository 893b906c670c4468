package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDeployEventsAndSamples(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "st.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.UnixMilli(1_800_000_000_000)
	evs := []DeployEvent{
		{ID: "b", Name: "tiny", At: t0.Add(time.Second), Action: "promote", Reason: "smoke passed", FromRun: "r1", ToRun: "r2", ToModel: "m@2"},
		{ID: "a", Name: "tiny", At: t0, Action: "deploy", ToRun: "r1"},
		{ID: "c", Name: "other", At: t0, Action: "deploy"},
	}
	n, err := s.ImportDeployEvents(ctx, evs)
	if err != nil || n != 3 {
		t.Fatalf("import: %d, %v", n, err)
	}
	// Importing the same history again adds nothing.
	if n, err := s.ImportDeployEvents(ctx, evs); err != nil || n != 0 {
		t.Fatalf("re-import: %d, %v", n, err)
	}
	got, err := s.DeployEvents(ctx, "tiny")
	if err != nil || len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" || got[1].Reason != "smoke passed" || got[1].ToModel != "m@2" || !got[1].At.Equal(t0.Add(time.Second)) {
		t.Fatalf("events: %+v, %v", got, err)
	}
	samples := []DeploySample{
		{Name: "tiny", Backend: "r2", RunID: "r2", At: t0.Add(2 * time.Second), Requests: 20, Errors: 1, P95: 30 * time.Millisecond, Healthy: true},
		{Name: "tiny", Backend: "r2", RunID: "r2", At: t0, Requests: 10, P95: 20 * time.Millisecond, Healthy: true},
		{Name: "tiny", Backend: "r1", RunID: "r1", At: t0, Requests: 5},
	}
	if err := s.AddDeploySamples(ctx, samples); err != nil {
		t.Fatal(err)
	}
	xs, err := s.DeploySamples(ctx, "tiny", "r2")
	if err != nil || len(xs) != 2 || xs[0].Requests != 10 || xs[1].Errors != 1 || xs[1].P95 != 30*time.Millisecond || !xs[1].Healthy {
		t.Fatalf("samples: %+v, %v", xs, err)
	}
	if err := s.CreateRun(ctx, Run{ID: "tiny-1", Name: "tiny", RunDir: "/r/1", Transport: "local"}, []string{"deploy"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(ctx, Run{ID: "x-1", Name: "x", RunDir: "/r/x", Transport: "local"}, []string{"deploy"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(ctx, Run{ID: "nodeploy-1", Name: "nodeploy", RunDir: "/r/n", Transport: "local"}, []string{"prep", "train"}); err != nil {
		t.Fatal(err)
	}
	runs, err := s.RunsByName(ctx, "tiny", 0)
	if err != nil || len(runs) != 1 || runs[0].ID != "tiny-1" {
		t.Fatalf("RunsByName: %+v, %v", runs, err)
	}
	names, err := s.DeployingNames(ctx)
	if err != nil || strings.Join(names, ",") != "tiny,x" {
		t.Fatalf("DeployingNames: %v, %v", names, err)
	}
}
