package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestPrepStandalone runs `slurmtune prep` on a laptop-style input: every
// check fires with file:line findings and the report has the contract keys.
func TestPrepStandalone(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	in := filepath.Join(tmp, "chat.jsonl")
	long := "Explain how Slurm job dependencies chain the stages of a fine-tuning pipeline so nothing starts early."
	lines := []string{
		`{"messages": [{"role": "user", "content": "What does afterok mean in Slurm?"}, {"role": "assistant", "content": "The job starts only after the named jobs completed successfully."}]}`,
		`{"messages": [{"role": "user", "content": "What does afterok mean in Slurm?"}, {"role": "assistant", "content": "The job starts only after the named jobs completed successfully."}]}`,
		`{"messages": [{"role": "user", "content": "` + long + `"}, {"role": "assistant", "content": "Each stage is submitted with afterok on the previous one and kill-on-invalid-dep."}]}`,
		`{"messages": [{"role": "user", "content": "hi"}]}`,
		`not json at all`,
		`{"messages": [{"role": "wizard", "content": "abracadabra is the word"}, {"role": "assistant", "content": "no"}]}`,
	}
	for i := 0; i < 40; i++ {
		lines = append(lines, `{"messages": [{"role": "user", "content": "Question number `+strings.Repeat("x", i+1)+` about checkpoints?"}, {"role": "assistant", "content": "Answer `+strings.Repeat("y", i+1)+` about resuming from the newest complete checkpoint."}]}`)
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	r := slurmtune(t, filepath.Join(tmp, "st.db"), "prep", "--format", "chat", "--input", in, "-o", out, "--near-dup=false")
	if r.code != 0 {
		t.Fatalf("prep: exit %d: %s", r.code, r.stderr)
	}
	for _, f := range []string{"train.jsonl", "validation.jsonl", "quarantine.jsonl", "quality_report.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("prep output lacks %s", f)
		}
	}
	var rep struct {
		Total, Kept, Train, Validation int
		Removed                        map[string]int `json:"removed"`
		DataHash                       string         `json:"data_hash"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "quality_report.json"))
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"malformed", "exact_duplicate", "near_duplicate", "toxic", "too_short", "too_long", "pii"} {
		if _, ok := rep.Removed[k]; !ok {
			t.Errorf("quality_report.json removed lacks %q: %s", k, b)
		}
	}
	if rep.Total != len(lines) || rep.Removed["exact_duplicate"] != 1 || rep.Removed["malformed"] != 3 || rep.Kept != rep.Train+rep.Validation || rep.DataHash == "" {
		t.Errorf("report: %s", b)
	}
	q, _ := os.ReadFile(filepath.Join(out, "quarantine.jsonl"))
	if !strings.Contains(string(q), `"line":5`) || !strings.Contains(string(q), filepath.Base(in)) {
		t.Errorf("quarantine lacks the file and line of the invalid JSON record:\n%s", q)
	}
	// Same input, same split.
	out2 := filepath.Join(tmp, "out2")
	slurmtune(t, filepath.Join(tmp, "st.db"), "prep", "--format", "chat", "--input", in, "-o", out2, "--near-dup=false")
	a, _ := os.ReadFile(filepath.Join(out, "train.jsonl"))
	c, _ := os.ReadFile(filepath.Join(out2, "train.jsonl"))
	if string(a) != string(c) || len(a) == 0 {
		t.Error("re-running prep on the same data gave another split")
	}
}

// TestGateStandalone: --gate specs, exit 3 on a failed gate, a gate without
// its input fails and names the missing flag, and the report's shape.
func TestGateStandalone(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	preds := filepath.Join(tmp, "p.jsonl")
	if err := os.WriteFile(preds, []byte(`{"prediction": "the cat sat on the mat", "references": ["the cat sat on the mat"]}`+"\n"+
		`{"prediction": "a dog ran", "reference": "a dog ran in the park"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(tmp, "r.json")
	db := filepath.Join(tmp, "st.db")
	r := slurmtune(t, db, "gate", "--gate", "bleu>=40", "--gate", "rougeL>=0.5", "--predictions", preds, "-o", report)
	if r.code != 0 {
		t.Fatalf("passing gates: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	r = slurmtune(t, db, "gate", "--gate", "bleu>=99", "--gate", "perplexity<=15", "--predictions", preds, "-o", report)
	if r.code != 3 {
		t.Fatalf("failing gates: exit %d, want 3: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "--nll") {
		t.Errorf("the perplexity gate should name the missing --nll input:\n%s", r.stdout)
	}
	var rep struct {
		Metrics map[string]float64 `json:"metrics"`
		Gates   []struct {
			Metric, Op string
			Threshold  float64
			Value      *float64
			Passed     bool
		} `json:"gates"`
		Passed *bool `json:"passed"`
	}
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil || rep.Passed == nil || *rep.Passed || len(rep.Gates) != 2 {
		t.Fatalf("eval_report.json: %v %s", err, b)
	}
	if _, ok := rep.Metrics["perplexity"]; ok {
		t.Errorf("a metric with no input must be absent: %s", b)
	}
	if rep.Metrics["bleu"] <= 0 || rep.Metrics["bleu"] > 100 {
		t.Errorf("bleu %v", rep.Metrics["bleu"])
	}
}

// TestE2EBadDataStopsAtPrep: data that fails the checks fails prep, so
// train (and everything after) never starts.
func TestE2EBadDataStopsAtPrep(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	r := slurmtune(t, db, "submit", quickPipeline(t), "--wait", "--interval", "1s", "--set", "workdir="+filepath.Join(tmp, "runs"),
		"--set", "data.checks.min_examples=1000000")
	if r.code != 1 {
		t.Fatalf("submit --wait with failing data checks: exit %d: %s", r.code, r.stderr)
	}
	run := statusOf(t, db, strings.TrimSpace(r.stdout)).Runs[0]
	if run.State != "FAILED" {
		t.Errorf("run %s", run.State)
	}
	for _, st := range run.Stages {
		switch st.Name {
		case "prep":
			if st.State != "FAILED" {
				t.Errorf("prep: %+v", st)
			}
		case "train":
			if st.State != "CANCELLED" || st.Reason != "DependencyNeverSatisfied" {
				t.Errorf("train must never start: %+v", st)
			}
		}
	}
	logs := slurmtune(t, db, "logs", run.ID, "prep")
	if !strings.Contains(logs.stdout, "min_examples") {
		t.Errorf("prep log does not say which check failed:\n%s", logs.stdout)
	}
	if _, err := os.Stat(filepath.Join(run.RunDir, "data", "quality_report.json")); err != nil {
		t.Errorf("the failed prep still writes its report: %v", err)
	}
}

// TestE2EReviewRoundTrip exports a run's predictions for raters and imports
// their scores where the eval stage's gate finds them.
func TestE2EReviewRoundTrip(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	r := slurmtune(t, db, "submit", quickPipeline(t), "--wait", "--interval", "1s", "--set", "workdir="+filepath.Join(tmp, "runs"))
	if r.code != 0 {
		t.Fatalf("submit: exit %d: %s", r.code, r.stderr)
	}
	runID := strings.TrimSpace(r.stdout)
	exp := slurmtune(t, db, "review", "export", runID, "--n", "5")
	if exp.code != 0 {
		t.Fatalf("review export: %s", exp.stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(exp.stdout)).ReadAll()
	if err != nil || len(rows) != 2 || strings.Join(rows[0], ",") != "id,prompt,prediction,reference,score" || rows[1][4] != "" {
		t.Fatalf("review export CSV: %v %q", err, exp.stdout)
	}
	rows[1][4] = "4"
	var sb strings.Builder
	if err := csv.NewWriter(&sb).WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	scored := filepath.Join(tmp, "scored.csv")
	if err := os.WriteFile(scored, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	imp := slurmtune(t, db, "review", "import", runID, scored)
	if imp.code != 0 || !strings.Contains(imp.stdout, "mean 4.000") {
		t.Fatalf("review import: exit %d: %s %s", imp.code, imp.stdout, imp.stderr)
	}
	run := statusOf(t, db, runID).Runs[0]
	if _, err := os.Stat(filepath.Join(run.RunDir, "eval", "human.csv")); err != nil {
		t.Error(err)
	}
	// Out-of-range scores are refused with the line.
	rows[1][4] = "9"
	sb.Reset()
	if err := csv.NewWriter(&sb).WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scored, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if bad := slurmtune(t, db, "review", "import", runID, scored); bad.code != 2 || !strings.Contains(bad.stderr, "line 2") {
		t.Errorf("out-of-range score: exit %d: %s", bad.code, bad.stderr)
	}
	// A retry of eval picks the scores up: the human_eval metric is in the report.
	if rr := slurmtune(t, db, "retry", runID, "--from", "eval"); rr.code != 0 {
		t.Fatalf("retry: %s", rr.stderr)
	}
	waitEnded(t, db, runID, 2*time.Minute)
	var rep struct {
		Metrics map[string]float64 `json:"metrics"`
	}
	b, _ := os.ReadFile(filepath.Join(run.RunDir, "eval", "eval_report.json"))
	if err := json.Unmarshal(b, &rep); err != nil || rep.Metrics["human_eval"] != 4 {
		t.Errorf("eval report after the retry lacks human_eval 4 (%v): %s", err, b)
	}
}
