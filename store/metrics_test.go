package store

import (
	"path/filepath"
	"testing"
	"time"
)

func TestMetricLinesSavedOnceAndInOrder(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.CreateRun(ctx, Run{ID: "r1", Name: "tiny", RunDir: "/r/1", Transport: "local"}, []string{"train"}); err != nil {
		t.Fatal(err)
	}
	step := func(n int64) *int64 { return &n }
	f0 := MetricFile{Path: "/r/1/metrics/train.jsonl", Stage: "train"}
	f1 := f0
	f1.ReadTo, f1.JobID, f1.Restart = 100, "7", 0
	pts := []MetricPoint{
		{Stage: "train", Name: "loss", Offset: 40, Step: step(1), Value: 3, Time: time.Unix(10, 0), JobID: "7", Attempt: 1},
		{Stage: "train", Name: "learning_rate", Offset: 40, Step: step(1), Value: 0.1, Time: time.Unix(10, 0), JobID: "7", Attempt: 1},
		{Stage: "train", Name: "loss", Offset: 70, Step: step(2), Value: 2, Time: time.Unix(11, 0), JobID: "7", Attempt: 1},
	}
	if saved, err := s.SaveMetricLines(ctx, "r1", f0, f1, pts); err != nil || !saved {
		t.Fatalf("first save = %v, %v", saved, err)
	}
	// A second reader of the same lines finds the offset moved: nothing saved.
	if saved, err := s.SaveMetricLines(ctx, "r1", f0, f1, pts); err != nil || saved {
		t.Fatalf("second save of the same lines = %v, %v; want not saved", saved, err)
	}
	f2 := f1
	f2.ReadTo, f2.Restart = 160, 1
	more := []MetricPoint{{Stage: "train", Name: "loss", Offset: 130, Step: step(2), Value: 2.5, Time: time.Unix(20, 0), JobID: "7", Attempt: 1, Restart: 1}}
	if saved, err := s.SaveMetricLines(ctx, "r1", f1, f2, more); err != nil || !saved {
		t.Fatalf("third save = %v, %v", saved, err)
	}
	got, err := s.MetricPoints(ctx, "r1", MetricFilter{Stage: "train", Name: "loss"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Value != 3 || got[1].Value != 2 || got[2].Restart != 1 || *got[2].Step != 2 || got[2].Time.Unix() != 20 {
		t.Errorf("loss = %+v", got)
	}
	files, err := s.MetricFiles(ctx, "r1")
	if err != nil || files[f0.Path].ReadTo != 160 || files[f0.Path].Restart != 1 || files[f0.Path].JobID != "7" {
		t.Errorf("files = %+v, %v", files, err)
	}
	series, err := s.MetricSeriesOf(ctx, "r1")
	if err != nil || len(series) != 2 || series[1] != (MetricSeries{"train", "loss", 3}) {
		t.Errorf("series = %+v, %v", series, err)
	}
	last, err := s.LastMetricPoints(ctx, []string{"r1", "nope"}, "train", "loss")
	if err != nil || len(last) != 1 || last["r1"].Value != 2.5 {
		t.Errorf("last = %+v, %v", last, err)
	}
}

func TestEvalReportReplacedOnRetry(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.CreateRun(ctx, Run{ID: "r1", Name: "tiny", RunDir: "/r/1", Transport: "local"}, []string{"eval"}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.EvalReport(ctx, "r1"); err != nil || r != nil {
		t.Fatalf("no report yet: %+v, %v", r, err)
	}
	v := 14.0
	if err := s.SaveEvalReport(ctx, "r1", EvalRecord{JobID: "8", Passed: false, Metrics: map[string]float64{"perplexity": 14},
		Gates: []GateRecord{{Metric: "perplexity", Op: "<=", Threshold: 12, Value: &v, Reason: "too high"}, {Metric: "bleu", Op: ">=", Threshold: 1}}}); err != nil {
		t.Fatal(err)
	}
	v2 := 9.0
	if err := s.SaveEvalReport(ctx, "r1", EvalRecord{JobID: "9", Passed: true, Metrics: map[string]float64{"perplexity": 9},
		Gates: []GateRecord{{Metric: "perplexity", Op: "<=", Threshold: 12, Value: &v2, Passed: true}}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.EvalReport(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.JobID != "9" || !r.Passed || len(r.Gates) != 1 || *r.Gates[0].Value != 9 || r.Gates[0].Threshold != 12 || r.Metrics["perplexity"] != 9 {
		t.Errorf("report = %+v", r)
	}
	verdicts, err := s.EvalVerdicts(ctx, []string{"r1", "r2"})
	if err != nil || len(verdicts) != 1 || !verdicts["r1"] {
		t.Errorf("verdicts = %v, %v", verdicts, err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	w := open(t, path)
	if err := w.CreateRun(ctx, Run{ID: "r1", Name: "tiny", RunDir: "/r/1", Transport: "local"}, []string{"train"}); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if r, err := ro.GetRun(ctx, "r1"); err != nil || r.Name != "tiny" {
		t.Fatalf("GetRun = %+v, %v", r, err)
	}
	if err := ro.SetMetric(ctx, "r1", "eval", "x", 1); err == nil {
		t.Error("a read-only store wrote a metric")
	}
	if _, err := OpenReadOnly(ctx, filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Error("OpenReadOnly created a database")
	}
	old := filepath.Join(t.TempDir(), "old.db")
	db := rawDB(t, old)
	if _, err := db.Exec(migrations[0] + "; PRAGMA user_version = 1"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenReadOnly(ctx, old); err == nil {
		t.Error("OpenReadOnly accepted an old schema")
	}
}
