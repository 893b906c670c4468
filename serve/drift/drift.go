// Package drift computes drift statistics for a deployed model: input drift
// of the prompts (prompt length in words and word frequencies, each as a
// population stability index against a baseline sample) and performance
// drift (error rate and p95 latency of a current window against a baseline
// window). The statistics are pure functions of their inputs; Check is the
// `slurmtune drift` use case around them: it reads the production and
// baseline prompts, derives the performance windows from the router
// counters sampled into the store, and posts the alert (monitor.webhook)
// and queues notify's drift event when a check alerts.
//
// Word-frequency drift is measured as PSI over the K most frequent baseline
// words plus one "other" bucket (rather than Jensen-Shannon divergence) so
// that both input checks share one scale and one set of thresholds; the
// "other" bucket catches vocabulary that is new in production.
// JSDivergence is provided for callers who prefer a bounded measure.
package drift

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Level grades one check or a whole report.
type Level string

// Levels in increasing severity.
const (
	LevelOK    Level = "ok"
	LevelWarn  Level = "warn"
	LevelAlert Level = "alert"
)

func (l Level) rank() int {
	switch l {
	case LevelWarn:
		return 1
	case LevelAlert:
		return 2
	}
	return 0
}

// Thresholds grade a PSI value. Common practice: below 0.1 no significant
// shift, 0.1 to 0.25 a moderate shift worth a look, above 0.25 a significant
// shift.
type Thresholds struct {
	Warn  float64 `json:"warn"`
	Alert float64 `json:"alert"`
}

// DefaultThresholds returns the common-practice PSI thresholds 0.1 and 0.25.
func DefaultThresholds() Thresholds { return Thresholds{Warn: 0.1, Alert: 0.25} }

// Level grades v: alert at or above Alert, warn at or above Warn.
func (t Thresholds) Level(v float64) Level {
	switch {
	case v >= t.Alert:
		return LevelAlert
	case v >= t.Warn:
		return LevelWarn
	}
	return LevelOK
}

// DefaultEpsilon replaces empty-bin proportions in PSI so that the
// logarithm stays finite.
const DefaultEpsilon = 1e-4

// PSI returns the population stability index of actual against expected:
// sum over bins of (a-e)*ln(a/e). Both are per-bin counts or proportions
// (each is normalised to sum to 1); proportions below eps are raised to eps.
func PSI(expected, actual []float64, eps float64) (float64, error) {
	if len(expected) != len(actual) {
		return 0, fmt.Errorf("psi: %d expected bins, %d actual bins", len(expected), len(actual))
	}
	if len(expected) == 0 {
		return 0, errors.New("psi: no bins")
	}
	if eps <= 0 {
		eps = DefaultEpsilon
	}
	e, err := normalise(expected)
	if err != nil {
		return 0, fmt.Errorf("psi: expected: %w", err)
	}
	a, err := normalise(actual)
	if err != nil {
		return 0, fmt.Errorf("psi: actual: %w", err)
	}
	var psi float64
	for i := range e {
		ei, ai := max(e[i], eps), max(a[i], eps)
		psi += (ai - ei) * math.Log(ai/ei)
	}
	return psi, nil
}

func normalise(v []float64) ([]float64, error) {
	var sum float64
	for _, x := range v {
		if x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("invalid bin value %v", x)
		}
		sum += x
	}
	if sum == 0 {
		return nil, errors.New("empty distribution")
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / sum
	}
	return out, nil
}

