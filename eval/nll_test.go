package eval

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// Two shards checked by hand:
//
//	shard a: {nll 10, tokens 5}, {nll 2, tokens 1}     -> Σnll 12, Σtok 6
//	shard b: {nll 0.5, tokens 4}                       -> Σnll 0.5, Σtok 4
//	total: Σnll 12.5, Σtok 10 -> perplexity = exp(1.25) = 3.4903429574618414
//
// The (wrong) mean of shard perplexities would be
// (exp(2) + exp(0.125)) / 2 = 4.2580...; the mean of per-line perplexities
// exp(2), exp(2), exp(0.125) is different again.
func TestPerplexityShards(t *testing.T) {
	var s NLLStats
	if err := s.ReadNLL(strings.NewReader("{\"nll_sum\": 10, \"tokens\": 5}\n\n{\"tokens\": 1, \"nll_sum\": 2.0, \"extra\": \"x\"}\n"), "a.jsonl"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadNLL(strings.NewReader("\ufeff{\"nll_sum\": 5e-1, \"tokens\": 4.0}\r\n"), "b.jsonl"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Perplexity()
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Exp(1.25); math.Abs(got-want) > 1e-12 || math.Abs(want-3.4903429574618414) > 1e-15 {
		t.Errorf("perplexity %v, want %v", got, want)
	}
	if s.Tokens != 10 || s.Lines != 3 {
		t.Errorf("tokens %d lines %d, want 10 3", s.Tokens, s.Lines)
	}
}

// Many tiny shards sum without drift: 1e6 lines of nll 0.1 over 1 token.
func TestPerplexityManyLines(t *testing.T) {
	var s NLLStats
	for i := 0; i < 1000000; i++ {
		s.Add(0.1, 1)
	}
	got, _ := s.Perplexity()
	if want := math.Exp(0.1); math.Abs(got-want) > 1e-14 {
		t.Errorf("perplexity %.17g, want %.17g", got, want)
	}
}

func TestNLLErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"nll_sum": 1, "tokens": 0}`, "x.jsonl:2: \"tokens\" must be > 0"},
		{`{"nll_sum": 1, "tokens": -3}`, "x.jsonl:2: \"tokens\" must be > 0"},
		{`{"nll_sum": 1, "tokens": 2.5}`, "must be an integer"},
		{`{"nll_sum": NaN, "tokens": 2}`, "x.jsonl:2: non-finite"},
		{`{"nll_sum": Infinity, "tokens": 2}`, "non-finite"},
		{`{"nll_sum": 1e999, "tokens": 2}`, "not a finite number"},
		{`{"nll_sum": -1, "tokens": 2}`, "negative"},
		{`{"nll_sum": 1}`, `missing "tokens"`},
		{`{"tokens": 1}`, `missing "nll_sum"`},
		{`{"nll_sum": "1", "tokens": 1}`, `"nll_sum" must be a number, got a string`},
		{`{"nll_sum": 1, "tokens": null}`, `"tokens" must be a number, got null`},
		{`[1, 2]`, "invalid JSON"},
		{`null`, "want an object"},
		{`{"nll_sum": 1, "tokens": 1`, "invalid JSON"},
	}
	for _, c := range cases {
		var s NLLStats
		err := s.ReadNLL(strings.NewReader("{\"nll_sum\": 1, \"tokens\": 1}\n"+c.in+"\n"), "x.jsonl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.in, err, c.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "x.jsonl:2: ") {
			t.Errorf("%s: error %q lacks file:line", c.in, err)
		}
	}
}

func TestPerplexityOverflow(t *testing.T) {
	var s NLLStats
	s.Add(1e6, 1)
	if _, err := s.Perplexity(); err == nil {
		t.Error("want overflow error")
	}
	var empty NLLStats
	if _, err := empty.Perplexity(); err == nil {
		t.Error("want error for no tokens")
	}
}

// The fast NLL scanner agrees with encoding/json wherever it accepts a line.
func FuzzNLLLine(f *testing.F) {
	for _, s := range []string{`{"nll_sum": 1.5, "tokens": 3}`, `{"tokens": 2, "nll_sum": 0, "shard": "a"}`,
		`{"nll_sum": -0.0e+1, "tokens": 1E2}`, `{"nll_sum": NaN, "tokens": 1}`, `{"nll_sum": 1, "tokens": 01}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		nll, tok, ok := fastNLL(line)
		var m map[string]json.RawMessage
		err := json.Unmarshal(line, &m)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("%q: fast scanner accepted, encoding/json: %v", line, err)
		}
		if string(m["nll_sum"]) != string(nll) || string(m["tokens"]) != string(tok) {
			t.Fatalf("%q: fast %s/%s, json %s/%s", line, nll, tok, m["nll_sum"], m["tokens"])
		}
	})
}
