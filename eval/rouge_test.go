package eval

import (
	"math"
	"testing"
)

// Test cases from Google's rouge_score (github.com/google-research/
// google-research, rouge/, Apache-2.0): rouge_scorer_test.py,
// tokenize_test.py and tokenizers_test.py.

// The first two lines of rouge/testdata/target.txt and prediction.txt
// (random strings used to compare against ROUGE-1.5.5).
var (
	rougeTargets = []string{
		"ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
		"KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n",
	}
	rougePredictions = []string{
		"rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
		"n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n",
	}
)

// assertAlmostEqual is absltest's assertAlmostEqual (round(a-b, places) == 0).
func assertAlmostEqual(t *testing.T, what string, want, got float64, places int) {
	t.Helper()
	p := math.Pow(10, float64(places))
	if math.Round((want-got)*p) != 0 {
		t.Errorf("%s = %.7f, want %.7f (%d places)", what, got, want, places)
	}
}

func assertScore(t *testing.T, what string, s RougeScore, p, r, f float64, places int) {
	t.Helper()
	assertAlmostEqual(t, what+" precision", p, s.Precision, places)
	assertAlmostEqual(t, what+" recall", r, s.Recall, places)
	assertAlmostEqual(t, what+" fmeasure", f, s.FMeasure, places)
}

func score1(target, prediction string, opts RougeOptions) RougeScores {
	return ScoreRouge([]string{target}, prediction, opts)
}

func TestRougeScorerTest(t *testing.T) {
	// testRouge1
	assertScore(t, "rouge1", score1("testing one two", "testing", RougeOptions{}).Rouge1, 1, 1.0/3, 1.0/2, 7)
	// testRougeEmpty (rouge1, rouge2, rougeL; rougeLsum below)
	s := score1("testing one two", "", RougeOptions{})
	assertScore(t, "empty rouge1", s.Rouge1, 0, 0, 0, 7)
	assertScore(t, "empty rouge2", s.Rouge2, 0, 0, 0, 7)
	assertScore(t, "empty rougeL", s.RougeL, 0, 0, 0, 7)
	assertScore(t, "empty rougeLsum", ScoreRougeLsum("testing one two", "", RougeOptions{}), 0, 0, 0, 7)
	// testRouge2
	assertScore(t, "rouge2", score1("testing one two", "testing one", RougeOptions{}).Rouge2, 1, 1.0/2, 2.0/3, 7)
	// testRougeLConsecutive
	assertScore(t, "rougeL consecutive", score1("testing one two", "testing one", RougeOptions{}).RougeL, 1, 2.0/3, 4.0/5, 7)
	// testRougeLNonConsecutive
	assertScore(t, "rougeL non-consecutive", score1("testing one two", "testing two", RougeOptions{}).RougeL, 1, 2.0/3, 4.0/5, 7)
	// testMultipleRougeTypes
	s = score1("testing one two", "testing one", RougeOptions{})
	assertScore(t, "multi rouge1", s.Rouge1, 1, 2.0/3, 4.0/5, 7)
	assertScore(t, "multi rougeL", s.RougeL, 1, 2.0/3, 4.0/5, 7)
}

func TestRougeAgainstRouge155(t *testing.T) {
	type prf struct{ r, p, f float64 }
	cases := []struct {
		name   string
		stem   bool
		metric func(RougeScores) RougeScore
		want   [2]prf
	}{
		{"testRouge1AgainstRouge155", false, func(s RougeScores) RougeScore { return s.Rouge1 },
			[2]prf{{0.40741, 0.68750, 0.51163}, {0.40476, 0.65385, 0.50000}}},
		{"testRouge1AgainstRouge155WithStemming", true, func(s RougeScores) RougeScore { return s.Rouge1 },
			[2]prf{{0.40741, 0.68750, 0.51163}, {0.42857, 0.69231, 0.52941}}},
		{"testRouge2AgainstRouge155", false, func(s RougeScores) RougeScore { return s.Rouge2 },
			[2]prf{{0.30769, 0.53333, 0.39024}, {0.29268, 0.48000, 0.36364}}},
		{"testRouge2AgainstRouge155WithStemming", true, func(s RougeScores) RougeScore { return s.Rouge2 },
			[2]prf{{0.30769, 0.53333, 0.39024}, {0.29268, 0.48000, 0.36364}}},
		{"testRougeLAgainstRouge155", false, func(s RougeScores) RougeScore { return s.RougeL },
			[2]prf{{0.40741, 0.68750, 0.51163}, {0.40476, 0.65385, 0.50000}}},
	}
	for _, c := range cases {
		for i := 0; i < 2; i++ {
			got := c.metric(score1(rougeTargets[i], rougePredictions[i], RougeOptions{UseStemmer: c.stem}))
			w := c.want[i]
			assertScore(t, c.name, got, w.p, w.r, w.f, 5)
		}
	}
}

