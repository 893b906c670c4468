package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Metric names, as used in gates and in eval_report.json.
const (
	MetricPerplexity = "perplexity"
	MetricAccuracy   = "accuracy"
	MetricBLEU       = "bleu"
	MetricRouge1     = "rouge1"
	MetricRouge2     = "rouge2"
	MetricRougeL     = "rougeL"
	MetricToxicity   = "toxicity"
	MetricHumanEval  = "human_eval"
)

// MetricNames lists the metrics in report order.
var MetricNames = []string{
	MetricPerplexity, MetricAccuracy, MetricBLEU, MetricRouge1,
	MetricRouge2, MetricRougeL, MetricToxicity, MetricHumanEval,
}

// canonicalMetric returns the canonical spelling of a metric name (names
// are matched case-insensitively, so "rougel" is rougeL).
func canonicalMetric(name string) (string, bool) {
	for _, m := range MetricNames {
		if strings.EqualFold(name, m) {
			return m, true
		}
	}
	return "", false
}

func unknownMetric(name string) error {
	return fmt.Errorf("eval: unknown metric %q (known: %s)", name, strings.Join(MetricNames, ", "))
}

// Op is a gate comparison.
type Op string

// Gate comparison operators.
const (
	OpGE Op = ">="
	OpLE Op = "<="
	OpGT Op = ">"
	OpLT Op = "<"
)

// Gate is one threshold check: Metric Op Threshold must hold.
type Gate struct {
	Metric    string
	Op        Op
	Threshold float64
}

func (g Gate) String() string {
	return g.Metric + string(g.Op) + strconv.FormatFloat(g.Threshold, 'g', -1, 64)
}

// holds reports whether value satisfies the gate.
func (g Gate) holds(value float64) bool {
	switch g.Op {
	case OpGE:
		return value >= g.Threshold
	case OpLE:
		return value <= g.Threshold
	case OpGT:
		return value > g.Threshold
	case OpLT:
		return value < g.Threshold
	}
	return false
}

// validate checks a Gate built by hand.
func (g Gate) validate() (Gate, error) {
	m, ok := canonicalMetric(g.Metric)
	if !ok {
		return g, unknownMetric(g.Metric)
	}
	g.Metric = m
	switch g.Op {
	case OpGE, OpLE, OpGT, OpLT:
	default:
		return g, fmt.Errorf("eval: gate %q: unknown operator %q (want >=, <=, > or <)", g.Metric, g.Op)
	}
	if math.IsNaN(g.Threshold) || math.IsInf(g.Threshold, 0) {
		return g, fmt.Errorf("eval: gate %q: threshold must be finite", g.Metric)
	}
	return g, nil
}

// ParseGate parses a standalone gate such as "bleu>=40", "perplexity<=15"
// or "accuracy > 0.5" (spaces allowed; operators >=, <=, >, <).
func ParseGate(s string) (Gate, error) {
	i := strings.IndexAny(s, "<>")
	if i < 0 {
		return Gate{}, fmt.Errorf("eval: gate %q: want METRIC OP VALUE with OP one of >=, <=, >, <", s)
	}
	name := strings.TrimSpace(s[:i])
	rest := s[i:]
	var op Op
	switch {
	case strings.HasPrefix(rest, ">="):
		op = OpGE
	case strings.HasPrefix(rest, "<="):
		op = OpLE
	case strings.HasPrefix(rest, ">"):
		op = OpGT
	default:
		op = OpLT
	}
	valText := strings.TrimSpace(rest[len(op):])
	if name == "" {
		return Gate{}, fmt.Errorf("eval: gate %q: missing metric name", s)
	}
	m, ok := canonicalMetric(name)
	if !ok {
		return Gate{}, fmt.Errorf("eval: gate %q: %w", s, unknownMetric(name))
	}
	v, err := strconv.ParseFloat(valText, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return Gate{}, fmt.Errorf("eval: gate %q: threshold %q is not a finite number", s, valText)
	}
	return Gate{Metric: m, Op: op, Threshold: v}, nil
}

// ParseGates parses several standalone gates.
func ParseGates(specs []string) ([]Gate, error) {
	out := make([]Gate, 0, len(specs))
	for _, s := range specs {
		g, err := ParseGate(s)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// ParseGateMap parses the pipeline config's gate section,
// {metric: {min: value, max: value}}, as decoded from YAML or JSON: the
// outer value is a map with string keys (map[string]any, map[any]any or
// any map type), each inner value a map with keys "min" (gate >=) and/or
// "max" (gate <=) and numeric values (any Go integer or float type,
// json.Number, or a numeric string). Gates come out in report metric
// order, min before max.
func ParseGateMap(m map[string]any) ([]Gate, error) {
	type entry struct {
		metric string
		spec   any
	}
	var entries []entry
	for name, spec := range m {
		canon, ok := canonicalMetric(name)
		if !ok {
			return nil, unknownMetric(name)
		}
		entries = append(entries, entry{canon, spec})
	}
	rank := func(m string) int {
		for i, n := range MetricNames {
			if n == m {
				return i
			}
		}
		return len(MetricNames)
	}
	sort.Slice(entries, func(i, j int) bool { return rank(entries[i].metric) < rank(entries[j].metric) })
	var out []Gate
	for i, e := range entries {
		if i > 0 && entries[i-1].metric == e.metric {
			return nil, fmt.Errorf("eval: gates: metric %q given twice", e.metric)
		}
		bounds, err := stringKeyMap(e.spec)
		if err != nil {
			return nil, fmt.Errorf("eval: gates: %s: %w", e.metric, err)
		}
		if len(bounds) == 0 {
			return nil, fmt.Errorf("eval: gates: %s: want {min: VALUE} and/or {max: VALUE}", e.metric)
		}
		for k := range bounds {
			if k != "min" && k != "max" {
				return nil, fmt.Errorf("eval: gates: %s: unknown key %q (want min or max)", e.metric, k)
			}
		}
		for _, k := range []string{"min", "max"} {
			raw, ok := bounds[k]
			if !ok {
				continue
			}
			v, err := toFloat(raw)
			if err != nil {
				return nil, fmt.Errorf("eval: gates: %s.%s: %w", e.metric, k, err)
			}
			op := OpGE
			if k == "max" {
				op = OpLE
			}
			out = append(out, Gate{Metric: e.metric, Op: op, Threshold: v})
		}
	}
	return out, nil
}

// stringKeyMap converts any map with string-like keys to map[string]any.
func stringKeyMap(v any) (map[string]any, error) {
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case nil:
		return nil, fmt.Errorf("want a map of min/max, got nothing")
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map {
		return nil, fmt.Errorf("want a map of min/max, got %T", v)
	}
	out := make(map[string]any, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		k := it.Key()
		if k.Kind() == reflect.Interface {
			k = k.Elem()
		}
		if k.Kind() != reflect.String {
			return nil, fmt.Errorf("map key %v is not a string", k)
		}
		out[k.String()] = it.Value().Interface()
	}
	return out, nil
}

// toFloat converts a config number to a finite float64.
func toFloat(v any) (float64, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int8:
		f = float64(x)
	case int16:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint:
		f = float64(x)
	case uint8:
		f = float64(x)
	case uint16:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
	default:
		return 0, fmt.Errorf("want a number, got %T", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("threshold must be finite")
	}
	return f, nil
}
