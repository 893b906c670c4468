package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// Prediction is one line of a predictions JSONL file:
//
//	{"prediction": "...", "references": ["...", ...]}
//	{"prediction": "...", "reference": "..."}
//	{"prediction": "...", "label": "positive"}
//
// with optional "id" (string or number) and "prompt". "references" and
// "reference" may both be given (the single reference is appended). "label"
// may be a string, number or boolean; its JSON text is used for numbers and
// booleans. Unknown keys are ignored.
type Prediction struct {
	ID         string
	Prompt     string
	Prediction string
	References []string
	Label      string
	HasLabel   bool

	File string // source file name
	Line int    // 1-based line in File
}

// PredictionReader streams Predictions from a JSONL source. Blank lines are
// skipped. Errors carry file:line.
type PredictionReader struct {
	lr      *lineReader
	rec     Prediction
	maxText int
}

// DefaultMaxTextBytes bounds one prediction or reference. A record line
// may be up to RecordBytesPerText times the bound (it holds a prediction,
// references and a prompt).
const (
	DefaultMaxTextBytes = 1 << 20
	RecordBytesPerText  = 8
)

// NewPredictionReader reads predictions from r; name is used in errors.
// Predictions and references are bounded by DefaultMaxTextBytes.
func NewPredictionReader(r io.Reader, name string) *PredictionReader {
	return NewPredictionReaderLimit(r, name, DefaultMaxTextBytes)
}

// NewPredictionReaderLimit is NewPredictionReader bounding predictions and
// references to maxText bytes (0: DefaultMaxTextBytes). A longer one, or a
// line longer than RecordBytesPerText times that, is an error naming the
// record: it is refused before it is held or scored.
func NewPredictionReaderLimit(r io.Reader, name string, maxText int) *PredictionReader {
	if maxText <= 0 {
		maxText = DefaultMaxTextBytes
	}
	lr := newLineReader(r, name)
	lr.max = min(RecordBytesPerText*maxText+4096, maxLineBytes)
	lr.why = fmt.Sprintf(" (predictions and references are limited to %d bytes each: eval.max_text_bytes or --max-text-bytes)", maxText)
	return &PredictionReader{lr: lr, maxText: maxText}
}

// Next returns the next prediction, or io.EOF after the last one. The
// returned pointer, and the slices in it, are only valid until the next
// call; copy what must be kept (see Prediction.Clone).
func (pr *PredictionReader) Next() (*Prediction, error) {
	for {
		line, err := pr.lr.next()
		if err != nil {
			return nil, err
		}
		if isBlank(line) {
			continue
		}
		refs := pr.rec.References[:0]
		pr.rec = Prediction{References: refs, File: pr.lr.name, Line: pr.lr.line}
		if err := parsePrediction(line, &pr.rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", pr.lr.name, pr.lr.line, err)
		}
		if err := pr.checkSize(&pr.rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", pr.lr.name, pr.lr.line, err)
		}
		return &pr.rec, nil
	}
}

// checkSize refuses a prediction or reference over the limit.
func (pr *PredictionReader) checkSize(p *Prediction) error {
	what, n := "prediction", len(p.Prediction)
	for i, r := range p.References {
		if len(r) > n {
			what, n = fmt.Sprintf("reference %d", i+1), len(r)
		}
	}
	if n <= pr.maxText {
		return nil
	}
	id := ""
	if p.ID != "" {
		id = fmt.Sprintf(" (id %q)", p.ID)
	}
	return fmt.Errorf("record%s: %s is %d bytes, over the limit of %d (eval.max_text_bytes or --max-text-bytes)", id, what, n, pr.maxText)
}

// Clone returns a deep copy of p.
func (p *Prediction) Clone() Prediction {
	c := *p
	c.References = append([]string(nil), p.References...)
	return c
}

// ReadPredictionsFile reads all predictions of a JSONL file.
func ReadPredictionsFile(path string) ([]Prediction, error) {
	f, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Prediction
	pr := NewPredictionReader(f, path)
	for {
		p, err := pr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p.Clone())
	}
}

// parsePrediction decodes one JSONL line into p (whose References slice may
// be reused). A hand-written parser handles the common shape; anything it
// does not handle is decoded again with encoding/json, which also provides
// the error messages, so both paths accept exactly the same documents.
func parsePrediction(line []byte, p *Prediction) error {
	var fp fastParser
	fp.init(line)
	if fp.parse(p) {
		return nil
	}
	*p = Prediction{References: p.References[:0], File: p.File, Line: p.Line}
	return slowParsePrediction(line, p)
}

