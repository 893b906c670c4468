package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/slurmtune/slurmtune/store/atomicfile"
)

// Metrics holds the computed metrics. A nil field means the metric had no
// input; it is then absent from eval_report.json.
type Metrics struct {
	Perplexity *float64 `json:"perplexity,omitempty"`
	Accuracy   *float64 `json:"accuracy,omitempty"`
	BLEU       *float64 `json:"bleu,omitempty"`
	Rouge1     *float64 `json:"rouge1,omitempty"`
	Rouge2     *float64 `json:"rouge2,omitempty"`
	RougeL     *float64 `json:"rougeL,omitempty"`
	Toxicity   *float64 `json:"toxicity,omitempty"`
	HumanEval  *float64 `json:"human_eval,omitempty"`
}

func (m *Metrics) field(name string) **float64 {
	switch name {
	case MetricPerplexity:
		return &m.Perplexity
	case MetricAccuracy:
		return &m.Accuracy
	case MetricBLEU:
		return &m.BLEU
	case MetricRouge1:
		return &m.Rouge1
	case MetricRouge2:
		return &m.Rouge2
	case MetricRougeL:
		return &m.RougeL
	case MetricToxicity:
		return &m.Toxicity
	case MetricHumanEval:
		return &m.HumanEval
	}
	return nil
}

// Get returns a metric by name; ok is false if it is absent or unknown.
func (m *Metrics) Get(name string) (v float64, ok bool) {
	f := m.field(name)
	if f == nil || *f == nil {
		return 0, false
	}
	return **f, true
}

// Set sets a metric by name; it reports false for an unknown name.
func (m *Metrics) Set(name string, v float64) bool {
	f := m.field(name)
	if f == nil {
		return false
	}
	*f = &v
	return true
}

// GateResult is one checked gate in the report. Value is null when the
// metric had no input; Reason explains a failure.
type GateResult struct {
	Metric    string   `json:"metric"`
	Op        Op       `json:"op"`
	Threshold float64  `json:"threshold"`
	Value     *float64 `json:"value"`
	Passed    bool     `json:"passed"`
	Reason    string   `json:"reason,omitempty"`
}

// Line is the gate's verdict as `slurmtune gate` prints it: "PASS bleu >=
// 40: 41.2", or FAIL, with the reason in parentheses.
func (g GateResult) Line() string {
	verdict := "PASS"
	if !g.Passed {
		verdict = "FAIL"
	}
	val := "missing"
	if g.Value != nil {
		val = fmt.Sprintf("%.4g", *g.Value)
	}
	s := fmt.Sprintf("%s %s %s %g: %s", verdict, g.Metric, g.Op, g.Threshold, val)
	if g.Reason != "" {
		s += " (" + g.Reason + ")"
	}
	return s
}

// WriteGates writes the Line of every gate.
func (r *Report) WriteGates(w io.Writer) {
	for _, g := range r.Gates {
		fmt.Fprintln(w, g.Line())
	}
}

// Report is eval_report.json.
type Report struct {
	Metrics Metrics      `json:"metrics"`
	Gates   []GateResult `json:"gates"`
	Passed  bool         `json:"passed"`

	// Stats is not part of the JSON report: counts and details for the CLI
	// to print.
	Stats Stats `json:"-"`
}

// Stats describes what Evaluate read.
type Stats struct {
	Predictions     int        // prediction records read
	WithReferences  int        // records with at least one non-empty reference (BLEU/ROUGE)
	AccuracyRecords int        // records scored for accuracy (label or reference)
	NLLLines        int        // NLL records read
	NLLTokens       int64      // Σ tokens
	HumanRated      int        // rated review rows
	BLEU            *BLEUScore // sacrebleu details, when BLEU was computed
	// Missing maps a metric without a value to the reason, e.g.
	// "perplexity": "no --nll input".
	Missing map[string]string
}

// CheckGates evaluates gates against metrics. missing gives, per metric
// without a value, the reason shown in the report.
func CheckGates(m Metrics, gates []Gate, missing map[string]string) ([]GateResult, bool) {
	results := make([]GateResult, 0, len(gates))
	all := true
	for _, g := range gates {
		r := GateResult{Metric: g.Metric, Op: g.Op, Threshold: g.Threshold}
		if v, ok := m.Get(g.Metric); ok {
			vv := v
			r.Value = &vv
			r.Passed = g.holds(v)
			if !r.Passed {
				r.Reason = fmt.Sprintf("%s = %s, want %s %s", g.Metric, formatG(v), g.Op, formatG(g.Threshold))
			}
		} else {
			why := missing[g.Metric]
			if why == "" {
				why = "no input"
			}
			r.Reason = g.Metric + ": " + why
		}
		all = all && r.Passed
		results = append(results, r)
	}
	return results, all
}

func formatG(x float64) string { return fmt.Sprintf("%.6g", x) }

// MarshalIndent returns the report as indented JSON with a trailing
// newline.
func (r *Report) MarshalIndent() ([]byte, error) {
	gates := r.Gates
	if gates == nil {
		gates = []GateResult{}
	}
	out := struct {
		Metrics Metrics      `json:"metrics"`
		Gates   []GateResult `json:"gates"`
		Passed  bool         `json:"passed"`
	}{r.Metrics, gates, r.Passed}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<=" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteReport writes the report to path atomically: a temporary file in
// the same directory is written, synced and renamed over path.
func WriteReport(path string, r *Report) error {
	b, err := r.MarshalIndent()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}