func TestRougeLcsTable(t *testing.T) { // testLcsTable
	ref := []int32{1, 2, 3, 4, 5}
	c1 := []int32{2, 5, 3, 4}
	tb := lcsTable(ref, c1)
	if tb[len(ref)][len(c1)] != 3 {
		t.Errorf("lcs length %d, want 3", tb[len(ref)][len(c1)])
	}
	idx := backtrackNoRec(tb, ref, c1)
	if !equalInts(idx, []int{1, 2, 3}) {
		t.Errorf("indices %v, want [1 2 3]", idx)
	}
	var vals []int
	for _, i := range idx {
		vals = append(vals, int(ref[i]))
	}
	if !equalInts(vals, []int{2, 3, 4}) {
		t.Errorf("values %v, want [2 3 4]", vals)
	}
	c2 := []int32{8, 9}
	tb = lcsTable(ref, c2)
	if tb[len(ref)][len(c2)] != 0 || len(backtrackNoRec(tb, ref, c2)) != 0 {
		t.Error("no common subsequence: want 0 and []")
	}
	// The one-row LCS used for rougeL agrees with the table.
	var row []int32
	if l := lcsLength(ref, c1, &row); l != 3 {
		t.Errorf("lcsLength = %d, want 3", l)
	}
}

func TestRougeUnionLcs(t *testing.T) { // testUnionLcs (the _union_lcs part)
	ref := []int32{1, 2, 3, 4, 5}
	c1 := []int32{1, 2, 6, 7, 8}
	c2 := []int32{1, 3, 8, 9, 5}
	got := unionLCS(ref, [][]int32{c1, c2})
	if !equalInt32s(got, []int32{1, 2, 3, 5}) {
		t.Errorf("union lcs %v, want [1 2 3 5]", got)
	}
	got = unionLCS(ref, [][]int32{c2, c1})
	if !equalInt32s(got, []int32{1, 2, 3, 5}) {
		t.Errorf("union lcs %v, want [1 2 3 5]", got)
	}
}

func TestRougeSummaryLevelLcs(t *testing.T) { // testSummaryLevelLcs
	refs := [][]int32{{1, 2, 3, 4, 5}}
	cans := [][]int32{{1, 2, 6, 7, 8}, {1, 3, 8, 9, 5}}
	s := summaryLevelLCS(refs, cans)
	if s.Recall != 0.8 || s.Precision != 0.4 {
		t.Errorf("recall %v precision %v, want 0.8 0.4", s.Recall, s.Precision)
	}
	assertAlmostEqual(t, "fmeasure", 0.5333, s.FMeasure, 3)
	// Tokenizer may drop all tokens, resulting in empty candidate list.
	if s := summaryLevelLCS([][]int32{{1}}, [][]int32{{}}); s.Recall != 0 {
		t.Errorf("empty candidate: recall %v, want 0", s.Recall)
	}
}

func TestRougeLsum(t *testing.T) { // testRougeLsum
	s := ScoreRougeLsum("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", RougeOptions{})
	assertAlmostEqual(t, "recall", 0.8, s.Recall, 7)
	assertAlmostEqual(t, "precision", 0.4, s.Precision, 7)
	assertAlmostEqual(t, "fmeasure", 0.5333, s.FMeasure, 3)
	for _, c := range [][2]string{{"w1 w2 w3 w4 w5", ""}, {"", "w1"}, {"w1 w2 w3 w4 w5", "/"}} {
		assertScore(t, "rougeLsum "+c[0]+"|"+c[1], ScoreRougeLsum(c[0], c[1], RougeOptions{}), 0, 0, 0, 3)
	}
}

