package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
	"github.com/slurmtune/slurmtune/store"
)

// gpuOut is `slurmtune gpu --json`.
type gpuOut struct {
	Run            string   `json:"run"`
	Telemetry      bool     `json:"telemetry"`
	Message        string   `json:"message"`
	Underutilized  []string `json:"underutilized"`
	GPUHours       *float64 `json:"gpu_hours"`
	GPUHoursSource string   `json:"gpu_hours_source"`
	Stages         []struct {
		Stage          string      `json:"stage"`
		JobID          string      `json:"job_id"`
		State          string      `json:"state"`
		GPUs           int         `json:"gpus"`
		GPUHours       *float64    `json:"gpu_hours"`
		GPUHoursSource string      `json:"gpu_hours_source"`
		Report         nvml.Report `json:"report"`
	} `json:"stages"`
}

func gpuJSONOf(t *testing.T, stdout string) gpuOut {
	t.Helper()
	var g gpuOut
	if err := json.Unmarshal([]byte(stdout), &g); err != nil {
		t.Fatalf("gpu --json is not JSON: %v\n%s", err, stdout)
	}
	return g
}

// inProcess runs the CLI in this process (no cluster needed with --no-sync).
func inProcess(t *testing.T, args ...string) result {
	t.Helper()
	var so, se bytes.Buffer
	code := run(context.Background(), append([]string{"slurmtune"}, args...), &so, &se)
	return result{so.String(), se.String(), code}
}

