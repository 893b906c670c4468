package eval

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// BLEU tokenizers, as in sacrebleu/tokenizers/. The default, "13a", is the
// mteval-v13a tokenizer (tokenizer_13a.py + tokenizer_re.py). sacrebleu
// applies the four regular expressions of tokenizer_re.py one after the
// other with re.sub; tok13a does the same with hand-written scanners, one
// per expression. Each expression matches exactly two characters (or one,
// for the first), so "leftmost, non-overlapping" matching is a single
// left-to-right scan that skips past each match. The scanners work on UTF-8
// bytes; this is equivalent to Python's code-point matching because every
// character the patterns name is ASCII (see the fuzz test against the
// regexp versions in tokenize_bleu_test.go).

// Tokenizer names accepted in BLEUOptions.Tokenize.
const (
	Tok13a  = "13a"
	TokNone = "none"
	TokChar = "char"
	TokIntl = "intl"
)

// bleuTokenizer appends the tokens of one (already lower-cased and
// rstripped) segment to dst.
type bleuTokenizer interface {
	tokens(dst []string, line string) []string
}

func newBLEUTokenizer(name string) (bleuTokenizer, error) {
	switch name {
	case "", Tok13a:
		return &tok13a{}, nil
	case TokNone:
		return tokNone{}, nil
	case TokChar:
		return tokChar{}, nil
	case TokIntl:
		return tokIntl{}, nil
	}
	return nil, fmt.Errorf("eval: unknown BLEU tokenizer %q (want 13a, none, char or intl)", name)
}

type tokNone struct{}

func (tokNone) tokens(dst []string, line string) []string { return pyFields(dst, line) }

// tokChar is tokenizer_char.py: every character is a token (whitespace
// characters disappear in the final split).
type tokChar struct{}

func (tokChar) tokens(dst []string, line string) []string {
	for i, r := range line {
		if isPySpace(r) {
			continue
		}
		dst = append(dst, line[i:i+utf8.RuneLen(r)])
	}
	return dst
}

// tokIntl is tokenizer_intl.py (mteval-v14 international tokenization). It
// relies on Unicode categories, taken from Go's tables; it is not on the
// default path, so it uses the regular expressions directly.
type tokIntl struct{}

var intlRes = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(\PN)(\pP)`), "$1 $2 "},
	{regexp.MustCompile(`(\pP)(\PN)`), " $1 $2"},
	{regexp.MustCompile(`(\pS)`), " $1 "},
}

func (tokIntl) tokens(dst []string, line string) []string {
	for _, x := range intlRes {
		line = x.re.ReplaceAllString(line, x.repl)
	}
	return pyFields(dst, line)
}

// tok13a is Tokenizer13a. It keeps scratch buffers, so it is not safe for
// concurrent use.
type tok13a struct {
	a, b []byte
	pos  []int
}

// isSep13a marks the characters of the first tokenizer_re.py expression,
// [\{-\~\[-\` -\&\(-\+\:-\@\/], which are split off as separate tokens.
var isSep13a = func() (t [256]bool) {
	for _, rg := range [][2]byte{{'{', '~'}, {'[', '`'}, {' ', '&'}, {'(', '+'}, {':', '@'}, {'/', '/'}} {
		for c := int(rg[0]); c <= int(rg[1]); c++ {
			t[c] = true
		}
	}
	return t
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// preprocess13a is the language-independent part of Tokenizer13a.__call__.
// changed reports that non-whitespace characters were removed or replaced.
func preprocess13a(line string) (out string, changed bool) {
	if strings.Contains(line, "<skipped>") {
		line = strings.ReplaceAll(line, "<skipped>", "")
		changed = true
	}
	if strings.IndexByte(line, '\n') >= 0 {
		if strings.Contains(line, "-\n") {
			line = strings.ReplaceAll(line, "-\n", "")
			changed = true
		}
		line = strings.ReplaceAll(line, "\n", " ")
	}
	if strings.IndexByte(line, '&') >= 0 {
		orig := line
		line = strings.ReplaceAll(line, "&quot;", `"`)
		line = strings.ReplaceAll(line, "&amp;", "&")
		line = strings.ReplaceAll(line, "&lt;", "<")
		line = strings.ReplaceAll(line, "&gt;", ">")
		changed = changed || line != orig
	}
	return line, changed
}

// Byte classes for the 13a scanners.
const (
	c13Sep   = 1 << iota // split off by the first expression
	c13Punct             // '.' or ','
	c13Dash              // '-'
)

var class13a = func() (t [256]uint8) {
	for c := range 256 {
		if isSep13a[c] {
			t[c] |= c13Sep
		}
	}
	t['.'] |= c13Punct
	t[','] |= c13Punct
	t['-'] |= c13Dash
	return t
}()

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, n+n/2)
	}
	return b[:n]
}

