package drift

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPSI(t *testing.T) {
	tests := []struct {
		name      string
		exp, act  []float64
		want      float64
		wantError bool
	}{
		{"identical", []float64{1, 2, 3}, []float64{10, 20, 30}, 0, false},
		// (0.5-0.25)ln(0.5/0.25) + (0.5-0.75)ln(0.5/0.75)
		{"known", []float64{1, 3}, []float64{1, 1}, 0.25*math.Log(2) - 0.25*math.Log(2.0/3), false},
		// Empty actual bin uses epsilon: (1e-4-0.5)ln(1e-4/0.5) + (1-0.5)ln(1/0.5)
		{"empty bin", []float64{1, 1}, []float64{0, 1}, (1e-4-0.5)*math.Log(1e-4/0.5) + 0.5*math.Log(2), false},
		{"length mismatch", []float64{1}, []float64{1, 2}, 0, true},
		{"no bins", nil, nil, 0, true},
		{"empty distribution", []float64{0, 0}, []float64{1, 1}, 0, true},
		{"negative", []float64{-1, 2}, []float64{1, 1}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PSI(tc.exp, tc.act, 1e-4)
			if (err != nil) != tc.wantError {
				t.Fatalf("err %v", err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("PSI = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQuantileEdgesAndBins(t *testing.T) {
	var v []float64
	for i := 1; i <= 100; i++ {
		v = append(v, float64(i))
	}
	tests := []struct {
		name   string
		values []float64
		bins   int
		want   []float64
	}{
		{"uniform quartiles", v, 4, []float64{25, 50, 75}},
		{"ties deduplicated", []float64{1, 1, 1, 1, 2, 2, 3, 4}, 4, []float64{1, 2}},
		{"constant keeps one edge", []float64{5, 5, 5}, 10, []float64{5}},
		{"one bin", v, 1, nil},
		{"empty", nil, 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := QuantileEdges(tc.values, tc.bins); !slices.Equal(got, tc.want) {
				t.Fatalf("edges %v, want %v", got, tc.want)
			}
		})
	}
	if got, want := BinCounts([]float64{0, 25, 26, 50, 99, 1000}, []float64{25, 50, 75}), []float64{2, 2, 0, 2}; !slices.Equal(got, want) {
		t.Fatalf("BinCounts %v, want %v", got, want)
	}
	// A constant baseline still detects production values above it.
	psi, _, err := NumericPSI([]float64{5, 5, 5, 5}, []float64{50, 50, 50, 50}, 10, 0)
	if err != nil || psi < 1 {
		t.Fatalf("constant baseline: psi %v err %v", psi, err)
	}
}

func TestThresholdLevel(t *testing.T) {
	th := DefaultThresholds()
	for _, tc := range []struct {
		v    float64
		want Level
	}{{0, LevelOK}, {0.099, LevelOK}, {0.1, LevelWarn}, {0.2, LevelWarn}, {0.25, LevelAlert}, {3, LevelAlert}} {
		if got := th.Level(tc.v); got != tc.want {
			t.Errorf("Level(%v) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestWords(t *testing.T) {
	if got, want := Words("Hello, World! It's 2024—GPU-time."), []string{"hello", "world", "it", "s", "2024", "gpu", "time"}; !slices.Equal(got, want) {
		t.Fatalf("Words = %q", got)
	}
	counts := map[string]int{"b": 3, "a": 3, "c": 5, "d": 1}
	if got, want := TopWords(counts, 3), []string{"c", "a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("TopWords = %q", got)
	}
	base, prod := WordDistributions(counts, map[string]int{"c": 1, "zzz": 4}, []string{"c", "a"})
	if !slices.Equal(base, []float64{5, 3, 4}) || !slices.Equal(prod, []float64{1, 0, 4}) {
		t.Fatalf("WordDistributions %v %v", base, prod)
	}
}

func TestJSDivergence(t *testing.T) {
	if d, err := JSDivergence([]float64{1, 0}, []float64{0, 1}); err != nil || math.Abs(d-1) > 1e-12 {
		t.Fatalf("disjoint: %v %v", d, err)
	}
	if d, err := JSDivergence([]float64{1, 2}, []float64{2, 4}); err != nil || d > 1e-12 {
		t.Fatalf("identical: %v %v", d, err)
	}
	if _, err := JSDivergence([]float64{1}, nil); err == nil {
		t.Fatal("mismatched lengths accepted")
	}
}

// promptGen draws synthetic prompts: a length from a normal distribution and
// words from a Zipf distribution over a vocabulary.
type promptGen struct {
	meanLen, sdLen float64
	vocab          []string
}

func vocabulary(prefix string, n int) []string {
	v := make([]string, n)
	for i := range v {
		v[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return v
}

func (g promptGen) sample(seed uint64, n int) []string {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(len(g.vocab)-1))
	out := make([]string, n)
	for i := range out {
		l := max(1, int(math.Round(rng.NormFloat64()*g.sdLen+g.meanLen)))
		words := make([]string, l)
		for j := range words {
			words[j] = g.vocab[zipf.Uint64()]
		}
		out[i] = strings.Join(words, " ") + "?"
	}
	return out
}

func finding(t *testing.T, r Report, check string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no finding %s in %+v", check, r)
	return Finding{}
}

func TestSyntheticPromptDrift(t *testing.T) {
	base := promptGen{meanLen: 20, sdLen: 5, vocab: vocabulary("w", 300)}
	longer := promptGen{meanLen: 26, sdLen: 6, vocab: base.vocab}
	// A new topic: a fifth of the vocabulary, spread over all frequency
	// ranks, is replaced by words the baseline never used.
	newTopic := promptGen{meanLen: 20, sdLen: 5, vocab: slices.Clone(base.vocab)}
	for i := 0; i < len(newTopic.vocab); i += 5 {
		newTopic.vocab[i] = fmt.Sprintf("x%d", i)
	}
	baseline := base.sample(1, 2000)
	cfg := DefaultConfig()

	tests := []struct {
		name        string
		production  []string
		lengthLevel Level
		wordsLevel  Level
	}{
		{"same distribution, other seed", base.sample(2, 2000), LevelOK, LevelOK},
		{"same distribution, smaller sample", base.sample(3, 500), LevelOK, LevelOK},
		{"longer prompts", longer.sample(4, 2000), LevelAlert, LevelOK},
		{"new vocabulary", newTopic.sample(5, 2000), LevelOK, LevelAlert},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Analyze(Input{BaselinePrompts: baseline, ProductionPrompts: tc.production}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			l, w := finding(t, rep, "prompt_length_psi"), finding(t, rep, "word_psi")
			t.Logf("length PSI %.4f, word PSI %.4f, reasons %q", l.Value, w.Value, rep.Reasons)
			if l.Level != tc.lengthLevel || w.Level != tc.wordsLevel {
				t.Fatalf("levels length=%s words=%s, want %s %s", l.Level, w.Level, tc.lengthLevel, tc.wordsLevel)
			}
			wantDrift := tc.lengthLevel == LevelAlert || tc.wordsLevel == LevelAlert
			if rep.Drifted != wantDrift || (len(rep.Reasons) > 0) != wantDrift {
				t.Fatalf("drifted=%v reasons=%q, want drifted=%v", rep.Drifted, rep.Reasons, wantDrift)
			}
		})
	}

	rep, err := Analyze(Input{BaselinePrompts: baseline, ProductionPrompts: baseline[:10]}, cfg)
	if err != nil || rep.Drifted || !finding(t, rep, "word_psi").Skipped {
		t.Fatalf("small sample not skipped: %+v %v", rep, err)
	}
}

func TestCheckPerformance(t *testing.T) {
	cfg := DefaultConfig().Perf
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	base := Window{Requests: 1000, Errors: 5, P95: ms(200)}
	tests := []struct {
		name     string
		cur      Window
		errLevel Level
		latLevel Level
		skipped  bool
	}{
		{"same", Window{Requests: 800, Errors: 4, P95: ms(205)}, LevelOK, LevelOK, false},
		{"more errors", Window{Requests: 1000, Errors: 50, P95: ms(200)}, LevelAlert, LevelOK, false},
		{"slower", Window{Requests: 1000, Errors: 5, P95: ms(300)}, LevelOK, LevelAlert, false},
		{"just inside margins", Window{Requests: 1000, Errors: 24, P95: ms(240)}, LevelOK, LevelOK, false},
		{"too few requests", Window{Requests: 10, Errors: 10, P95: ms(900)}, LevelOK, LevelOK, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := CheckPerformance(base, tc.cur, cfg)
			if len(fs) != 2 || fs[0].Level != tc.errLevel || fs[1].Level != tc.latLevel || fs[0].Skipped != tc.skipped {
				t.Fatalf("findings %+v", fs)
			}
		})
	}
	// Fast requests: a 20% rise below MinLatencyDelta is noise.
	fast := CheckPerformance(Window{Requests: 100, P95: ms(5)}, Window{Requests: 100, P95: ms(9)}, cfg)
	if fast[1].Level != LevelOK {
		t.Fatalf("small absolute latency rise flagged: %+v", fast[1])
	}
}

func TestReportJSON(t *testing.T) {
	rep, err := Analyze(Input{
		BaselinePerf: &Window{Requests: 100, Errors: 0, P95: time.Second},
		CurrentPerf:  &Window{Requests: 100, Errors: 30, P95: time.Second},
	}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back["drifted"] != true || back["level"] != "alert" || len(back["reasons"].([]any)) != 1 {
		t.Fatalf("report JSON %s", data)
	}
	empty, _ := Analyze(Input{}, DefaultConfig())
	if data, _ := json.Marshal(empty); string(data) != `{"drifted":false,"level":"ok","reasons":[],"findings":[]}` {
		t.Fatalf("empty report JSON %s", data)
	}
}
