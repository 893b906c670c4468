package dataprep

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// A small, allocation-free JSON scanner. It validates exactly the grammar of
// RFC 8259 (the same documents encoding/json accepts, with the same maximum
// nesting depth) and decodes only the strings the format parsers ask for,
// remembering where they are in the line so they can be redacted in place.

const maxJSONDepth = 10000 // encoding/json's limit

type scanner struct {
	b       []byte
	i       int
	err     string // first syntax error
	errOff  int
	scratch []byte // decoded strings that contained escapes
	// lone is the offset of the first \u escape of a UTF-16 surrogate
	// without its pair (-1: none): valid JSON, but not Unicode text.
	lone int
}

func (s *scanner) reset(b []byte) {
	s.b = b
	s.i = 0
	s.err = ""
	s.errOff = 0
	s.scratch = s.scratch[:0]
	s.lone = -1
}

func (s *scanner) fail(msg string) bool {
	if s.err == "" {
		s.err = msg
		s.errOff = s.i
	}
	return false
}

func (s *scanner) failf(format string, args ...any) bool {
	if s.err == "" {
		return s.fail(fmt.Sprintf(format, args...))
	}
	return false
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the byte at s.i, or 0 at the end of input.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) unexpected(context string) bool {
	if s.i >= len(s.b) {
		return s.fail("unexpected end of JSON input")
	}
	c := s.b[s.i]
	if c < utf8.RuneSelf {
		return s.failf("invalid character %q %s", c, context)
	}
	r, _ := utf8.DecodeRune(s.b[s.i:])
	return s.failf("invalid character %q %s", r, context)
}

// str parses the string starting at s.i (a '"'). With decode it returns the
// decoded value (aliasing the line when there are no escapes).
func (s *scanner) str(decode bool) ([]byte, bool) {
	b := s.b
	start := s.i + 1
	i := start
	for i < len(b) {
		c := b[i]
		if c == '"' {
			s.i = i + 1
			return b[start:i], true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			s.i = i
			return nil, s.failf("invalid character %q in string literal", c)
		}
		i++
	}
	if i >= len(b) {
		s.i = i
		return nil, s.fail("unexpected end of JSON input")
	}
	base := len(s.scratch)
	if decode {
		s.scratch = append(s.scratch, b[start:i]...)
	}
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			if !decode {
				return nil, true
			}
			return s.scratch[base:len(s.scratch):len(s.scratch)], true
		case c < 0x20:
			s.i = i
			return nil, s.failf("invalid character %q in string literal", c)
		case c != '\\':
			if decode {
				s.scratch = append(s.scratch, c)
			}
			i++
			continue
		}
		if i+1 >= len(b) {
			s.i = len(b)
			return nil, s.fail("unexpected end of JSON input")
		}
		var out byte
		switch b[i+1] {
		case '"', '\\', '/':
			out = b[i+1]
		case 'b':
			out = '\b'
		case 'f':
			out = '\f'
		case 'n':
			out = '\n'
		case 'r':
			out = '\r'
		case 't':
			out = '\t'
		case 'u':
			r := hex4(b[i+2:])
			if r < 0 {
				s.i = i + 2
				for k := 0; k < 4 && s.i < len(b) && hexVal(b[s.i]) >= 0; k++ {
					s.i++
				}
				return nil, s.unexpected("in \\u hexadecimal character escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
					r2 = hex4(b[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					i += 6
					r = dec
				} else {
					r = utf8.RuneError
					if s.lone < 0 {
						s.lone = i - 6
					}
				}
			}
			if decode {
				s.scratch = utf8.AppendRune(s.scratch, r)
			}
			continue
		default:
			s.i = i + 1
			return nil, s.unexpected("in string escape code")
		}
		if decode {
			s.scratch = append(s.scratch, out)
		}
		i += 2
	}
	s.i = i
	return nil, s.fail("unexpected end of JSON input")
}

func hexVal(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		v := hexVal(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (s *scanner) num() bool {
	b := s.b
	i := s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		s.i = i
		return s.fail("unexpected end of JSON input")
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		s.i = i
		return s.unexpected("in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			s.i = i
			return s.unexpected("after decimal point in numeric literal")
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
			s.i = i
			return s.unexpected("in exponent of numeric literal")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	s.i = i
	return true
}

func (s *scanner) lit(word string) bool {
	for k := 0; k < len(word); k++ {
		if s.i >= len(s.b) || s.b[s.i] != word[k] {
			return s.unexpected("in literal " + word)
		}
		s.i++
	}
	return true
}

// value skips (and validates) one value at s.i; depth is the depth of the
// enclosing container.
func (s *scanner) value(depth int) bool {
	s.ws()
	if s.i >= len(s.b) {
		return s.fail("unexpected end of JSON input")
	}
	switch c := s.b[s.i]; c {
	case '{':
		return s.object(depth+1, nil)
	case '[':
		return s.array(depth+1, nil)
	case '"':
		_, ok := s.str(false)
		return ok
	case 't':
		return s.lit("true")
	case 'f':
		return s.lit("false")
	case 'n':
		return s.lit("null")
	default:
		if c == '-' || isDigit(c) {
			return s.num()
		}
		return s.unexpected("looking for beginning of value")
	}
}

// object parses the object at s.i (a '{') at the given depth. For each
// member, fn (if not nil) is called with the decoded key and s.i at the
// first byte of the value; fn must consume the value.
func (s *scanner) object(depth int, fn func(key []byte) bool) bool {
	if depth > maxJSONDepth {
		return s.fail("exceeded max depth")
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		if s.peek() != '"' {
			return s.unexpected("looking for beginning of object key string")
		}
		key, ok := s.str(fn != nil)
		if !ok {
			return false
		}
		s.ws()
		if s.peek() != ':' {
			return s.unexpected("after object key")
		}
		s.i++
		s.ws()
		if fn != nil {
			if s.i >= len(s.b) {
				return s.fail("unexpected end of JSON input")
			}
			if !fn(key) {
				return false
			}
		} else if !s.value(depth) {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return s.unexpected("after object key:value pair")
		}
	}
}

// array parses the array at s.i (a '[') at the given depth. For each
// element, fn (if not nil) is called with its index and s.i at its first
// byte; fn must consume the element.
func (s *scanner) array(depth int, fn func(idx int) bool) bool {
	if depth > maxJSONDepth {
		return s.fail("exceeded max depth")
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
		return true
	}
	for idx := 0; ; idx++ {
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of JSON input")
		}
		if fn != nil {
			if !fn(idx) {
				return false
			}
		} else if !s.value(depth) {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return s.unexpected("after array element")
		}
	}
}

// valid reports whether b is exactly one JSON value (with optional
// surrounding whitespace).
func (s *scanner) valid(b []byte) bool {
	s.reset(b)
	if !s.value(0) {
		return false
	}
	s.ws()
	if s.i != len(s.b) {
		return s.unexpected("after top-level value")
	}
	return true
}

// jsonTypeName names the JSON type of a value starting with c.
func jsonTypeName(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
