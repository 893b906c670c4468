package dataprep

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Normalisation: lowercase and collapse runs of whitespace into one space,
// trimming both ends. (Unicode NFC is not applied.)

var asciiSpace = [utf8.RuneSelf]bool{' ': true, '\t': true, '\n': true, '\v': true, '\f': true, '\r': true}

// asciiWord marks ASCII letters and digits (word characters).
var asciiWord = func() (t [utf8.RuneSelf]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-32] = true
	}
	return t
}()

func isSpaceRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiSpace[r]
	}
	return unicode.IsSpace(r)
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiWord[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// Byte classes: ASCII whitespace, ASCII letters and digits, other ASCII,
// and bytes of multi-byte UTF-8 sequences.
const (
	clOther = iota
	clSpace
	clWord
	clHigh
)

var byteClass, asciiLower = func() (class, lower [256]byte) {
	for c := range 256 {
		lower[c] = byte(c)
		switch {
		case c >= utf8.RuneSelf:
			class[c] = clHigh
		case asciiSpace[c]:
			class[c] = clSpace
		case asciiWord[c]:
			class[c] = clWord
		}
		if 'A' <= c && c <= 'Z' {
			lower[c] = byte(c + 32)
		}
	}
	return class, lower
}()

// load8 returns the first min(len(b), 8) bytes of b as a little-endian
// integer (zero-padded). It reads 8 bytes at once when b's capacity
// allows.
func load8(b []byte) uint64 {
	n := len(b)
	if n >= 8 {
		return binary.LittleEndian.Uint64(b)
	}
	if cap(b) >= 8 {
		return binary.LittleEndian.Uint64(b[:8]) & (1<<(8*uint(n)) - 1)
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// wordHash hashes a word (or a word prefix) of the normalised text.
func wordHash(b []byte) uint64 {
	h := uint64(len(b)) * xxPrime1
	for len(b) > 8 {
		h = bits.RotateLeft64(h^binary.LittleEndian.Uint64(b)*xxPrime2, 31) * xxPrime1
		b = b[8:]
	}
	return mix64(h ^ load8(b)*xxPrime3)
}

// textScan normalises text fields and cuts them into words in a single
// pass. A word is a maximal run of letters and digits of the normalised
// text, hashed with wordHash. With a lexicon it also collects the lexicon
// matches. The zero value (without a lexicon) is ready to use.
type textScan struct {
	lex     *lexicon
	norm    []byte   // normalised fields, each preceded by its tag
	toks    []uint64 // word hashes
	matches []int32  // lexicon entries matched
	chars   int      // characters (code points) of the original fields
	words   int      // whitespace-separated words of the original fields
}

func (ts *textScan) reset() {
	ts.norm, ts.toks, ts.matches = ts.norm[:0], ts.toks[:0], ts.matches[:0]
	ts.chars, ts.words = 0, 0
}

// addField appends tag (when not 0) and the normalised field s.
func (ts *textScan) addField(tag byte, s []byte) {
	dst := ts.norm
	if tag != 0 {
		dst = append(dst, tag)
	}
	// Slack for load8 on the last word.
	dst = slices.Grow(dst, len(s)+8)
	var (
		space    = true  // previous character was whitespace (or start)
		pending  = false // a space must be written before the next character
		inTok    = false
		tokStart int
		words    int
	)
	for i := 0; i < len(s); {
		c := s[i]
		cl := byteClass[c]
		var r rune
		if cl == clHigh {
			var size int
			r, size = utf8.DecodeRune(s[i:])
			switch {
			case unicode.IsSpace(r):
				cl = clSpace
			default:
				if r != utf8.RuneError || size > 1 {
					r = unicode.ToLower(r)
				}
				if isWordRune(r) {
					cl = clWord
				} else {
					cl = clOther
				}
			}
			i += size - 1
		}
		if cl == clSpace {
			i++
			if inTok {
				ts.endToken(dst[tokStart:])
				inTok = false
			}
			if !space {
				space = true
				pending = true
			}
			continue
		}
		if pending {
			dst = append(dst, ' ')
			pending = false
		}
		if space {
			words++
			space = false
		}
		if cl == clOther {
			i++
			if inTok {
				ts.endToken(dst[tokStart:])
				inTok = false
			}
			if c < utf8.RuneSelf {
				dst = append(dst, c)
			} else {
				dst = utf8.AppendRune(dst, r)
			}
			continue
		}
		if !inTok {
			inTok = true
			tokStart = len(dst)
		}
		if c >= utf8.RuneSelf {
			i++
			dst = utf8.AppendRune(dst, r)
			continue
		}
		// A run of ASCII letters and digits.
		for i < len(s) {
			c := s[i]
			if byteClass[c] != clWord {
				break
			}
			dst = append(dst, asciiLower[c])
			i++
		}
	}
	if inTok {
		ts.endToken(dst[tokStart:])
	}
	ts.norm = dst
	ts.chars += utf8.RuneCount(s)
	ts.words += words
}

// endToken records a word and its lexicon matches.
func (ts *textScan) endToken(tok []byte) {
	v := load8(tok)
	var h uint64
	if len(tok) <= 8 {
		h = mix64(uint64(len(tok))*xxPrime1 ^ v*xxPrime3) // == wordHash(tok)
	} else {
		h = wordHash(tok)
	}
	ts.toks = append(ts.toks, h)
	lx := ts.lex
	if lx == nil {
		return
	}
	e := int32(-1)
	maybe := lx.maybe(h)
	if maybe {
		if w, ok := lx.words[h]; ok && lx.entries[w].term == string(tok) {
			e = w
		}
	}
	if e < 0 && lx.prefixLens != 0 && len(tok) >= lx.minPrefix {
		if hi := headIndex(v & lx.headMask); lx.heads[hi>>6]&(1<<(hi&63)) != 0 {
			e = lx.matchPrefix(tok)
		}
	}
	if e >= 0 {
		ts.matches = append(ts.matches, e)
	}
	if maybe && lx.phraseLens != 0 {
		ts.matchPhrases()
	}
}

func (ts *textScan) matchPhrases() {
	lx := ts.lex
	for k := 2; k <= maxPhraseWords && k <= len(ts.toks); k++ {
		if lx.phraseLens>>uint(k)&1 == 0 {
			continue
		}
		if e, ok := lx.phrases[combineHashes(ts.toks[len(ts.toks)-k:])]; ok {
			ts.matches = append(ts.matches, e)
		}
	}
}
