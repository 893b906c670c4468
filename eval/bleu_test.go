package eval

import (
	"fmt"
	"math"
	"testing"
)

// Test cases from sacrebleu (github.com/mjpost/sacrebleu, Apache-2.0):
// test/test_bleu.py and test/test_sentence_bleu.py, sacrebleu 2.x.

func f64(x float64) *float64 { return &x }

// streams converts sacrebleu's reference streams (one list per reference
// set) to per-hypothesis reference lists.
func streams(refStreams ...[]string) [][]string {
	out := make([][]string, len(refStreams[0]))
	for i := range out {
		for _, s := range refStreams {
			out[i] = append(out[i], s[i])
		}
	}
	return out
}

// rawCorpusBLEU is sacrebleu.compat.raw_corpus_bleu: floor smoothing, no
// tokenization, effective order.
func rawCorpusBLEU(t *testing.T, hyps []string, refs [][]string, smooth *float64) BLEUScore {
	t.Helper()
	s, err := CorpusBLEU(hyps, refs, BLEUOptions{
		Tokenize: TokNone, SmoothMethod: SmoothFloor, SmoothValue: smooth, EffectiveOrder: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const bleuEps = 1e-8 // test_bleu.py EPSILON

func TestSacreBLEURawBLEU(t *testing.T) { // test_raw_bleu
	cases := []struct {
		hyps, refs []string
		want       float64
	}{
		{[]string{"this is a test", "another test"}, []string{"ref1", "ref2"}, 0.0},
		{[]string{"this is a test"}, []string{"this is a test"}, 1.0},
		{[]string{"this is a fest"}, []string{"this is a test"}, 0.223606797749979},
	}
	for _, c := range cases {
		got := rawCorpusBLEU(t, c.hyps, streams(c.refs), f64(.01)).Score / 100
		if math.Abs(got-c.want) >= bleuEps {
			t.Errorf("raw_corpus_bleu(%q) = %.12f, want %.12f", c.hyps, got, c.want)
		}
	}
}

var (
	readmeRefs = streams(
		[]string{"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
		[]string{"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."},
	)
	readmeHyps = []string{
		"The dog bit the man.",
		"It wasn't surprising.",
		"The man had just bitten him.",
	}
)

func TestSacreBLEUCorpusBLEU(t *testing.T) { // test_corpus_bleu
	cases := []struct {
		hyps []string
		opts BLEUOptions
		want float64
	}{
		{readmeHyps, BLEUOptions{}, 48.530827},
		{[]string{"", "", ""}, BLEUOptions{}, 0.0},
		{readmeHyps, BLEUOptions{Tokenize: TokNone}, 49.1919566},
		{readmeHyps, BLEUOptions{Tokenize: Tok13a}, 48.530827},
		{readmeHyps, BLEUOptions{Tokenize: TokIntl}, 43.91623493},
		{readmeHyps, BLEUOptions{SmoothMethod: SmoothNone}, 48.530827},
	}
	for _, c := range cases {
		s, err := CorpusBLEU(c.hyps, readmeRefs, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Score-c.want) >= bleuEps {
			t.Errorf("corpus_bleu(%q, %+v) = %.10f, want %.10f", c.hyps, c.opts, s.Score, c.want)
		}
	}
}

func TestSacreBLEUEffectiveOrder(t *testing.T) { // test_effective_order
	cases := []struct {
		hyp, ref string
		want     float64
	}{
		{"test", "a test", 0.3678794411714425},
		{"a test", "a test", 1.0},
		{"a little test", "a test", 0.03218297948685433},
	}
	for _, c := range cases {
		got := rawCorpusBLEU(t, []string{c.hyp}, [][]string{{c.ref}}, f64(.01)).Score / 100
		if math.Abs(got-c.want) >= bleuEps {
			t.Errorf("%q vs %q = %.15f, want %.15f", c.hyp, c.ref, got, c.want)
		}
	}
}

func TestSacreBLEUStatistics(t *testing.T) { // test_statistics
	s := rawCorpusBLEU(t, []string{"am I am a character sequence"}, [][]string{{"I am a symbol string sequence a a"}}, f64(.01))
	if fmt.Sprint(s.Counts) != "[4 2 1 0]" || fmt.Sprint(s.Totals) != "[6 5 4 3]" {
		t.Errorf("counts %v totals %v, want [4 2 1 0] [6 5 4 3]", s.Counts, s.Totals)
	}
}

func TestSacreBLEUScoring(t *testing.T) { // test_scoring
	s, err := ComputeBLEU([]float64{9, 7, 5, 3}, []float64{10, 8, 6, 4}, 11, 11, SmoothNone, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Score / 100; math.Abs(got-0.8375922397) >= bleuEps {
		t.Errorf("compute_bleu = %.10f, want 0.8375922397", got)
	}
}

func TestSacreBLEUOffset(t *testing.T) { // test_offset
	hyp := []string{"am I am a character sequence"}
	ref := [][]string{{"I am a symbol string sequence a a"}}
	if got := rawCorpusBLEU(t, hyp, ref, f64(0)).Score / 100; math.Abs(got-0) >= bleuEps {
		t.Errorf("without offset: %v, want 0", got)
	}
	// nil: BLEU's internal floor default of 0.1
	if got := rawCorpusBLEU(t, hyp, ref, nil).Score / 100; math.Abs(got-0.1555722182) >= bleuEps {
		t.Errorf("with offset: %.10f, want 0.1555722182", got)
	}
}

func TestSacreBLEUDegenerateStatistics(t *testing.T) { // test_degenerate_statistics
	cases := []struct {
		correct, total  []float64
		sysLen, refLen  int
		offset, expects float64
	}{
		{[]float64{0, 0, 0, 0}, []float64{4, 4, 2, 1}, 0, 1, 0.0, 0.0},
		{[]float64{0, 0, 0, 0}, []float64{10, 11, 12, 0}, 14, 10, 0.0, 0.0},
		{[]float64{0, 0, 0, 0}, []float64{0, 0, 0, 0}, 0, 0, 0.0, 0.0},
		{[]float64{6, 5, 4, 0}, []float64{6, 5, 4, 3}, 6, 6, 0.0, 0.0},
		{[]float64{0, 0, 0, 0}, []float64{0, 0, 0, 0}, 0, 0, 0.1, 0.0},
		{[]float64{0, 0, 0, 0}, []float64{0, 0, 0, 0}, 1, 5, 0.01, 0.0},
	}
	for _, c := range cases {
		s, err := ComputeBLEU(c.correct, c.total, c.sysLen, c.refLen, SmoothFloor, f64(c.offset), false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Score/100 != c.expects {
			t.Errorf("%+v: score %v, want exactly %v", c, s.Score/100, c.expects)
		}
	}
}

func TestSacreBLEUMaxNgramOrder(t *testing.T) { // test_max_ngram_order
	want := map[int]string{1: "77.65", 2: "60.50", 3: "53.93", 4: "48.53", 5: "46.14", 6: "43.28"}
	for order := 1; order <= 6; order++ {
		s, err := CorpusBLEU(readmeHyps, readmeRefs, BLEUOptions{MaxNgramOrder: order})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%.2f", s.Score); got != want[order] {
			t.Errorf("order %d: %s, want %s", order, got, want[order])
		}
	}
}

// test_sentence_bleu.py: the example from sacrebleu issue #98.
func TestSacreBLEUSentenceBLEU(t *testing.T) {
	const ref = "producţia de zahăr brut se exprimă în zahăr alb;"
	const sys = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"
	cases := []struct {
		method string
		value  *float64
		lc     bool
		tok    string
		want   float64
	}{
		// change smoothing
		{"exp", nil, false, "13a", 8.493},
		{"none", nil, false, "13a", 0.0},
		{"floor", nil, false, "13a", 4.51688},
		{"floor", f64(0.1), false, "13a", 4.51688},
		{"floor", f64(0.5), false, "13a", 10.10},
		{"add-k", nil, false, "13a", 14.882},
		{"add-k", f64(1), false, "13a", 14.882},
		{"add-k", f64(2), false, "13a", 21.389},
		// change tok
		{"exp", nil, false, "none", 7.347},
		{"exp", nil, false, "intl", 8.493},
		{"exp", nil, false, "char", 40.8759},
		// change case
		{"exp", nil, true, "char", 42.0267},
	}
	for _, c := range cases {
		s, err := SentenceBLEU(sys, []string{ref}, BLEUOptions{
			Tokenize: c.tok, Lowercase: c.lc, SmoothMethod: c.method, SmoothValue: c.value, EffectiveOrder: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Score-c.want) >= 1e-3 {
			t.Errorf("%+v: %.5f, want %.5f", c, s.Score, c.want)
		}
	}
}

// test_sentence_bleu.py: the example from sacrebleu issue #141 (no match
// at all scores 0 whatever the smoothing).
func TestSacreBLEUSentenceBLEUZero(t *testing.T) {
	cases := []struct {
		method string
		value  *float64
	}{
		{"exp", nil}, {"none", nil}, {"floor", nil}, {"floor", f64(0.1)}, {"add-k", nil}, {"add-k", f64(1)},
	}
	for _, c := range cases {
		s, err := SentenceBLEU("this is a cat", []string{"okay thanks"}, BLEUOptions{
			SmoothMethod: c.method, SmoothValue: c.value, EffectiveOrder: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Score) >= 1e-3 {
			t.Errorf("%+v: %v, want 0", c, s.Score)
		}
	}
}

func TestBLEUErrors(t *testing.T) {
	if _, err := CorpusBLEU([]string{"a"}, [][]string{{"", ""}}, BLEUOptions{}); err == nil {
		t.Error("no non-empty reference: want error")
	}
	if _, err := CorpusBLEU([]string{"a"}, nil, BLEUOptions{}); err == nil {
		t.Error("length mismatch: want error")
	}
	if _, err := CorpusBLEU([]string{"a"}, [][]string{{"a"}}, BLEUOptions{SmoothMethod: "bogus"}); err == nil {
		t.Error("bad smoothing: want error")
	}
	if _, err := CorpusBLEU([]string{"a"}, [][]string{{"a"}}, BLEUOptions{Tokenize: "zh"}); err == nil {
		t.Error("unsupported tokenizer: want error")
	}
}

// Variable numbers of references and empty references, as sacrebleu allows.
func TestBLEUVariableReferences(t *testing.T) {
	a, err := CorpusBLEU(readmeHyps, [][]string{
		{"The dog bit the man.", "The dog had bit the man."},
		{"It was not unexpected.", ""},
		{"The man bit him first.", "The man had bitten the dog."},
	}, BLEUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := CorpusBLEU(readmeHyps, [][]string{
		{"The dog bit the man.", "The dog had bit the man."},
		{"It was not unexpected."},
		{"The man bit him first.", "The man had bitten the dog."},
	}, BLEUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Score != b.Score {
		t.Errorf("empty reference changed the score: %v vs %v", a.Score, b.Score)
	}
}