// errNoPrediction is returned for a line without a "prediction" key.
var errNoPrediction = errors.New(`missing "prediction"`)

// slowParsePrediction decodes line with encoding/json.
func slowParsePrediction(line []byte, p *Prediction) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return fmt.Errorf("invalid JSON: %v", err)
	}
	if m == nil {
		return errors.New("invalid JSON: want an object, got null")
	}
	raw, ok := m["prediction"]
	if !ok {
		return errNoPrediction
	}
	if err := json.Unmarshal(raw, &p.Prediction); err != nil || isNull(raw) {
		return fmt.Errorf(`"prediction" must be a string, got %s`, describe(raw))
	}
	if raw, ok := m["references"]; ok && !isNull(raw) {
		var refs []*string
		if err := json.Unmarshal(raw, &refs); err != nil {
			return fmt.Errorf(`"references" must be an array of strings, got %s`, describe(raw))
		}
		for _, r := range refs {
			if r != nil {
				p.References = append(p.References, *r)
			}
		}
	}
	if raw, ok := m["reference"]; ok && !isNull(raw) {
		var r string
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf(`"reference" must be a string, got %s`, describe(raw))
		}
		p.References = append(p.References, r)
	}
	if raw, ok := m["label"]; ok && !isNull(raw) {
		s, err := scalarText(raw)
		if err != nil {
			return fmt.Errorf(`"label" must be a string, number or boolean, got %s`, describe(raw))
		}
		p.Label, p.HasLabel = s, true
	}
	if raw, ok := m["id"]; ok && !isNull(raw) {
		s, err := scalarText(raw)
		if err != nil || raw[0] == 't' || raw[0] == 'f' {
			return fmt.Errorf(`"id" must be a string or number, got %s`, describe(raw))
		}
		p.ID = s
	}
	if raw, ok := m["prompt"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &p.Prompt); err != nil {
			return fmt.Errorf(`"prompt" must be a string, got %s`, describe(raw))
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// scalarText returns a JSON string's value, or the JSON text of a number or
// boolean.
func scalarText(raw json.RawMessage) (string, error) {
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case 't', 'f':
		return string(raw), nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	}
	return "", errors.New("not a scalar")
}