// tokenize returns the tokenized line, before the final whitespace split,
// in a buffer owned by t.
func (t *tok13a) tokenize(line string) []byte {
	b, _ := t.tokenizeChanged(line)
	return b
}

// tokenizeChanged is tokenize, also reporting whether preprocessing
// removed or replaced characters.
func (t *tok13a) tokenizeChanged(line string) ([]byte, bool) {
	line, changed := preprocess13a(line)
	// f' {line} ' and the first expression, r' \1 '. Output <= 3n+2.
	a := grow(t.a, 3*len(line)+2)
	a[0] = ' '
	n := 1
	var seen uint8
	pos := t.pos[:0] // positions of '.' and ',' in a
	for i := 0; i < len(line); {
		j := i
		for j < len(line) && class13a[line[j]] == 0 {
			j++
		}
		n += copy(a[n:], line[i:j])
		if j == len(line) {
			break
		}
		c := line[j]
		k := class13a[c]
		seen |= k
		if k&c13Sep != 0 {
			a[n], a[n+1], a[n+2] = ' ', c, ' '
			n += 3
		} else {
			if k&c13Punct != 0 {
				pos = append(pos, n)
			}
			a[n] = c
			n++
		}
		i = j + 1
	}
	a[n] = ' '
	n++
	a = a[:n]
	b := t.b
	if seen&c13Punct != 0 {
		// Both expressions only match at a '.' or ',', whose positions pos
		// lists; the text between matches is copied in blocks. Unmatched
		// punctuation moves by the current output-input offset m-r.
		//
		// ([^0-9])([\.,]) -> r'\1 \2 ': the first match at or after r is the
		// first [.,] at k >= r+1 whose predecessor is not a digit.
		b = grow(b, 2*len(a))
		m, r := 0, 0
		for x, k := range pos {
			if k-1 < r || isDigit(a[k-1]) {
				pos[x] = k + m - r
				continue
			}
			m += copy(b[m:], a[r:k-1])
			b[m], b[m+1], b[m+2], b[m+3] = a[k-1], ' ', a[k], ' '
			pos[x] = m + 2
			m += 4
			r = k + 1
		}
		m += copy(b[m:], a[r:])
		a, b = b[:m], a
		// ([\.,])([^0-9]) -> r' \1 \2': the first [.,] at p >= r followed by
		// a non-digit.
		b = grow(b, 2*len(a))
		m, r = 0, 0
		for _, p := range pos {
			if p < r || p+1 >= len(a) || isDigit(a[p+1]) {
				continue
			}
			m += copy(b[m:], a[r:p])
			b[m], b[m+1], b[m+2], b[m+3] = ' ', a[p], ' ', a[p+1]
			m += 4
			r = p + 2
		}
		m += copy(b[m:], a[r:])
		a, b = b[:m], a
	}
	if seen&c13Dash != 0 {
		// ([0-9])(-) -> r'\1 \2 ': the first '-' at k >= r+1 preceded by a
		// digit.
		b = grow(b, 2*len(a))
		m, r := 0, 0
		for k := 1; k < len(a); k++ {
			if a[k] != '-' || k-1 < r || !isDigit(a[k-1]) {
				continue
			}
			m += copy(b[m:], a[r:k-1])
			b[m], b[m+1], b[m+2], b[m+3] = a[k-1], ' ', '-', ' '
			m += 4
			r = k + 1
		}
		m += copy(b[m:], a[r:])
		a, b = b[:m], a
	}
	t.a, t.b, t.pos = a, b, pos
	return a, changed
}

func (t *tok13a) tokens(dst []string, line string) []string {
	buf := t.tokenize(line)
	// The tokens must outlive the scratch buffer.
	return pyFields(dst, string(buf))
}

// appendFieldsBytes is pyFields over a byte slice; the returned sub-slices
// alias b.
func appendFieldsBytes(dst [][]byte, b []byte) [][]byte {
	start := -1
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if asciiPySpace[c] {
				if start >= 0 {
					dst = append(dst, b[start:i])
					start = -1
				}
			} else if start < 0 {
				start = i
			}
			i++
			continue
		}
		var sp bool
		var size int
		{
			var r rune
			r, size = utf8.DecodeRune(b[i:])
			sp = isPySpace(r)
		}
		if sp {
			if start >= 0 {
				dst = append(dst, b[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		dst = append(dst, b[start:])
	}
	return dst
}

// Tokenize13a returns sacrebleu's 13a tokenization of line (the string
// Tokenizer13a()(line) returns: tokens joined by single spaces).
func Tokenize13a(line string) string {
	var t tok13a
	return strings.Join(pyFields(nil, string(t.tokenize(line))), " ")
}
