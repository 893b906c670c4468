package eval

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// testdata/python_golden.json holds the output of CPython 3.11 running the
// reference code on tricky strings: sacrebleu 2.x's Tokenizer13a
// (tokenizer_13a.py + tokenizer_re.py, with and without the rstrip that
// BLEU._preprocess_segment applies), rouge_score's tokenize.tokenize, the
// SQuAD v1.1 normalize_answer, str.lower() and str.split().
type pyGolden struct {
	In        string   `json:"in"`
	Tok13a    string   `json:"tok13a"`
	Tok13aRaw string   `json:"tok13a_raw"`
	Rouge     []string `json:"rouge"`
	Squad     string   `json:"squad"`
	Lower     string   `json:"lower"`
	Split     []string `json:"split"`
}

func loadPyGolden(t *testing.T) []pyGolden {
	t.Helper()
	b, err := os.ReadFile("testdata/python_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g []pyGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestPythonGolden(t *testing.T) {
	for _, g := range loadPyGolden(t) {
		if got := Tokenize13a(g.In); got != g.Tok13aRaw {
			t.Errorf("Tokenize13a(%q) = %q, want %q", g.In, got, g.Tok13aRaw)
		}
		if got := Tokenize13a(pyRStrip(g.In)); got != g.Tok13a {
			t.Errorf("Tokenize13a(rstrip(%q)) = %q, want %q", g.In, got, g.Tok13a)
		}
		if got := RougeTokenize(g.In, RougeOptions{}); !equalStrings(got, g.Rouge) {
			t.Errorf("RougeTokenize(%q) = %q, want %q", g.In, got, g.Rouge)
		}
		if got := NormalizeAnswer(g.In); got != g.Squad {
			t.Errorf("NormalizeAnswer(%q) = %q, want %q", g.In, got, g.Squad)
		}
		if got := pyLower(g.In); got != g.Lower {
			t.Errorf("pyLower(%q) = %q, want %q", g.In, got, g.Lower)
		}
		if got := pyFields(nil, g.In); !equalStrings(got, g.Split) {
			t.Errorf("pyFields(%q) = %q, want %q", g.In, got, g.Split)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// tokenize13aRegexp is Tokenizer13a written with the regular expressions of
// tokenizer_re.py, for differential testing of the hand-written scanner.
// Go's regexp replaces leftmost non-overlapping matches like Python's
// re.sub for these (never empty) patterns.
var re13a = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`([\{-\~\[-\x60 -\&\(-\+\:-\@\/])`), " $1 "},
	{regexp.MustCompile(`([^0-9])([\.,])`), "$1 $2 "},
	{regexp.MustCompile(`([\.,])([^0-9])`), " $1 $2"},
	{regexp.MustCompile(`([0-9])(-)`), "$1 $2 "},
}

func tokenize13aRegexp(line string) string {
	line = strings.ReplaceAll(line, "<skipped>", "")
	line = strings.ReplaceAll(line, "-\n", "")
	line = strings.ReplaceAll(line, "\n", " ")
	if strings.Contains(line, "&") {
		line = strings.ReplaceAll(line, "&quot;", `"`)
		line = strings.ReplaceAll(line, "&amp;", "&")
		line = strings.ReplaceAll(line, "&lt;", "<")
		line = strings.ReplaceAll(line, "&gt;", ">")
	}
	line = " " + line + " "
	for _, x := range re13a {
		line = x.re.ReplaceAllString(line, x.repl)
	}
	return strings.Join(pyFields(nil, line), " ")
}

func TestTokenize13aMatchesRegexp(t *testing.T) {
	for _, g := range loadPyGolden(t) {
		if a, b := Tokenize13a(g.In), tokenize13aRegexp(g.In); a != b {
			t.Errorf("%q: scanner %q, regexp %q", g.In, a, b)
		}
	}
}

func FuzzTokenize13a(f *testing.F) {
	for _, s := range []string{"Hello, world!", "1.a,b 3-4 x.,,y", "a...b", "&amp;quot; <skipped>-\nx", "ÄÖ.Ü,1-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // Python strings are always valid code points
		}
		if a, b := Tokenize13a(s), tokenize13aRegexp(s); a != b {
			t.Errorf("%q: scanner %q, regexp %q", s, a, b)
		}
	})
}