func describe(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// fastParser decodes the common prediction object shape without
// reflection. parse returns false for anything unusual (escapes it does
// not handle, invalid UTF-8, nested values under unknown keys, any syntax
// error), and the caller falls back to encoding/json.
type fastParser struct {
	b   []byte
	i   int
	tmp []byte
}

func (f *fastParser) init(b []byte) { f.b, f.i = b, 0 }

func (f *fastParser) ws() {
	for f.i < len(f.b) {
		switch f.b[f.i] {
		case ' ', '\t', '\r', '\n':
			f.i++
		default:
			return
		}
	}
}

func (f *fastParser) peek() byte {
	if f.i < len(f.b) {
		return f.b[f.i]
	}
	return 0
}

// str decodes a JSON string starting at f.i (which must be '"').
func (f *fastParser) str() (string, bool) {
	if f.peek() != '"' {
		return "", false
	}
	f.i++
	start := f.i
	ascii := true
	for f.i < len(f.b) {
		c := f.b[f.i]
		switch {
		case c == '"':
			s := f.b[start:f.i]
			f.i++
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\':
			return f.strEscaped(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		f.i++
	}
	return "", false
}

// key returns an object key without allocating; keys with escapes or
// non-ASCII bytes go through str (and are rare).
func (f *fastParser) key() ([]byte, bool) {
	if f.peek() != '"' {
		return nil, false
	}
	for j := f.i + 1; j < len(f.b); j++ {
		c := f.b[j]
		if c == '"' {
			k := f.b[f.i+1 : j]
			f.i = j + 1
			return k, true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			s, ok := f.str()
			return []byte(s), ok
		}
	}
	return nil, false
}

// strEscaped continues decoding a string with escapes from f.i.
func (f *fastParser) strEscaped(start int) (string, bool) {
	buf := append(f.tmp[:0], f.b[start:f.i]...)
	for f.i < len(f.b) {
		c := f.b[f.i]
		switch {
		case c == '"':
			f.i++
			f.tmp = buf
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			f.i++
			continue
		}
		if f.i+1 >= len(f.b) {
			return "", false
		}
		e := f.b[f.i+1]
		f.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := f.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// A valid pair decodes to one rune; anything else is left
				// to encoding/json (which substitutes U+FFFD).
				if f.i+1 < len(f.b) && f.b[f.i] == '\\' && f.b[f.i+1] == 'u' {
					f.i += 2
					r2, ok := f.hex4()
					if !ok {
						return "", false
					}
					d := utf16.DecodeRune(r, r2)
					if d == utf8.RuneError {
						return "", false
					}
					r = d
				} else {
					return "", false
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (f *fastParser) hex4() (rune, bool) {
	if f.i+4 > len(f.b) {
		return 0, false
	}
	var r rune
	for _, c := range f.b[f.i : f.i+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	f.i += 4
	return r, true
}

func (f *fastParser) lit(s string) bool {
	if bytes.HasPrefix(f.b[f.i:], []byte(s)) {
		f.i += len(s)
		return true
	}
	return false
}

// number scans a JSON number (strict grammar) and returns its text.
func (f *fastParser) number() (string, bool) {
	start := f.i
	if _, ok := f.numberEnd(); !ok {
		return "", false
	}
	return string(f.b[start:f.i]), true
}

// numberEnd scans a JSON number (strict grammar), advancing f.i past it.
func (f *fastParser) numberEnd() (int, bool) {
	b := f.b
	i := f.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, false
	}
	switch {
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	f.i = i
	return i, true
}

// scalar parses a string, number, true or false; isStr tells which.
func (f *fastParser) scalar() (s string, isStr, ok bool) {
	switch c := f.peek(); {
	case c == '"':
		s, ok = f.str()
		return s, true, ok
	case c == 't':
		return "true", false, f.lit("true")
	case c == 'f':
		return "false", false, f.lit("false")
	case c == '-' || isDigit(c):
		s, ok = f.number()
		return s, false, ok
	}
	return "", false, false
}

// parse decodes an object into p; it reports false if the line needs the
// slow path (which includes every error).
func (f *fastParser) parse(p *Prediction) bool {
	f.ws()
	if f.peek() != '{' {
		return false
	}
	f.i++
	havePred := false
	var refs []string // "references" (last occurrence wins)
	var ref *string   // "reference"
	haveRefs := false
	p.References = p.References[:0]
	f.ws()
	if f.peek() == '}' {
		f.i++
		goto end
	}
	for {
		f.ws()
		key, ok := f.key()
		if !ok {
			return false
		}
		f.ws()
		if f.peek() != ':' {
			return false
		}
		f.i++
		f.ws()
		isNullVal := f.peek() == 'n'
		if isNullVal {
			if !f.lit("null") {
				return false
			}
		}
		switch string(key) {
		case "prediction":
			if isNullVal {
				return false
			}
			s, ok := f.str()
			if !ok {
				return false
			}
			p.Prediction, havePred = s, true
		case "references":
			haveRefs = false
			refs = p.References[:0]
			if isNullVal {
				break
			}
			if f.peek() != '[' {
				return false
			}
			f.i++
			f.ws()
			if f.peek() == ']' {
				f.i++
			} else {
				for {
					f.ws()
					if f.peek() == 'n' {
						if !f.lit("null") {
							return false
						}
					} else {
						s, ok := f.str()
						if !ok {
							return false
						}
						refs = append(refs, s)
					}
					f.ws()
					if f.peek() == ',' {
						f.i++
						continue
					}
					if f.peek() == ']' {
						f.i++
						break
					}
					return false
				}
			}
			haveRefs = true
			p.References = refs
		case "reference":
			ref = nil
			if isNullVal {
				break
			}
			s, ok := f.str()
			if !ok {
				return false
			}
			ref = &s
		case "label":
			p.Label, p.HasLabel = "", false
			if isNullVal {
				break
			}
			s, _, ok := f.scalar()
			if !ok {
				return false
			}
			p.Label, p.HasLabel = s, true
		case "id":
			p.ID = ""
			if isNullVal {
				break
			}
			if c := f.peek(); c == 't' || c == 'f' {
				return false // booleans are not ids: slow path reports it
			}
			s, _, ok := f.scalar()
			if !ok {
				return false
			}
			p.ID = s
		case "prompt":
			p.Prompt = ""
			if isNullVal {
				break
			}
			s, ok := f.str()
			if !ok {
				return false
			}
			p.Prompt = s
		default:
			if !isNullVal {
				if _, _, ok := f.scalar(); !ok {
					return false // nested values: slow path
				}
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
		return false
	}
end:
	f.ws()
	if f.i != len(f.b) || !havePred {
		return false
	}
	if !haveRefs {
		p.References = p.References[:0]
	}
	if ref != nil {
		p.References = append(p.References, *ref)
	}
	return true
}