// QuantileEdges returns the interior bin edges that split baseline into
// (up to) bins equally populated bins: the nearest-rank i/bins quantiles for
// i = 1..bins-1, with duplicates (from tied values) removed. The bins are
// (-inf, e0], (e0, e1], ..., (e_last, +inf); with heavily tied values the
// last bin may be empty for the baseline and then catches production values
// above everything seen.
func QuantileEdges(baseline []float64, bins int) []float64 {
	if bins < 2 || len(baseline) == 0 {
		return nil
	}
	sorted := slices.Clone(baseline)
	slices.Sort(sorted)
	edges := make([]float64, 0, bins-1)
	for i := 1; i < bins; i++ {
		rank := int(math.Ceil(float64(i)*float64(len(sorted))/float64(bins))) - 1
		e := sorted[max(0, rank)]
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	return edges
}

// BinCounts counts values into the len(edges)+1 bins defined by edges (see
// QuantileEdges).
func BinCounts(values, edges []float64) []float64 {
	counts := make([]float64, len(edges)+1)
	for _, v := range values {
		counts[sort.SearchFloat64s(edges, v)]++
	}
	return counts
}

// NumericPSI bins production with quantile bins of baseline and returns the
// PSI and the edges used.
func NumericPSI(baseline, production []float64, bins int, eps float64) (float64, []float64, error) {
	if len(baseline) == 0 || len(production) == 0 {
		return 0, nil, errors.New("numeric psi: empty sample")
	}
	edges := QuantileEdges(baseline, bins)
	psi, err := PSI(BinCounts(baseline, edges), BinCounts(production, edges), eps)
	if err != nil {
		return 0, nil, fmt.Errorf("numeric psi: %w", err)
	}
	return psi, edges, nil
}

// Words splits text into lower-case words: maximal runs of letters and
// digits.
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// PromptLengths returns the length in words of each prompt.
func PromptLengths(prompts []string) []float64 {
	out := make([]float64, len(prompts))
	for i, p := range prompts {
		out[i] = float64(len(Words(p)))
	}
	return out
}

// WordCounts counts the words of all prompts.
func WordCounts(prompts []string) map[string]int {
	counts := make(map[string]int)
	for _, p := range prompts {
		for _, w := range Words(p) {
			counts[w]++
		}
	}
	return counts
}

// TopWords returns the k most frequent words of counts, most frequent
// first, ties broken alphabetically.
func TopWords(counts map[string]int, k int) []string {
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.SortFunc(words, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return words[:min(k, len(words))]
}

// WordDistributions maps both word counts onto the buckets vocab + "other"
// and returns the per-bucket counts.
func WordDistributions(baseline, production map[string]int, vocab []string) (base, prod []float64) {
	index := make(map[string]int, len(vocab))
	for i, w := range vocab {
		index[w] = i
	}
	bucket := func(counts map[string]int) []float64 {
		out := make([]float64, len(vocab)+1)
		for w, c := range counts {
			i, ok := index[w]
			if !ok {
				i = len(vocab)
			}
			out[i] += float64(c)
		}
		return out
	}
	return bucket(baseline), bucket(production)
}

// WordPSI returns the PSI of the production word distribution against the
// baseline one over the topK baseline words plus an "other" bucket.
func WordPSI(baselinePrompts, productionPrompts []string, topK int, eps float64) (float64, error) {
	bc, pc := WordCounts(baselinePrompts), WordCounts(productionPrompts)
	if len(bc) == 0 || len(pc) == 0 {
		return 0, errors.New("word psi: no words")
	}
	base, prod := WordDistributions(bc, pc, TopWords(bc, topK))
	psi, err := PSI(base, prod, eps)
	if err != nil {
		return 0, fmt.Errorf("word psi: %w", err)
	}
	return psi, nil
}

// JSDivergence returns the Jensen-Shannon divergence (base 2, in [0, 1])
// between two distributions given as per-bucket counts or proportions.
func JSDivergence(p, q []float64) (float64, error) {
	if len(p) != len(q) || len(p) == 0 {
		return 0, fmt.Errorf("js divergence: %d and %d buckets", len(p), len(q))
	}
	pn, err := normalise(p)
	if err != nil {
		return 0, fmt.Errorf("js divergence: %w", err)
	}
	qn, err := normalise(q)
	if err != nil {
		return 0, fmt.Errorf("js divergence: %w", err)
	}
	var d float64
	for i := range pn {
		m := (pn[i] + qn[i]) / 2
		if pn[i] > 0 {
			d += pn[i] * math.Log2(pn[i]/m) / 2
		}
		if qn[i] > 0 {
			d += qn[i] * math.Log2(qn[i]/m) / 2
		}
	}
	return d, nil
}

// Window summarises the serving performance of one period (or of one
// backend), e.g. from the router's Stats.
type Window struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	P95      time.Duration `json:"p95_ns"`
}

// ErrorRate is Errors/Requests, 0 without requests.
func (w Window) ErrorRate() float64 {
	if w.Requests == 0 {
		return 0
	}
	return float64(w.Errors) / float64(w.Requests)
}

// CountersWindow is the traffic between two readings of a backend's request
// and error counters (the router's, which only grow): their differences,
// or the later readings alone when a counter went back (the backend was
// re-added and its counters restarted). p95 is the latency at the later
// reading.
func CountersWindow(startRequests, startErrors, requests, errors int64, p95 time.Duration) Window {
	w := Window{Requests: int(requests), Errors: int(errors), P95: p95}
	if requests >= startRequests && errors >= startErrors {
		w.Requests -= int(startRequests)
		w.Errors -= int(startErrors)
	}
	return w
}

// PerfConfig sets how much worse a current window may be than the baseline.
type PerfConfig struct {
	// ErrorRateMargin is the allowed absolute increase of the error rate
	// (0.02 = two percentage points).
	ErrorRateMargin float64 `json:"error_rate_margin"`
	// LatencyMargin is the allowed relative increase of p95 latency
	// (0.2 = 20% slower).
	LatencyMargin float64 `json:"latency_margin"`
	// MinLatencyDelta is an absolute increase of p95 latency that is never
	// flagged, so that noise on very fast requests does not alert.
	MinLatencyDelta time.Duration `json:"min_latency_delta_ns"`
	// MinRequests is the fewest requests each window needs for a verdict.
	MinRequests int `json:"min_requests"`
}

// Finding is the result of one check. Limit is the value above which the
// check alerts (the PSI alert threshold, or the error-rate or latency limit
// in seconds).
type Finding struct {
	Check   string  `json:"check"`
	Value   float64 `json:"value"`
	Limit   float64 `json:"limit"`
	Level   Level   `json:"level"`
	Skipped bool    `json:"skipped,omitempty"`
	Reason  string  `json:"reason"`
}

// CheckPerformance compares current against baseline: an error rate above
// baseline + ErrorRateMargin, or a p95 latency above baseline ×
// (1+LatencyMargin) and more than MinLatencyDelta slower, is an alert. With
// fewer than MinRequests in either window the checks are skipped.
func CheckPerformance(baseline, current Window, cfg PerfConfig) []Finding {
	if baseline.Requests < cfg.MinRequests || current.Requests < cfg.MinRequests {
		reason := fmt.Sprintf("performance: too few requests (baseline %d, current %d, need %d)", baseline.Requests, current.Requests, cfg.MinRequests)
		return []Finding{
			{Check: "error_rate", Level: LevelOK, Skipped: true, Reason: reason},
			{Check: "p95_latency", Level: LevelOK, Skipped: true, Reason: reason},
		}
	}
	errLimit := baseline.ErrorRate() + cfg.ErrorRateMargin
	er := Finding{Check: "error_rate", Value: current.ErrorRate(), Limit: errLimit, Level: LevelOK}
	if er.Value > errLimit {
		er.Level = LevelAlert
	}
	er.Reason = fmt.Sprintf("error rate %.4f vs baseline %.4f (limit %.4f)", er.Value, baseline.ErrorRate(), errLimit)

	latLimit := time.Duration(float64(baseline.P95) * (1 + cfg.LatencyMargin))
	latLimit = max(latLimit, baseline.P95+cfg.MinLatencyDelta)
	lat := Finding{Check: "p95_latency", Value: current.P95.Seconds(), Limit: latLimit.Seconds(), Level: LevelOK}
	if current.P95 > latLimit {
		lat.Level = LevelAlert
	}
	lat.Reason = fmt.Sprintf("p95 latency %v vs baseline %v (limit %v)", current.P95, baseline.P95, latLimit)
	return []Finding{er, lat}
}

// Config configures Analyze.
type Config struct {
	// Bins is the number of quantile bins for prompt length.
	Bins int `json:"bins"`
	// TopK is the number of baseline words with their own bucket.
	TopK int `json:"top_k"`
	// Epsilon replaces empty-bin proportions.
	Epsilon float64 `json:"epsilon"`
	// PSI grades both input checks.
	PSI Thresholds `json:"psi"`
	// MinPrompts is the fewest prompts each sample needs for input checks.
	MinPrompts int        `json:"min_prompts"`
	Perf       PerfConfig `json:"perf"`
}

// DefaultConfig returns 10 length bins, the top 100 words, epsilon 1e-4,
// PSI thresholds 0.1/0.25, at least 100 prompts per sample, and a
// performance margin of +2 percentage points of errors or +20% (and at least
// +10ms) p95 latency over at least 50 requests per window.
func DefaultConfig() Config {
	return Config{
		Bins:       10,
		TopK:       100,
		Epsilon:    DefaultEpsilon,
		PSI:        DefaultThresholds(),
		MinPrompts: 100,
		Perf: PerfConfig{
			ErrorRateMargin: 0.02,
			LatencyMargin:   0.2,
			MinLatencyDelta: 10 * time.Millisecond,
			MinRequests:     50,
		},
	}
}

// Input is what Analyze compares. Prompt checks run when both prompt samples
// are given, performance checks when both windows are.
type Input struct {
	BaselinePrompts   []string `json:"-"`
	ProductionPrompts []string `json:"-"`
	BaselinePerf      *Window  `json:"baseline_perf,omitempty"`
	CurrentPerf       *Window  `json:"current_perf,omitempty"`
}

// Report is the outcome of Analyze. Drifted is true when any check reached
// the alert level; Level is the worst level seen; Reasons lists a sentence
// for every check at warn or alert level.
type Report struct {
	Drifted  bool      `json:"drifted"`
	Level    Level     `json:"level"`
	Reasons  []string  `json:"reasons"`
	Findings []Finding `json:"findings"`
}

// Analyze runs the input and performance drift checks that in allows.
func Analyze(in Input, cfg Config) (Report, error) {
	rep := Report{Level: LevelOK, Reasons: []string{}, Findings: []Finding{}}
	if in.BaselinePrompts != nil && in.ProductionPrompts != nil {
		fs, err := promptFindings(in.BaselinePrompts, in.ProductionPrompts, cfg)
		if err != nil {
			return Report{}, err
		}
		rep.Findings = append(rep.Findings, fs...)
	}
	if in.BaselinePerf != nil && in.CurrentPerf != nil {
		rep.Findings = append(rep.Findings, CheckPerformance(*in.BaselinePerf, *in.CurrentPerf, cfg.Perf)...)
	}
	for _, f := range rep.Findings {
		if f.Level.rank() > rep.Level.rank() {
			rep.Level = f.Level
		}
		if f.Level != LevelOK {
			rep.Reasons = append(rep.Reasons, string(f.Level)+": "+f.Reason)
		}
	}
	rep.Drifted = rep.Level == LevelAlert
	return rep, nil
}

func promptFindings(base, prod []string, cfg Config) ([]Finding, error) {
	if len(base) < cfg.MinPrompts || len(prod) < cfg.MinPrompts {
		reason := fmt.Sprintf("prompts: too few samples (baseline %d, production %d, need %d)", len(base), len(prod), cfg.MinPrompts)
		return []Finding{
			{Check: "prompt_length_psi", Level: LevelOK, Skipped: true, Reason: reason},
			{Check: "word_psi", Level: LevelOK, Skipped: true, Reason: reason},
		}, nil
	}
	lenPSI, _, err := NumericPSI(PromptLengths(base), PromptLengths(prod), cfg.Bins, cfg.Epsilon)
	if err != nil {
		return nil, fmt.Errorf("prompt length drift: %w", err)
	}
	wordPSI, err := WordPSI(base, prod, cfg.TopK, cfg.Epsilon)
	if err != nil {
		return nil, fmt.Errorf("word drift: %w", err)
	}
	mk := func(check, what string, v float64) Finding {
		return Finding{Check: check, Value: v, Limit: cfg.PSI.Alert, Level: cfg.PSI.Level(v),
			Reason: fmt.Sprintf("%s PSI %.3f (warn %.2f, alert %.2f)", what, v, cfg.PSI.Warn, cfg.PSI.Alert)}
	}
	return []Finding{
		mk("prompt_length_psi", "prompt length", lenPSI),
		mk("word_psi", fmt.Sprintf("word frequency (top %d + other)", cfg.TopK), wordPSI),
	}, nil
}
