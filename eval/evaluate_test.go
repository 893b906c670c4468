package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

type wordScorer struct{ bad string }

func (w wordScorer) IsToxic(s string) bool { return strings.Contains(strings.ToLower(s), w.bad) }

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func fixture(t *testing.T) (dir string, in Inputs) {
	dir = t.TempDir()
	preds := writeFile(t, dir, "preds.jsonl", strings.Join([]string{
		`{"id": "1", "prompt": "Capital of France?", "prediction": "The Paris.", "references": ["Paris"]}`,
		`{"id": "2", "prediction": "It wasn't surprising.", "references": ["It was not unexpected.", "No one was surprised."]}`,
		`{"id": "3", "prediction": "The dog bit the man.", "reference": "The dog had bit the man."}`,
		`{"id": "4", "prediction": "Positive", "label": "positive"}`,
		`{"id": "5", "prediction": "you idiot", "label": "negative"}`,
	}, "\n")+"\n")
	nll1 := writeFile(t, dir, "nll-0.jsonl", "{\"nll_sum\": 10, \"tokens\": 5}\n{\"nll_sum\": 2, \"tokens\": 1}\n")
	nll2 := writeFile(t, dir, "nll-1.jsonl", "{\"nll_sum\": 0.5, \"tokens\": 4}\n")
	human := writeFile(t, dir, "review.csv", "id,prompt,prediction,reference,score\n1,a,b,c,4\n2,a,b,c,\n3,a,b,c,5\n")
	gates, err := ParseGates([]string{"perplexity<=15", "accuracy>0.5", "bleu>=40", "rougeL>=0.5", "toxicity<0.1", "human_eval>=4"})
	if err != nil {
		t.Fatal(err)
	}
	return dir, Inputs{
		PredictionPaths: []string{preds},
		NLLPaths:        []string{nll1, nll2},
		HumanCSVPath:    human,
		Toxicity:        wordScorer{"idiot"},
		Gates:           gates,
	}
}

func checkGolden(t *testing.T, name string, rep *Report) {
	t.Helper()
	got, err := rep.MarshalIndent()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./eval -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report differs from %s:\n got %s\nwant %s", path, got, want)
	}
}

