package eval

import (
	"io"
	"reflect"
	"strings"
	"testing"
)

func readAll(t *testing.T, in string) ([]Prediction, error) {
	t.Helper()
	pr := NewPredictionReader(strings.NewReader(in), "p.jsonl")
	var out []Prediction
	for {
		p, err := pr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, p.Clone())
	}
}

func TestPredictionReader(t *testing.T) {
	in := "\ufeff" + `{"prediction": "Paris", "references": ["Paris", "paris, France"], "id": "q1", "prompt": "Capital?"}` + "\r\n" +
		"\n   \n" +
		`{"prediction": "4", "reference": "four", "id": 7}` + "\n" +
		`{"prediction": "pos", "label": "positive", "meta": {"a": [1, 2]}}` + "\n" +
		`{"prediction": "1", "label": 1}` + "\n" +
		`{"prediction": "x\u00e9\ud83d\ude00\n\"q\"", "references": ["a", null, "b"], "reference": "c", "label": null}` + "\n" +
		`{"references": ["r"], "prediction": "p"}`
	got, err := readAll(t, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []Prediction{
		{ID: "q1", Prompt: "Capital?", Prediction: "Paris", References: []string{"Paris", "paris, France"}, Line: 1},
		{ID: "7", Prediction: "4", References: []string{"four"}, Line: 4},
		{Prediction: "pos", References: []string{}, Label: "positive", HasLabel: true, Line: 5},
		{Prediction: "1", References: []string{}, Label: "1", HasLabel: true, Line: 6},
		{Prediction: "xé😀\n\"q\"", References: []string{"a", "b", "c"}, Line: 7},
		{Prediction: "p", References: []string{"r"}, Line: 8},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		want[i].File = "p.jsonl"
		g := got[i]
		if len(g.References) == 0 {
			g.References = []string{}
		}
		if !reflect.DeepEqual(g, want[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}
}

func TestPredictionReaderErrors(t *testing.T) {
	cases := []struct{ line, want string }{
		{`{"references": ["a"]}`, `missing "prediction"`},
		{`{"prediction": null}`, `"prediction" must be a string, got null`},
		{`{"prediction": 3}`, `"prediction" must be a string, got a number`},
		{`{"prediction": "a", "references": "a"}`, `"references" must be an array of strings, got a string`},
		{`{"prediction": "a", "references": [1]}`, `"references" must be an array of strings`},
		{`{"prediction": "a", "reference": ["a"]}`, `"reference" must be a string, got an array`},
		{`{"prediction": "a", "label": {}}`, `"label" must be a string, number or boolean, got an object`},
		{`{"prediction": "a", "id": true}`, `"id" must be a string or number, got a boolean`},
		{`{"prediction": "a", "prompt": 1}`, `"prompt" must be a string`},
		{`{"prediction": "a"`, "invalid JSON"},
		{`{"prediction": "a"} x`, "invalid JSON"},
		{`["prediction"]`, "invalid JSON"},
		{`null`, "want an object"},
		{"{\"prediction\": \"a\tb\"}", "invalid JSON"},
	}
	for _, c := range cases {
		_, err := readAll(t, `{"prediction": "ok", "reference": "ok"}`+"\n"+c.line+"\n")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "p.jsonl:2: ") {
			t.Errorf("%s: error %v, want p.jsonl:2: ... %q", c.line, err, c.want)
		}
	}
}

// The fast parser and encoding/json agree wherever the fast parser accepts
// a line.
func checkParsersAgree(t *testing.T, line []byte) {
	var fast Prediction
	var fp fastParser
	fp.init(line)
	if !fp.parse(&fast) {
		return
	}
	var slow Prediction
	if err := slowParsePrediction(line, &slow); err != nil {
		t.Fatalf("%q: fast parser accepted, encoding/json: %v", line, err)
	}
	if len(fast.References) == 0 && len(slow.References) == 0 {
		fast.References, slow.References = nil, nil
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q:\nfast %+v\nslow %+v", line, fast, slow)
	}
}

func TestFastParserAgrees(t *testing.T) {
	for _, l := range []string{
		`{"prediction": "a", "references": ["b", null], "reference": "c", "id": -1.5e3, "label": false, "x": null, "y": 2}`,
		`{"prediction": "a", "prediction": "b", "references": ["x"], "references": null}`,
		`{"prediction": "\u00e9\/\b\f\n\r\t\\", "label": "\ud83d\ude00"}`,
		` { "prediction" : "" } `,
	} {
		checkParsersAgree(t, []byte(l))
	}
}

func FuzzPredictionLine(f *testing.F) {
	for _, s := range []string{
		`{"prediction": "Paris", "references": ["Paris"], "id": "q1"}`,
		`{"prediction": "a", "reference": "b", "label": 1, "prompt": "p"}`,
		`{"prediction": "\ud800", "references": [null, "x"]}`,
		`{"prediction": "a", "meta": {"k": [1, {"z": null}]}}`,
		`{"nll_sum": 1.5, "tokens": 3}`,
		"{\"prediction\": \"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkParsersAgree(t, line)
		// Neither reader may panic, whatever the input.
		pr := NewPredictionReader(strings.NewReader(string(line)), "f")
		for i := 0; i < 1000; i++ {
			if _, err := pr.Next(); err != nil {
				break
			}
		}
		var s NLLStats
		_ = s.ReadNLL(strings.NewReader(string(line)), "f")
		_, _, _ = parseNLLLine(line)
	})
}
