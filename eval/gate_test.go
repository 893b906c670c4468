package eval

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseGate(t *testing.T) {
	cases := []struct {
		in   string
		want Gate
	}{
		{"bleu>=40", Gate{MetricBLEU, OpGE, 40}},
		{"perplexity<=15", Gate{MetricPerplexity, OpLE, 15}},
		{"accuracy>0.5", Gate{MetricAccuracy, OpGT, 0.5}},
		{"toxicity < 0.01", Gate{MetricToxicity, OpLT, 0.01}},
		{" rougeL >= 0.3 ", Gate{MetricRougeL, OpGE, 0.3}},
		{"ROUGEL>=.3", Gate{MetricRougeL, OpGE, 0.3}},
		{"rouge1>=1e-1", Gate{MetricRouge1, OpGE, 0.1}},
		{"rouge2>-1", Gate{MetricRouge2, OpGT, -1}},
		{"human_eval>=3.5", Gate{MetricHumanEval, OpGE, 3.5}},
	}
	for _, c := range cases {
		g, err := ParseGate(c.in)
		if err != nil || g != c.want {
			t.Errorf("ParseGate(%q) = %+v, %v; want %+v", c.in, g, err, c.want)
		}
	}
	for _, bad := range []string{"bleu", "bleu=40", "bleu==40", "bleu>=", "bleu>=x", "bleu>=NaN", "bleu>=inf",
		">=40", "meteor>=1", "bleu=>40", "bleu>=40>=3", "bleu<>3"} {
		if g, err := ParseGate(bad); err == nil {
			t.Errorf("ParseGate(%q) = %+v, want error", bad, g)
		}
	}
	if _, err := ParseGate("meteor>=1"); err == nil || !strings.Contains(err.Error(), `unknown metric "meteor"`) {
		t.Errorf("unknown metric error: %v", err)
	}
	gs, err := ParseGates([]string{"bleu>=40", "perplexity<=15"})
	if err != nil || len(gs) != 2 || gs[1].String() != "perplexity<=15" {
		t.Errorf("ParseGates: %v %v", gs, err)
	}
	if _, err := ParseGates([]string{"bleu>=40", "nope<1"}); err == nil {
		t.Error("ParseGates with a bad gate: want error")
	}
}

func TestParseGateMap(t *testing.T) {
	// As yaml.v3 / encoding/json decode the pipeline config.
	var cfg map[string]any
	if err := json.Unmarshal([]byte(`{"toxicity": {"max": 0.01}, "bleu": {"min": 40}, "perplexity": {"max": 15, "min": 1}}`), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["rougeL"] = map[any]any{"min": 0.25} // yaml.v2 style
	cfg["accuracy"] = map[string]int{"min": 1}
	cfg["human_eval"] = map[string]any{"min": "3.5"}
	gs, err := ParseGateMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, g.String())
	}
	want := "perplexity>=1 perplexity<=15 accuracy>=1 bleu>=40 rougeL>=0.25 toxicity<=0.01 human_eval>=3.5"
	if strings.Join(got, " ") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, " "), want)
	}
	bad := []map[string]any{
		{"meteor": map[string]any{"min": 1}},
		{"bleu": map[string]any{"least": 1}},
		{"bleu": map[string]any{"min": "x"}},
		{"bleu": map[string]any{"min": []int{1}}},
		{"bleu": 40},
		{"bleu": nil},
		{"bleu": map[string]any{}},
		{"bleu": map[string]any{"min": 1}, "BLEU": map[string]any{"max": 2}},
	}
	for _, m := range bad {
		if gs, err := ParseGateMap(m); err == nil {
			t.Errorf("ParseGateMap(%v) = %v, want error", m, gs)
		}
	}
}

func TestCheckGates(t *testing.T) {
	var m Metrics
	m.Set(MetricBLEU, 41)
	m.Set(MetricAccuracy, 0.5)
	gates := []Gate{
		{MetricBLEU, OpGE, 40},
		{MetricBLEU, OpLT, 41},
		{MetricAccuracy, OpGT, 0.5},
		{MetricAccuracy, OpGE, 0.5},
		{MetricPerplexity, OpLE, 15},
	}
	res, ok := CheckGates(m, gates, map[string]string{MetricPerplexity: "no --nll input"})
	if ok {
		t.Error("overall passed, want failed")
	}
	wantPassed := []bool{true, false, false, true, false}
	for i, r := range res {
		if r.Passed != wantPassed[i] {
			t.Errorf("gate %v: passed %v", gates[i], r.Passed)
		}
	}
	if res[4].Value != nil || res[4].Reason != "perplexity: no --nll input" {
		t.Errorf("missing input gate: %+v", res[4])
	}
	if res[1].Reason != "bleu = 41, want < 41" {
		t.Errorf("reason %q", res[1].Reason)
	}
	if _, ok := CheckGates(m, nil, nil); !ok {
		t.Error("no gates: want passed")
	}
}
