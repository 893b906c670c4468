package dataprep

import (
	"bytes"
	"net/netip"
	"unicode/utf8"
)

// PII detection with hand-written scanners (much faster than regexps).
// They are heuristics tuned for few false positives:
//   - email: local@domain.tld with a letters-only TLD of 2+ characters;
//   - IPv4: four dot-separated numbers 0-255 not part of a longer dotted run;
//   - IPv6: a run of hex digits and colons (2+ colons, 2+ groups) that
//     net/netip parses, not glued to other word characters;
//   - phone: 10-15 digits in at most 5 groups, either after a '+' with
//     optional separators, or in 2-5 groups of at most 5 digits separated
//     by single spaces, dashes, dots or parentheses, the last group with 3+
//     digits. A bare run of digits without '+' (ids, timestamps) is not a
//     phone number.

type piiKind uint8

const (
	piiEmail piiKind = iota
	piiPhone
	piiIP
	numPIIKinds
)

var piiNames = [numPIIKinds]string{"email", "phone", "ip"}
var piiTokens = [numPIIKinds]string{"[EMAIL]", "[PHONE]", "[IP]"}

type piiSpan struct {
	start, end int
	kind       piiKind
}

// scanPII appends the PII spans of s, sorted and non-overlapping, to spans.
func scanPII(s []byte, spans []piiSpan) []piiSpan {
	base := len(spans)
	spans = scanEmails(s, spans)
	nEmail := len(spans)
	spans = scanNumbers(s, spans)
	spans = scanIPv6(s, spans)
	if len(spans) == nEmail && nEmail-base <= 1 {
		return spans
	}
	// Sort by start (insertion sort: few spans), then drop overlaps,
	// preferring the earlier-found kind (emails first).
	found := spans[base:]
	for i := 1; i < len(found); i++ {
		for j := i; j > 0 && found[j].start < found[j-1].start; j-- {
			found[j], found[j-1] = found[j-1], found[j]
		}
	}
	out := found[:0]
	for _, sp := range found {
		if len(out) > 0 && sp.start < out[len(out)-1].end {
			if sp.end-sp.start > out[len(out)-1].end-out[len(out)-1].start && sp.kind == piiEmail {
				out[len(out)-1] = sp
			}
			continue
		}
		out = append(out, sp)
	}
	return spans[:base+len(out)]
}

func isEmailLocal(c byte) bool {
	return c < utf8.RuneSelf && (asciiWord[c] || c == '.' || c == '_' || c == '%' || c == '+' || c == '-')
}

func isDomainChar(c byte) bool {
	return c < utf8.RuneSelf && (asciiWord[c] || c == '.' || c == '-')
}

func isASCIILetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

func scanEmails(s []byte, spans []piiSpan) []piiSpan {
	last := 0 // end of the previous email
	for off := 0; ; {
		k := bytes.IndexByte(s[off:], '@')
		if k < 0 {
			return spans
		}
		at := off + k
		off = at + 1
		start := at
		for start > last && isEmailLocal(s[start-1]) {
			start--
		}
		for start < at && s[start] == '.' {
			start++
		}
		if start == at {
			continue
		}
		end := at + 1
		for end < len(s) && isDomainChar(s[end]) {
			end++
		}
		for end > at+1 && (s[end-1] == '.' || s[end-1] == '-') {
			end--
		}
		dom := s[at+1 : end]
		dot := bytes.LastIndexByte(dom, '.')
		if dot <= 0 || len(dom)-dot-1 < 2 || bytes.Contains(dom, []byte("..")) || dom[0] == '-' {
			continue
		}
		tldOK := true
		for _, c := range dom[dot+1:] {
			if !isASCIILetter(c) {
				tldOK = false
				break
			}
		}
		if !tldOK {
			continue
		}
		spans = append(spans, piiSpan{start, end, piiEmail})
		last = end
		off = end
	}
}

// isWordByteAt reports whether s[i] starts or continues a word (ASCII
// letters/digits/underscore or any non-ASCII byte).
func isWordByteAt(s []byte, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i]
	return c >= utf8.RuneSelf || asciiWord[c] || c == '_'
}

// scanNumbers finds IPv4 addresses and phone numbers.
func scanNumbers(s []byte, spans []piiSpan) []piiSpan {
	n := len(s)
	for i := 0; i < n; {
		c := s[i]
		if !isDigit(c) && c != '+' && c != '(' {
			i++
			continue
		}
		// Candidates start at a word boundary, not inside a dotted or
		// dashed run of numbers.
		if i > 0 {
			p := s[i-1]
			if isWordByteAt(s, i-1) || ((p == '.' || p == '-' || p == '+') && i > 1 && isDigit(s[i-2])) || p == '@' {
				if isDigit(c) {
					i = skipNumberRun(s, i)
				} else {
					i++
				}
				continue
			}
		}
		if isDigit(c) {
			if end, ok := matchIPv4(s, i); ok {
				spans = append(spans, piiSpan{i, end, piiIP})
				i = end
				continue
			}
		}
		if end, ok := matchPhone(s, i); ok {
			spans = append(spans, piiSpan{i, end, piiPhone})
			i = end
			continue
		}
		if !isDigit(c) {
			i++
			continue
		}
		i = skipNumberRun(s, i)
	}
	return spans
}