func TestEvaluateFull(t *testing.T) {
	dir, in := fixture(t)
	rep, err := Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Metrics
	// perplexity: exp((10+2+0.5)/(5+1+4)) = exp(1.25)
	if math.Abs(*m.Perplexity-math.Exp(1.25)) > 1e-12 {
		t.Errorf("perplexity %v", *m.Perplexity)
	}
	// accuracy: "The Paris." ~ "Paris" yes; #2 no; #3 no; label positive yes;
	// label negative no -> 2/5.
	if *m.Accuracy != 0.4 {
		t.Errorf("accuracy %v, want 0.4", *m.Accuracy)
	}
	// bleu over the three reference records equals sacrebleu's corpus BLEU.
	want, _ := CorpusBLEU(
		[]string{"The Paris.", "It wasn't surprising.", "The dog bit the man."},
		[][]string{{"Paris"}, {"It was not unexpected.", "No one was surprised."}, {"The dog had bit the man."}},
		BLEUOptions{})
	if *m.BLEU != want.Score {
		t.Errorf("bleu %v, want %v", *m.BLEU, want.Score)
	}
	// toxicity: 1 of 5 predictions; human_eval: (4+5)/2.
	if *m.Toxicity != 0.2 || *m.HumanEval != 4.5 {
		t.Errorf("toxicity %v human %v", *m.Toxicity, *m.HumanEval)
	}
	if rep.Stats.Predictions != 5 || rep.Stats.WithReferences != 3 || rep.Stats.HumanRated != 2 || rep.Stats.NLLTokens != 10 {
		t.Errorf("stats %+v", rep.Stats)
	}
	checkGolden(t, "eval_report_full.golden.json", rep)

	// WriteReport: atomic, and the file is exactly MarshalIndent.
	out := filepath.Join(dir, "eval_report.json")
	if err := WriteReport(out, rep); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	exp, _ := rep.MarshalIndent()
	if !bytes.Equal(b, exp) {
		t.Error("written report differs")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

// A metric without input is absent from "metrics", and its gate has value
// null, passed false and a reason naming the missing input.
func TestEvaluateMissingInputs(t *testing.T) {
	_, in := fixture(t)
	in.NLLPaths = nil
	in.HumanCSVPath = ""
	in.Toxicity = nil
	rep, err := Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed {
		t.Error("passed with missing inputs")
	}
	reasons := map[string]string{}
	for _, g := range rep.Gates {
		if g.Value == nil {
			if g.Passed {
				t.Errorf("gate %s passed without a value", g.Metric)
			}
			reasons[g.Metric] = g.Reason
		}
	}
	want := map[string]string{
		"perplexity": "perplexity: no --nll input",
		"toxicity":   "toxicity: no toxicity scorer",
		"human_eval": "human_eval: no --human input",
	}
	for k, v := range want {
		if reasons[k] != v {
			t.Errorf("%s reason %q, want %q", k, reasons[k], v)
		}
	}
	checkGolden(t, "eval_report_missing.golden.json", rep)

	// Shape: exactly metrics/gates/passed; absent metrics are not keys.
	b, _ := rep.MarshalIndent()
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "gates,metrics,passed" {
		t.Errorf("top-level keys %v", keys)
	}
	metrics := doc["metrics"].(map[string]any)
	for _, k := range []string{"perplexity", "toxicity", "human_eval"} {
		if _, ok := metrics[k]; ok {
			t.Errorf("metrics has %q without input", k)
		}
	}
	for _, k := range []string{"accuracy", "bleu", "rouge1", "rouge2", "rougeL"} {
		if _, ok := metrics[k].(float64); !ok {
			t.Errorf("metrics lacks %q", k)
		}
	}
	for _, g := range doc["gates"].([]any) {
		gm := g.(map[string]any)
		for _, k := range []string{"metric", "op", "threshold", "value", "passed"} {
			if _, ok := gm[k]; !ok {
				t.Errorf("gate lacks %q: %v", k, gm)
			}
		}
	}
}

func TestEvaluateNoInputsNoGates(t *testing.T) {
	rep, err := Evaluate(context.Background(), Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := rep.MarshalIndent()
	if string(b) != "{\n  \"metrics\": {},\n  \"gates\": [],\n  \"passed\": true\n}\n" {
		t.Errorf("empty report %s", b)
	}
}

func TestEvaluateErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.jsonl", "{\"prediction\": \"a\", \"reference\": \"a\"}\n{\"prediction\": 1}\n")
	if _, err := Evaluate(context.Background(), Inputs{PredictionPaths: []string{bad}}); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2:") {
		t.Errorf("bad predictions: %v", err)
	}
	badNLL := writeFile(t, dir, "nll.jsonl", "{\"nll_sum\": 1, \"tokens\": 0}\n")
	if _, err := Evaluate(context.Background(), Inputs{NLLPaths: []string{badNLL}}); err == nil || !strings.Contains(err.Error(), "nll.jsonl:1:") {
		t.Errorf("bad nll: %v", err)
	}
	badCSV := writeFile(t, dir, "h.csv", "id,score\n1,9\n")
	if _, err := Evaluate(context.Background(), Inputs{HumanCSVPath: badCSV}); err == nil || !strings.Contains(err.Error(), "h.csv: review CSV line 2") {
		t.Errorf("bad csv: %v", err)
	}
	if _, err := Evaluate(context.Background(), Inputs{PredictionPaths: []string{filepath.Join(dir, "nope")}}); err == nil {
		t.Error("missing file: want error")
	}
	if _, err := Evaluate(context.Background(), Inputs{Gates: []Gate{{Metric: "meteor", Op: OpGE}}}); err == nil {
		t.Error("bad gate: want error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Evaluate(ctx, Inputs{PredictionPaths: []string{bad}}); err == nil {
		t.Error("cancelled: want error")
	}
}

// Predictions without references or labels leave accuracy/BLEU/ROUGE out
// with a reason, but toxicity is still computed.
func TestEvaluatePredictionsOnly(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "p.jsonl", "{\"prediction\": \"hello\"}\n{\"prediction\": \"idiot\"}\n")
	gates, _ := ParseGates([]string{"bleu>=1", "toxicity<=0.5"})
	rep, err := Evaluate(context.Background(), Inputs{PredictionPaths: []string{p}, Toxicity: wordScorer{"idiot"}, Gates: gates})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metrics.BLEU != nil || rep.Metrics.Accuracy != nil || *rep.Metrics.Toxicity != 0.5 {
		t.Errorf("metrics %+v", rep.Metrics)
	}
	if rep.Gates[0].Reason != "bleu: no prediction record has a non-empty reference" || !rep.Gates[1].Passed || rep.Passed {
		t.Errorf("gates %+v", rep.Gates)
	}
}

func TestExactMatch(t *testing.T) {
	cases := []struct {
		pred string
		refs []string
		want bool
	}{
		{"The Eiffel Tower!", []string{"eiffel tower"}, true},
		{"an apple", []string{"Apple"}, true},
		{"  New   York ", []string{"new york"}, true},
		{"theatre", []string{"atre"}, false},
		{"Paris", []string{"London", "paris"}, true},
		{"Paris", []string{"London"}, false},
		{"ΟΔΟΣ", []string{"οδος"}, true}, // Python lower: final sigma
		{"the", []string{""}, true},
	}
	for _, c := range cases {
		if got := ExactMatch(c.pred, c.refs); got != c.want {
			t.Errorf("ExactMatch(%q, %q) = %v, want %v", c.pred, c.refs, got, c.want)
		}
	}
}