func TestRougeTokenize(t *testing.T) { // tokenize_test.py, tokenizers_test.py
	for _, in := range []string{"one Two three", "one\n Two \nthree"} {
		if got := RougeTokenize(in, RougeOptions{}); !equalStrings(got, []string{"one", "two", "three"}) {
			t.Errorf("tokenize(%q) = %q", in, got)
		}
	}
	if got := RougeTokenize("this is a test", RougeOptions{}); !equalStrings(got, []string{"this", "is", "a", "test"}) {
		t.Errorf("no stemmer: %q", got)
	}
	if got := RougeTokenize("the friends had a meeting", RougeOptions{UseStemmer: true}); !equalStrings(got, []string{"the", "friend", "had", "a", "meet"}) {
		t.Errorf("stemmer: %q", got)
	}
}

// score_multi takes, per metric, the reference with the best F-measure.
func TestRougeScoreMulti(t *testing.T) {
	s := ScoreRouge([]string{"completely different words", "testing one two", ""}, "testing one", RougeOptions{})
	assertScore(t, "multi rouge1", s.Rouge1, 1, 2.0/3, 4.0/5, 7)
	assertScore(t, "multi rouge2", s.Rouge2, 1, 1.0/2, 2.0/3, 7)
	// Per metric: rouge1 may come from one reference and rouge2 from another.
	s = ScoreRouge([]string{"b a", "a c d e f"}, "a b", RougeOptions{})
	assertScore(t, "rouge1 from first", s.Rouge1, 1, 1, 1, 7)
	assertScore(t, "rouge2 all zero", s.Rouge2, 0, 0, 0, 7)
}

// Porter stemmer (NLTK_EXTENSIONS) on words covering each step, with NLTK's
// outputs.
func TestPorterStem(t *testing.T) {
	cases := map[string]string{
		"caresses": "caress", "ponies": "poni", "ties": "tie", "caress": "caress", "cats": "cat",
		"feed": "feed", "agreed": "agre", "plastered": "plaster", "bled": "bled", "motoring": "motor",
		"sing": "sing", "conflated": "conflat", "troubled": "troubl", "sized": "size", "hopping": "hop",
		"tanned": "tan", "falling": "fall", "hissing": "hiss", "fizzed": "fizz", "failing": "fail",
		"filing": "file", "happy": "happi", "sky": "sky", "relational": "relat", "conditional": "condit",
		"rational": "ration", "valenci": "valenc", "hesitanci": "hesit", "digitizer": "digit",
		"conformabli": "conform", "radicalli": "radic", "differentli": "differ", "vileli": "vile",
		"analogousli": "analog", "vietnamization": "vietnam", "predication": "predic", "operator": "oper",
		"feudalism": "feudal", "decisiveness": "decis", "hopefulness": "hope", "callousness": "callous",
		"formaliti": "formal", "sensitiviti": "sensit", "sensibiliti": "sensibl", "triplicate": "triplic",
		"formative": "form", "formalize": "formal", "electriciti": "electr", "electrical": "electr",
		"hopeful": "hope", "goodness": "good", "revival": "reviv", "allowance": "allow",
		"inference": "infer", "airliner": "airlin", "gyroscopic": "gyroscop", "adjustable": "adjust",
		"defensible": "defens", "irritant": "irrit", "replacement": "replac", "adjustment": "adjust",
		"dependent": "depend", "adoption": "adopt", "homologou": "homolog", "communism": "commun",
		"activate": "activ", "angulariti": "angular", "homologous": "homolog", "effective": "effect",
		"bowdlerize": "bowdler", "probate": "probat", "rate": "rate", "cease": "ceas",
		"controll": "control", "roll": "roll", "dying": "die", "skies": "sky", "flies": "fli",
		"dies": "die", "spied": "spi", "died": "die", "meetings": "meet", "friends": "friend",
		"generously": "gener", "archaeology": "archaeolog", "geology": "geolog",
	}
	for in, want := range cases {
		if got := porterStem(in); got != want {
			t.Errorf("porterStem(%q) = %q, want %q", in, got, want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalInt32s(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