// rougeTokenizeRegexp is rouge_score's tokenize.tokenize with regexps.
var (
	reNonAlnum = regexp.MustCompile(`[^a-z0-9]+`)
	reSpaces   = regexp.MustCompile(`\s+`)
	reValid    = regexp.MustCompile(`^[a-z0-9]+$`)
)

func rougeTokenizeRegexp(text string) []string {
	text = pyLower(text)
	text = reNonAlnum.ReplaceAllString(text, " ")
	var out []string
	for _, tok := range reSpaces.Split(text, -1) {
		if reValid.MatchString(tok) {
			out = append(out, tok)
		}
	}
	return out
}

func FuzzRougeTokenize(f *testing.F) {
	for _, s := range []string{"Hello, World!", "İstanbul \u212a", "a_b-c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		if a, b := RougeTokenize(s, RougeOptions{}), rougeTokenizeRegexp(s); !equalStrings(a, b) {
			t.Errorf("%q: scanner %q, regexp %q", s, a, b)
		}
	})
}

func TestTokenizeChar(t *testing.T) {
	got := tokChar{}.tokens(nil, "ab c\u00a0d")
	if want := []string{"a", "b", "c", "d"}; !equalStrings(got, want) {
		t.Errorf("char tokens %q, want %q", got, want)
	}
}

func FuzzNormalizeAnswer(f *testing.F) {
	for _, s := range []string{"The Eiffel Tower!", "an  a the", "a.b the,", "x\x01the", "théâtre the"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		var n normalizer
		fast, ok := normalizeASCII(nil, s)
		if !ok {
			return
		}
		if slow := n.normalizeSlow(nil, s); string(fast) != string(slow) {
			t.Errorf("%q: fast %q, slow %q", s, fast, slow)
		}
	})
}

// checkSegmenter compares the ROUGE tokens the segmenter derives from 13a
// tokens with rouge_score's tokenizer run on the text itself.
func checkSegmenter(t *testing.T, text string, bleu BLEUOptions, rouge RougeOptions) {
	t.Helper()
	v := newVocab()
	b, err := newBLEUCorpus(bleu, v)
	if err != nil {
		t.Fatal(err)
	}
	seg := newSegmenter(b, newRougeScorer(rouge, v))
	for round := 0; round < 2; round++ { // second round: cached decompositions
		_, rids := seg.tokens(text, nil, nil)
		var got []string
		for _, id := range rids {
			got = append(got, string(v.key(id)))
		}
		if want := RougeTokenize(text, rouge); !equalStrings(got, want) {
			t.Fatalf("%q (%+v %+v): segmenter %q, direct %q", text, bleu, rouge, got, want)
		}
	}
}

func TestSegmenterMatchesDirect(t *testing.T) {
	for _, g := range loadPyGolden(t) {
		checkSegmenter(t, g.In, BLEUOptions{}, RougeOptions{})
		checkSegmenter(t, g.In, BLEUOptions{Lowercase: true}, RougeOptions{UseStemmer: true})
		checkSegmenter(t, g.In, BLEUOptions{Tokenize: TokIntl}, RougeOptions{})
	}
}

func FuzzSegmenter(f *testing.F) {
	for _, s := range []string{"Hello, World! 3.14-2", "&amp;x <skipped> a-\nb", "İK\u212a x.y,z", "meetings friends"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, stem bool) {
		if !utf8.ValidString(s) {
			return
		}
		checkSegmenter(t, s, BLEUOptions{}, RougeOptions{UseStemmer: stem})
	})
}