// skipNumberRun skips the word or number run at i (at least one byte).
func skipNumberRun(s []byte, i int) int {
	i++
	for i < len(s) && (isWordByteAt(s, i) || (s[i] == '.' || s[i] == '-') && i+1 < len(s) && isDigit(s[i+1])) {
		i++
	}
	return i
}

func matchIPv4(s []byte, i int) (int, bool) {
	for part := 0; part < 4; part++ {
		if part > 0 {
			if i >= len(s) || s[i] != '.' {
				return 0, false
			}
			i++
		}
		v, nd := 0, 0
		for i < len(s) && isDigit(s[i]) && nd < 4 {
			v = v*10 + int(s[i]-'0')
			i++
			nd++
		}
		if nd == 0 || nd > 3 || v > 255 {
			return 0, false
		}
	}
	// Not followed by more of a dotted/word run.
	if isWordByteAt(s, i) || i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		return 0, false
	}
	return i, true
}

func matchPhone(s []byte, i int) (int, bool) {
	plus := false
	if s[i] == '+' {
		plus = true
		i++
	}
	var groups [5]int
	ng, digits := 0, 0
	paren := false
	end := i
	for i < len(s) {
		c := s[i]
		switch {
		case isDigit(c):
			j := i
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if ng == len(groups) {
				return 0, false
			}
			groups[ng] = j - i
			ng++
			digits += j - i
			i = j
			end = j
			closed := false
			if paren {
				if i >= len(s) || s[i] != ')' {
					return 0, false
				}
				paren, closed = false, true
				i++
				end = i
			}
			// A separator: one of " -." or ") " / ")", optionally followed
			// by '(' (area code).
			k := i
			if k < len(s) && (s[k] == ' ' || s[k] == '-' || s[k] == '.') {
				k++
			}
			if k < len(s) && s[k] == '(' {
				k++
				paren = true
			}
			if k == i && !closed || k >= len(s) || !isDigit(s[k]) {
				return finishPhone(s, end, plus, groups[:ng], digits)
			}
			i = k
		case c == '(' && ng == 0 && !paren:
			paren = true
			i++
		case (c == ' ' || c == '-') && ng == 0 && plus && !paren:
			i++
		default:
			return 0, false
		}
	}
	return finishPhone(s, end, plus, groups[:ng], digits)
}

func finishPhone(s []byte, end int, plus bool, groups []int, digits int) (int, bool) {
	if digits < 10 || digits > 15 || len(groups) == 0 {
		return 0, false
	}
	if isWordByteAt(s, end) || end < len(s) && s[end] == '@' {
		return 0, false
	}
	if plus {
		return end, true
	}
	if len(groups) == 1 {
		return end, false
	}
	for _, g := range groups {
		if g > 5 {
			return 0, false
		}
	}
	if groups[len(groups)-1] < 3 {
		return 0, false
	}
	return end, true
}

func isHex(c byte) bool { return hexVal(c) >= 0 }

func scanIPv6(s []byte, spans []piiSpan) []piiSpan {
	for off := 0; ; {
		k := bytes.IndexByte(s[off:], ':')
		if k < 0 {
			return spans
		}
		c := off + k
		start := c
		for start > 0 && (isHex(s[start-1]) || s[start-1] == ':') {
			start--
		}
		end := c
		for end < len(s) && (isHex(s[end]) || s[end] == ':' || s[end] == '.' && end+1 < len(s) && isDigit(s[end+1])) {
			end++
		}
		off = end
		if off == c {
			off = c + 1
		}
		if isWordByteAt(s, start-1) || isWordByteAt(s, end) {
			continue
		}
		cand := s[start:end]
		if bytes.Count(cand, []byte{':'}) < 2 {
			continue
		}
		groups := 0
		for _, g := range bytes.Split(cand, []byte{':'}) {
			if len(g) > 0 {
				groups++
			}
		}
		if groups < 2 {
			continue
		}
		addr, err := netip.ParseAddr(string(cand))
		if err != nil || !addr.Is6() {
			continue
		}
		spans = append(spans, piiSpan{start, end, piiIP})
	}
}

// appendRedacted appends s with every span replaced by its token.
func appendRedacted(dst, s []byte, spans []piiSpan) []byte {
	prev := 0
	for _, sp := range spans {
		dst = append(dst, s[prev:sp.start]...)
		dst = append(dst, piiTokens[sp.kind]...)
		prev = sp.end
	}
	return append(dst, s[prev:]...)
}
