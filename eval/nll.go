package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// NLLStats accumulates negative log-likelihood shards. Perplexity is
// exp(Σ nll_sum / Σ tokens) over every line of every shard: the token-
// weighted mean NLL, never an average of per-shard perplexities.
type NLLStats struct {
	NLLSum float64 // Σ nll_sum (Neumaier-compensated)
	Tokens int64   // Σ tokens
	Lines  int     // number of records read
	comp   float64
}

// Add adds one record.
func (s *NLLStats) Add(nll float64, tokens int64) {
	// Neumaier summation keeps many small shards exact enough.
	t := s.NLLSum + nll
	if math.Abs(s.NLLSum) >= math.Abs(nll) {
		s.comp += (s.NLLSum - t) + nll
	} else {
		s.comp += (nll - t) + s.NLLSum
	}
	s.NLLSum = t
	s.Tokens += tokens
	s.Lines++
}

// Perplexity returns exp(Σ nll_sum / Σ tokens).
func (s *NLLStats) Perplexity() (float64, error) {
	if s.Tokens <= 0 {
		return 0, errors.New("eval: no NLL tokens")
	}
	mean := (s.NLLSum + s.comp) / float64(s.Tokens)
	ppl := math.Exp(mean)
	if math.IsInf(ppl, 0) || math.IsNaN(ppl) {
		return 0, fmt.Errorf("eval: perplexity overflows (mean NLL per token %g)", mean)
	}
	return ppl, nil
}

// ReadNLL adds the records of one NLL JSONL stream to s. Each non-blank line
// must be {"nll_sum": x, "tokens": n} with x finite and >= 0 and n a
// positive integer; other keys are ignored. Errors carry name:line.
func (s *NLLStats) ReadNLL(r io.Reader, name string) error {
	lr := newLineReader(r, name)
	for {
		line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if isBlank(line) {
			continue
		}
		nll, tokens, err := parseNLLLine(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, lr.line, err)
		}
		s.Add(nll, tokens)
	}
}

// ReadNLLFile is ReadNLL on a file.
func (s *NLLStats) ReadNLLFile(path string) error {
	f, err := openInput(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.ReadNLL(f, path)
}

// parseNLLLine decodes and validates one NLL record.
func parseNLLLine(line []byte) (nll float64, tokens int64, err error) {
	nllText, tokText, ok := fastNLL(line)
	if !ok {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			if nonFinite(line) {
				return 0, 0, errors.New("non-finite number (NaN or Infinity) is not allowed")
			}
			return 0, 0, fmt.Errorf("invalid JSON: %v", err)
		}
		if m == nil {
			return 0, 0, errors.New("invalid JSON: want an object, got null")
		}
		n, okN := m["nll_sum"]
		t, okT := m["tokens"]
		if !okN {
			return 0, 0, errors.New(`missing "nll_sum"`)
		}
		if !okT {
			return 0, 0, errors.New(`missing "tokens"`)
		}
		if len(n) == 0 || !isNumberStart(n[0]) {
			return 0, 0, fmt.Errorf(`"nll_sum" must be a number, got %s`, describe(n))
		}
		if len(t) == 0 || !isNumberStart(t[0]) {
			return 0, 0, fmt.Errorf(`"tokens" must be a number, got %s`, describe(t))
		}
		nllText, tokText = n, t
	}
	// string(b) does not allocate here: strconv copies its input into errors.
	nll, err = strconv.ParseFloat(string(nllText), 64)
	if err != nil || math.IsInf(nll, 0) || math.IsNaN(nll) {
		return 0, 0, fmt.Errorf(`"nll_sum" %s is not a finite number`, nllText)
	}
	if nll < 0 {
		return 0, 0, fmt.Errorf(`"nll_sum" %s is negative (expected a negative log-likelihood sum)`, nllText)
	}
	tf, err := strconv.ParseFloat(string(tokText), 64)
	if err != nil || math.IsInf(tf, 0) || math.IsNaN(tf) {
		return 0, 0, fmt.Errorf(`"tokens" %s is not a finite number`, tokText)
	}
	if tf <= 0 {
		return 0, 0, fmt.Errorf(`"tokens" must be > 0, got %s`, tokText)
	}
	if tf != math.Trunc(tf) || tf > 1<<53 {
		return 0, 0, fmt.Errorf(`"tokens" must be an integer, got %s`, tokText)
	}
	return nll, int64(tf), nil
}

func isNumberStart(c byte) bool { return c == '-' || isDigit(c) }

// nonFinite reports whether line uses the NaN / Infinity literals Python's
// json module writes for non-finite floats.
func nonFinite(line []byte) bool {
	return bytes.Contains(line, []byte("NaN")) || bytes.Contains(line, []byte("Infinity"))
}

// fastNLL parses the plain {"nll_sum": x, "tokens": n} shape (keys in any
// order, other scalar keys ignored); false means: use the slow path.
func fastNLL(line []byte) (nll, tokens []byte, ok bool) {
	var f fastParser
	f.init(line)
	f.ws()
	if f.peek() != '{' {
		return nil, nil, false
	}
	f.i++
	haveN, haveT := false, false
	f.ws()
	if f.peek() == '}' {
		return nil, nil, false
	}
	for {
		f.ws()
		key, ok := f.key()
		if !ok {
			return nil, nil, false
		}
		f.ws()
		if f.peek() != ':' {
			return nil, nil, false
		}
		f.i++
		f.ws()
		switch k := string(key); k {
		case "nll_sum", "tokens":
			start := f.i
			if _, ok := f.numberEnd(); !ok {
				return nil, nil, false
			}
			s := f.b[start:f.i]
			if k == "nll_sum" {
				nll, haveN = s, true
			} else {
				tokens, haveT = s, true
			}
		default:
			if f.peek() == 'n' {
				if !f.lit("null") {
					return nil, nil, false
				}
			} else if _, _, ok := f.scalar(); !ok {
				return nil, nil, false
			}
		}
		f.ws()
		if f.peek() == ',' {
			f.i++
			continue
		}
		if f.peek() == '}' {
			f.i++
			break
		}
		return nil, nil, false
	}
	f.ws()
	if f.i != len(f.b) || !haveN || !haveT {
		return nil, nil, false
	}
	return nll, tokens, true
}
