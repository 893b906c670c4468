package eval

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Helpers reproducing the Python str methods the reference implementations
// rely on (str.split(), str.rstrip(), str.lower()), so that tokenisation is
// identical to sacrebleu / rouge_score / the SQuAD script and not merely close.

// asciiPySpace marks the ASCII characters for which Python's str.isspace() is
// true: \t \n \v \f \r, the four information separators 0x1c-0x1f, and space.
var asciiPySpace = [128]bool{
	'\t': true, '\n': true, '\v': true, '\f': true, '\r': true,
	0x1c: true, 0x1d: true, 0x1e: true, 0x1f: true, ' ': true,
}

// isPySpace reports whether r is whitespace for Python's str.split() and
// str.strip() (characters with bidi class WS, B or S, or category Zs).
func isPySpace(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiPySpace[r]
	}
	switch {
	case r == 0x85, r == 0xa0, r == 0x1680:
		return true
	case r >= 0x2000 && r <= 0x200a:
		return true
	case r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

// pyRStrip is Python's str.rstrip() with no arguments.
func pyRStrip(s string) string {
	for len(s) > 0 {
		c := s[len(s)-1]
		if c < utf8.RuneSelf {
			if !asciiPySpace[c] {
				return s
			}
			s = s[:len(s)-1]
			continue
		}
		r, size := utf8.DecodeLastRuneInString(s)
		if !isPySpace(r) {
			return s
		}
		s = s[:len(s)-size]
	}
	return s
}

// pyFields splits s like Python's str.split() with no arguments, appending
// the fields to dst.
func pyFields(dst []string, s string) []string {
	start := -1
	for i := 0; i < len(s); {
		c := s[i]
		var sp bool
		size := 1
		if c < utf8.RuneSelf {
			sp = asciiPySpace[c]
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			sp = isPySpace(r)
		}
		if sp {
			if start >= 0 {
				dst = append(dst, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		dst = append(dst, s[start:])
	}
	return dst
}

// isASCII reports whether s has only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// pyLower is Python's str.lower(): the full Unicode lower-case mapping,
// which differs from strings.ToLower for U+0130 (LATIN CAPITAL LETTER I WITH
// DOT ABOVE, which becomes "i\u0307") and for the final-sigma rule (Σ at the
// end of a word becomes ς). Unicode table versions may differ slightly
// between Go and a given CPython release.
func pyLower(s string) string {
	if isASCII(s) {
		hasUpper := false
		for i := 0; i < len(s); i++ {
			if c := s[i]; 'A' <= c && c <= 'Z' {
				hasUpper = true
				break
			}
		}
		if !hasUpper {
			return s
		}
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i, r := range s {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3a3:
			if finalSigma(s, i) {
				b.WriteRune(0x3c2)
			} else {
				b.WriteRune(0x3c3)
			}
		default:
			if r < utf8.RuneSelf {
				if 'A' <= r && r <= 'Z' {
					r += 'a' - 'A'
				}
				b.WriteByte(byte(r))
			} else {
				b.WriteRune(unicode.ToLower(r))
			}
		}
	}
	return b.String()
}

// isCased approximates the Unicode "Cased" property used by CPython.
func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r)
}

// isCaseIgnorable approximates the Unicode "Case_Ignorable" property.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', 0xb7, 0x2018, 0x2019, 0x2024, 0xfe52, 0xff07, 0xff0e:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// finalSigma implements the Final_Sigma condition for the Σ at byte offset
// i of s: preceded by a cased letter (skipping case-ignorables) and not
// followed by one.
func finalSigma(s string, i int) bool {
	j := i
	before := false
	for j > 0 {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if isCaseIgnorable(r) {
			continue
		}
		before = isCased(r)
		break
	}
	if !before {
		return false
	}
	j = i + len("Σ")
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		j += size
		if isCaseIgnorable(r) {
			continue
		}
		return !isCased(r)
	}
	return true
}