// writeSamples appends sample lines to path.
func writeSamples(t *testing.T, path string, samples []nvml.Sample, tail string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range samples {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteString(tail); err != nil {
		t.Fatal(err)
	}
}

func utilSamples(host, job string, gpus, n int, start time.Time, util float64) []nvml.Sample {
	var out []nvml.Sample
	for i := range n {
		for g := range gpus {
			u, mem, tot, e := util, uint64(30<<30), uint64(80<<30), 1000+float64(i)*3000
			out = append(out, nvml.Sample{Time: start.Add(time.Duration(i) * 10 * time.Second), Host: host, GPU: g,
				UUID: fmt.Sprintf("GPU-%s-%d", host, g), Model: "NVIDIA H100", UtilPct: &u, MemUsedBytes: &mem, MemTotalBytes: &tot,
				EnergyJ: &e, Throttle: []string{}, Job: job})
		}
	}
	return out
}

// fakeRun records a two-stage run whose train job ran for 10 minutes from
// start, with its run directory under tmp.
func fakeRun(t *testing.T, db, tmp, id, trainJob string, start time.Time) string {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := filepath.Join(tmp, id)
	if err := os.MkdirAll(filepath.Join(dir, "gpu"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRun(ctx, store.Run{ID: id, Name: id, RunDir: dir, Transport: "local"}, []string{"prep", "train"}); err != nil {
		t.Fatal(err)
	}
	prepJob := trainJob + "0"
	for _, j := range []struct {
		stage, id  string
		start, end time.Time
	}{{"prep", prepJob, start.Add(-time.Minute), start}, {"train", trainJob, start, start.Add(10 * time.Minute)}} {
		if err := st.RecordSubmitted(ctx, id, j.stage, "", j.id); err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpdateJob(ctx, store.TrackedJob{RunID: id, Stage: j.stage, JobID: j.id}, slurm.Job{ID: j.id,
			State: slurm.StateCompleted, Start: j.start, End: j.end, Elapsed: j.end.Sub(j.start), Nodes: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.FinishSubmission(ctx, id, store.SubmissionComplete, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGPUFromSamplesFiles: synthetic samples files of a run are read into
// the database incrementally and idempotently; a train stage whose GPUs
// averaged 5% for 10 minutes is flagged, a busy one is not; a host without
// NVML is named; status shows the GPU column.
func TestGPUFromSamplesFiles(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	low := fakeRun(t, db, tmp, "low-20261126-000000-aaaa", "101", start)
	busy := fakeRun(t, db, tmp, "busy-20261126-000000-bbbb", "201", start)

	lowSamples := utilSamples("n1", "101", 2, 61, start.Add(2*time.Second), 5)
	partial, _ := json.Marshal(utilSamples("n1", "101", 1, 1, start.Add(611*time.Second), 5)[0])
	writeSamples(t, filepath.Join(low, "gpu", "samples-n1.jsonl"), lowSamples, string(partial[:40]))
	writeSamples(t, filepath.Join(low, "gpu", "samples-n2.jsonl"),
		[]nvml.Sample{{Time: start.Add(time.Second), Host: "n2", NVML: nvml.NVMLUnavailable, Error: "ERROR_LIBRARY_NOT_FOUND"}}, "")
	writeSamples(t, filepath.Join(busy, "gpu", "samples-n1.jsonl"), utilSamples("n1", "201", 4, 61, start.Add(2*time.Second), 93), "")

	r := inProcess(t, "--db", db, "gpu", "--no-sync", "--json", "low-2026")
	if r.code != 0 {
		t.Fatalf("gpu: exit %d: %s", r.code, r.stderr)
	}
	g := gpuJSONOf(t, r.stdout)
	if !g.Telemetry || len(g.Stages) != 1 || g.Stages[0].Stage != "train" || g.Stages[0].JobID != "101" {
		t.Fatalf("gpu --json: %s", r.stdout)
	}
	rep := g.Stages[0].Report
	if !rep.Underutilized || !reflect.DeepEqual(g.Underutilized, []string{"train"}) || len(rep.GPUs) != 2 || rep.GPUs[0].Samples != 61 ||
		rep.MeanUtilPct == nil || *rep.MeanUtilPct != 5 || rep.GPUs[0].EnergyJ == nil || *rep.GPUs[0].EnergyJ != 180000 {
		t.Errorf("low-utilization report: %+v", rep)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "NVML was not available on n2") {
		t.Errorf("notes: %v", rep.Notes)
	}
	// Reading again adds nothing; completing the partial line and appending
	// adds exactly the new lines.
	if g := gpuJSONOf(t, inProcess(t, "--db", db, "gpu", "--no-sync", "--json", "101").stdout); len(g.Stages) != 1 || g.Stages[0].Report.GPUs[0].Samples != 61 {
		t.Errorf("second read (by job id): %+v", g.Stages)
	}
	writeSamples(t, filepath.Join(low, "gpu", "samples-n1.jsonl"), nil, string(partial[40:])+"\n")
	writeSamples(t, filepath.Join(low, "gpu", "samples-n1.jsonl"), utilSamples("n1", "101", 2, 3, start.Add(620*time.Second), 5), "")
	g = gpuJSONOf(t, inProcess(t, "--db", db, "gpu", "--no-sync", "--json", "low-2026").stdout)
	if n := g.Stages[0].Report.GPUs[0].Samples; n != 65 {
		t.Errorf("after appending 1+3 samples per GPU... GPU 0 has %d samples, want 65", n)
	}
	text := inProcess(t, "--db", db, "gpu", "--no-sync", "low-2026")
	if text.code != 0 || !strings.Contains(text.stdout, "UNDERUTILIZED") || !strings.Contains(text.stdout, "NVIDIA H100") {
		t.Errorf("gpu text (exit %d):\n%s%s", text.code, text.stdout, text.stderr)
	}

	b := gpuJSONOf(t, inProcess(t, "--db", db, "gpu", "--no-sync", "--json", "busy-2026").stdout)
	if len(b.Stages) != 1 || b.Stages[0].Report.Underutilized || len(b.Underutilized) != 0 || len(b.Stages[0].Report.GPUs) != 4 {
		t.Errorf("busy run flagged or wrong: %+v", b)
	}

	st := inProcess(t, "--db", db, "status", "--no-sync")
	if st.code != 0 || !strings.Contains(st.stdout, "GPU UTIL") || !strings.Contains(st.stdout, "GPU-H") ||
		!strings.Contains(st.stdout, "5.0% LOW") || !strings.Contains(st.stdout, "93.0%") {
		t.Errorf("status:\n%s%s", st.stdout, st.stderr)
	}
	var sj struct {
		Runs []struct {
			ID     string `json:"id"`
			Stages []struct {
				Name         string   `json:"name"`
				GPUUtilPct   *float64 `json:"gpu_util_pct"`
				GPUTelemetry string   `json:"gpu_telemetry"`
				Underutil    bool     `json:"gpu_underutilized"`
			} `json:"stages"`
		} `json:"runs"`
	}
	js := inProcess(t, "--db", db, "status", "--no-sync", "--json")
	if err := json.Unmarshal([]byte(js.stdout), &sj); err != nil || len(sj.Runs) != 2 {
		t.Fatalf("status --json: %v\n%s", err, js.stdout)
	}
	for _, run := range sj.Runs {
		tr := run.Stages[1]
		if tr.Name != "train" || tr.GPUTelemetry != "ok" || tr.GPUUtilPct == nil || tr.Underutil != strings.HasPrefix(run.ID, "low") {
			t.Errorf("status --json %s train: %+v", run.ID, tr)
		}
		if run.Stages[0].GPUTelemetry != "" || run.Stages[0].GPUUtilPct != nil {
			t.Errorf("status --json %s prep has GPU telemetry: %+v", run.ID, run.Stages[0])
		}
	}
}

// TestGPUNoTelemetryAtAll: a run with no samples says so plainly, exit 0.
func TestGPUNoTelemetryAtAll(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	fakeRun(t, db, tmp, "none-20261126-000000-cccc", "301", time.Now().Add(-time.Hour))
	r := inProcess(t, "--db", db, "gpu", "--no-sync", "none-2026")
	if r.code != 0 || !strings.Contains(r.stdout, "no GPU telemetry: no samples were recorded") {
		t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := inProcess(t, "--db", db, "gpu", "--no-sync", "999999"); r.code != 1 || !strings.Contains(r.stderr, "no tracked job 999999") {
		t.Errorf("unknown job: exit %d: %s", r.code, r.stderr)
	}
}

// TestE2ESbatchGPUUnavailable: a script job with --gres=gpu:1 submitted with
// `slurmtune sbatch` runs with the exporter attached; without NVML the
// exporter writes its "unavailable" line, the job is unaffected (COMPLETED,
// exit 0, its arguments intact), `slurmtune gpu JOBID` says plainly there was
// no GPU telemetry (exit 0), and status shows the GPU columns and GPU-hours.
func TestE2ESbatchGPUUnavailable(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	script := filepath.Join(tmp, "my job.sh")
	if err := os.WriteFile(script, []byte("#!/bin/bash\n#SBATCH --time=5\n#SBATCH --gres=gpu:1\n"+
		"printf 'arg:%s\\n' \"$@\"\necho \"gpus=$CUDA_VISIBLE_DEVICES\"\nsleep 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := slurmtune(t, db, "sbatch", "--cpus-per-task=1", script, "one two", "$(touch pwned)")
	if r.code != 0 {
		t.Fatalf("sbatch: exit %d: %s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	if !isJobID(id) {
		t.Fatalf("sbatch printed %q, want a job id", r.stdout)
	}
	g := gpuJSONOf(t, slurmtune(t, db, "gpu", "--no-sync", "--json", id).stdout)
	s := waitEnded(t, db, g.Run, 3*time.Minute)
	run := s.Runs[0]
	if run.Name != "my job.sh" || len(run.Stages) != 1 || run.Stages[0].Name != "job" || run.Stages[0].JobID != id {
		t.Fatalf("tracked run: %+v", run)
	}
	if st := run.Stages[0]; st.State != "COMPLETED" || st.ExitCode == nil || *st.ExitCode != 0 || run.State != "SUCCEEDED" {
		t.Fatalf("job: %+v (run %s), want COMPLETED with exit 0", st, run.State)
	}
	logs := slurmtune(t, db, "logs", g.Run, "job")
	if logs.code != 0 || !strings.Contains(logs.stdout, "arg:one two\narg:$(touch pwned)\n") || !strings.Contains(logs.stdout, "gpus=0") {
		t.Errorf("logs (exit %d):\n%s%s", logs.code, logs.stdout, logs.stderr)
	}
	samples, _ := filepath.Glob(filepath.Join(run.RunDir, "gpu", "samples-*.jsonl"))
	if len(samples) != 1 {
		t.Fatalf("samples files: %v", samples)
	}
	b, _ := os.ReadFile(samples[0])
	loaded, err := nvml.LoadSamples(bytes.NewReader(b))
	if err != nil || len(loaded) == 0 || loaded[0].NVML != nvml.NVMLUnavailable || !strings.HasPrefix(loaded[0].Host, "st-node") {
		t.Errorf("samples file %s: %v\n%s", samples[0], err, b)
	}
	// Accounting catches up asynchronously: wait for the GPU-hours.
	var gr result
	deadline := time.Now().Add(time.Minute)
	for {
		gr = slurmtune(t, db, "gpu", "--json", id)
		if g = gpuJSONOf(t, gr.stdout); g.GPUHours != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if gr.code != 0 || g.Telemetry || len(g.Stages) != 1 || g.Stages[0].Report.Telemetry || g.Stages[0].GPUs != 1 ||
		g.GPUHours == nil || *g.GPUHours <= 0 || g.GPUHoursSource != "sacct" || g.Stages[0].GPUHoursSource != "sacct" ||
		!strings.HasPrefix(g.Message, "no GPU telemetry: NVML was not available on st-node") {
		t.Errorf("gpu --json (exit %d):\n%s", gr.code, gr.stdout)
	}
	txt := slurmtune(t, db, "gpu", id)
	if txt.code != 0 || !strings.Contains(txt.stdout, "no GPU telemetry: NVML was not available on st-node") ||
		!strings.Contains(txt.stdout, "1 GPU(s)") {
		t.Errorf("gpu (exit %d):\n%s%s", txt.code, txt.stdout, txt.stderr)
	}
	st := slurmtune(t, db, "status")
	if st.code != 0 || !strings.Contains(st.stdout, "GPU-H") || !strings.Contains(st.stdout, "GPU UTIL") || !strings.Contains(st.stdout, "no NVML") {
		t.Errorf("status:\n%s%s", st.stdout, st.stderr)
	}
	var sj struct {
		Runs []struct {
			GPUHours *float64 `json:"gpu_hours"`
			Source   string   `json:"gpu_hours_source"`
			Stages   []struct {
				GPUTelemetry string `json:"gpu_telemetry"`
				GPUs         int    `json:"gpus"`
			} `json:"stages"`
		} `json:"runs"`
	}
	js := slurmtune(t, db, "status", "--json")
	if err := json.Unmarshal([]byte(js.stdout), &sj); err != nil || len(sj.Runs) != 1 || sj.Runs[0].GPUHours == nil ||
		sj.Runs[0].Source != "sacct" || sj.Runs[0].Stages[0].GPUTelemetry != "unavailable" || sj.Runs[0].Stages[0].GPUs != 1 {
		t.Errorf("status --json: %v\n%s", err, js.stdout)
	}
	if _, err := os.Stat(filepath.Join(tmp, "pwned")); err == nil {
		t.Error("an argument was executed")
	}
	if steps := slurmtest.Run(t, "sacct", "-n", "-P", "-j", id, "--format=JobName,State"); !strings.Contains(steps, "slurmtune-exporter|COMPLETED") {
		t.Errorf("the exporter step did not stop cleanly:\n%s", steps)
	}
}

// TestE2ESbatchWaitWrapRefused: --wrap with --wait and a user --output exits
// with the job's exit code and `logs` follows the user's output; a job sbatch
// refuses leaves nothing tracked and passes sbatch's error and exit code on.
func TestE2ESbatchWaitWrapRefused(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	bad := slurmtune(t, db, "sbatch", "--partition=no-such-partition", "--wrap", "true")
	if bad.code != 1 || !strings.Contains(bad.stderr, "sbatch: error:") || bad.stdout != "" {
		t.Errorf("refused sbatch: exit %d\n%s%s", bad.code, bad.stdout, bad.stderr)
	}
	if st := slurmtune(t, db, "status", "--no-sync", "--json"); !strings.Contains(st.stdout, `"runs": []`) {
		t.Errorf("a refused job is tracked:\n%s", st.stdout)
	}
	out := filepath.Join(tmp, "out-%j.txt")
	r := slurmtune(t, db, "sbatch", "--wait", "-o", out, "--time=5", "--wrap", "echo wrapped; exit 3")
	if r.code != 3 {
		t.Fatalf("sbatch --wait: exit %d, want the job's 3\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	if b, err := os.ReadFile(strings.Replace(out, "%j", id, 1)); err != nil || !strings.Contains(string(b), "wrapped") {
		t.Errorf("the user's --output: %v %q", err, b)
	}
	g := gpuJSONOf(t, slurmtune(t, db, "gpu", "--no-sync", "--json", id).stdout)
	s := statusOf(t, db, g.Run)
	if st := s.Runs[0].Stages[0]; st.State != "FAILED" || st.ExitCode == nil || *st.ExitCode != 3 || s.Runs[0].Name != "wrap" {
		t.Errorf("job: %+v", s.Runs[0])
	}
	if logs := slurmtune(t, db, "logs", g.Run, "job"); !strings.Contains(logs.stdout, "wrapped") {
		t.Errorf("logs through the user's --output: %s%s", logs.stdout, logs.stderr)
	}
}
