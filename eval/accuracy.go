package eval

import (
	"unicode"
	"unicode/utf8"
)

// asciiPunct marks Python's string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
var asciiPunct = func() (t [128]bool) {
	for _, c := range "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" {
		t[c] = true
	}
	return t
}()

// isPyWordRune approximates Python re's \w for str patterns: letters,
// numbers and the underscore.
func isPyWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

// NormalizeAnswer is the SQuAD v1.1 evaluation script's normalize_answer:
// lower-case, remove ASCII punctuation (string.punctuation), remove the
// articles a/an/the (re.sub(r'\b(a|an|the)\b', ' ', text)) and collapse
// whitespace (' '.join(text.split())).
func NormalizeAnswer(s string) string {
	var n normalizer
	return string(n.normalize(nil, s))
}

// normalizer keeps scratch space for NormalizeAnswer.
type normalizer struct {
	buf []byte
}

// normalize appends the normalised form of s to dst.
func (n *normalizer) normalize(dst []byte, s string) []byte {
	if out, ok := normalizeASCII(dst, s); ok {
		return out
	}
	return n.normalizeSlow(dst, s)
}

// normalizeASCII is normalize in one pass for the common case: ASCII text
// whose characters are letters, digits, punctuation and whitespace. After
// punctuation removal every field is then a single word, so article removal
// is a whole-field comparison. It reports false (having appended nothing
// useful) for any other character, e.g. a control character, which is
// neither a word character nor whitespace.
func normalizeASCII(dst []byte, s string) ([]byte, bool) {
	start := len(dst)
	fieldStart := -1 // in dst, including a leading separator if any
	wordStart := 0
	for i := 0; i <= len(s); i++ {
		c := byte(' ')
		if i < len(s) {
			c = s[i]
		}
		switch {
		case 'a' <= c && c <= 'z' || '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c >= utf8.RuneSelf:
			return dst[:start], false
		case asciiPunct[c]:
			continue
		case asciiPySpace[c]:
			if fieldStart >= 0 {
				if isArticle(dst[wordStart:]) {
					dst = dst[:fieldStart]
				}
				fieldStart = -1
			}
			continue
		default: // other control characters
			return dst[:start], false
		}
		if fieldStart < 0 {
			fieldStart = len(dst)
			if len(dst) > start {
				dst = append(dst, ' ')
			}
			wordStart = len(dst)
		}
		dst = append(dst, c)
	}
	return dst, true
}

// normalizeSlow handles any text.
func (n *normalizer) normalizeSlow(dst []byte, s string) []byte {
	// lower + remove_punc (ASCII lower-casing is done inline)
	ascii := isASCII(s)
	if !ascii {
		s = pyLower(s)
	}
	buf := n.buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiPunct[c] {
				continue
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
		}
		buf = append(buf, c)
	}
	n.buf = buf
	// remove_articles + white_space_fix, field by field. Within a field
	// (a maximal run of non-whitespace), a word-character run equal to
	// a/an/the becomes a space, which splits the field. Non-word characters
	// (e.g. "€") stay and act as word boundaries, as \b does.
	first := true
	emit := func(dst []byte, w []byte) []byte {
		if !first {
			dst = append(dst, ' ')
		}
		first = false
		return append(dst, w...)
	}
	for i := 0; i < len(buf); {
		c := buf[i]
		if c < utf8.RuneSelf && asciiPySpace[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRune(buf[i:]); isPySpace(r) {
				i += size
				continue
			}
		}
		// Field [i, j).
		j := i
		simple := true
		for j < len(buf) {
			c := buf[j]
			if c < utf8.RuneSelf {
				if asciiPySpace[c] {
					break
				}
				if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
					simple = false
				}
				j++
				continue
			}
			r, size := utf8.DecodeRune(buf[j:])
			if isPySpace(r) {
				break
			}
			simple = false
			j += size
		}
		field := buf[i:j]
		i = j
		if simple {
			if !isArticle(field) {
				dst = emit(dst, field)
			}
			continue
		}
		// Split the field at article runs; the pieces are the output words.
		pieceStart := 0
		for k := 0; k < len(field); {
			r, size := utf8.DecodeRune(field[k:])
			if !isPyWordRune(r) {
				k += size
				continue
			}
			e := k
			for e < len(field) {
				r2, s2 := utf8.DecodeRune(field[e:])
				if !isPyWordRune(r2) {
					break
				}
				e += s2
			}
			if isArticle(field[k:e]) {
				if k > pieceStart {
					dst = emit(dst, field[pieceStart:k])
				}
				pieceStart = e
			}
			k = e
		}
		if pieceStart < len(field) {
			dst = emit(dst, field[pieceStart:])
		}
	}
	return dst
}

func isArticle(w []byte) bool {
	switch len(w) {
	case 1:
		return w[0] == 'a'
	case 2:
		return w[0] == 'a' && w[1] == 'n'
	case 3:
		return w[0] == 't' && w[1] == 'h' && w[2] == 'e'
	}
	return false
}

// ExactMatch reports whether the normalised prediction equals any
// normalised reference (SQuAD's metric_max_over_ground_truths with
// exact_match_score).
func ExactMatch(prediction string, references []string) bool {
	p := NormalizeAnswer(prediction)
	for _, r := range references {
		if NormalizeAnswer(r) == p {
			return true
		}
	}
	return false
}
