package dataprep

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScannerMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":1e+5}`,
		`{"a":-0.0E-7}`, `{"a":tru}`, `{"a":true}`, `{"a":nul}`, `{"a":[1,2,]}`, `{"a":[,]}`, `{"a":[]}`,
		`{"a":"\u00"}`, `{"a":"\u00e9"}`, `{"a":"\ud800"}`, `{"a":"\ud800\udc00"}`, `{"a":"\x"}`,
		"{\"a\":\"tab\there\"}", `{"a" 1}`, `{"a":1 "b":2}`, `{a:1}`, `{"a":1}}`, `[1]`, `"x"`, `1`, ``,
		`  `, `{"a":{"b":{"c":[[[]]]}}}`, `{"a":"\/\b\f\n\r\t\"\\"}`, `{"a":1,}`, `{,}`, `{"a":-01}`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"x":` + strings.Repeat(`{"y":`, 9998) + `1` + strings.Repeat("}", 9999),
		`{"x":` + strings.Repeat(`{"y":`, 9999) + `1` + strings.Repeat("}", 10000),
	}
	var s scanner
	for _, c := range cases {
		if got, want := s.valid([]byte(c)), json.Valid([]byte(c)); got != want {
			name := c
			if len(name) > 40 {
				name = name[:40] + "..."
			}
			t.Errorf("valid(%q) = %v, encoding/json says %v (%s)", name, got, want, s.err)
		}
	}
}

func TestStringDecoding(t *testing.T) {
	for _, lit := range []string{`"plain"`, `"a\"b\\c\/d"`, `"\u00e9\u4e2d\ud83d\ude00"`, `"\ud800x"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\b\f\n\r\t"`, `""`} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatal(err)
		}
		s := scanner{}
		s.reset([]byte(lit))
		got, ok := s.str(true)
		if !ok || string(got) != want {
			t.Errorf("str(%s) = %q, %v; want %q", lit, got, ok, want)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"quote\" backslash\\ nl\n cr\r tab\t", "quote\" backslash\\ nl\n cr\r tab\t"},
		{"\x00\x01\x1f", "\x00\x01\x1f"},
		{"é中😀\u2028", "é中😀\u2028"},
		{"bad\xff\xfeutf8", "bad\ufffd\ufffdutf8"}, // one U+FFFD per invalid byte
	} {
		enc := appendJSONString(nil, []byte(tc.in))
		var out string
		if err := json.Unmarshal(enc, &out); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", tc.in, enc, err)
		}
		if out != tc.want {
			t.Errorf("round trip %q -> %s -> %q", tc.in, enc, out)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want     string
		chars, words int
	}{
		{"  Hello\t\tWORLD \n", "hello world", 16, 2},
		{"ÉCOLE  Ça\u00a0va", "école ça va", 12, 3},
		{"", "", 0, 0},
		{"   ", "", 3, 0},
		{"a", "a", 1, 1},
	} {
		var ts textScan
		ts.addField(0, []byte(tc.in))
		if string(ts.norm) != tc.want || ts.chars != tc.chars || ts.words != tc.words {
			t.Errorf("normalize(%q) = %q, %d, %d; want %q, %d, %d", tc.in, ts.norm, ts.chars, ts.words, tc.want, tc.chars, tc.words)
		}
	}
	// Word hashes are the wordHash of the words of the normalised text.
	var ts textScan
	ts.addField(tagUser, []byte("Hello, WORLD!! it's ÉTÉ—naïve 42x"))
	ts.addField(tagAssistant, []byte("ok"))
	words := wordsOf(ts.norm)
	if want := []string{"hello", "world", "it", "s", "été", "naïve", "42x", "ok"}; !reflect.DeepEqual(words, want) {
		t.Fatalf("words %q", words)
	}
	if len(ts.toks) != len(words) {
		t.Fatalf("%d tokens for %d words", len(ts.toks), len(words))
	}
	for i, w := range words {
		if ts.toks[i] != wordHash([]byte(w)) {
			t.Errorf("token %d (%s) hash mismatch", i, w)
		}
	}
}

func TestPIIScanner(t *testing.T) {
	tests := []struct {
		text string
		want []string // "kind:match"
	}{
		{"write to john.doe+tag@mail.example.co.uk.", []string{"email:john.doe+tag@mail.example.co.uk"}},
		{"emails a@b.io, c_d@e-f.org", []string{"email:a@b.io", "email:c_d@e-f.org"}},
		{"call +1 (555) 123-4567 now", []string{"phone:+1 (555) 123-4567"}},
		{"call (555) 123-4567 or 555.123.4567", []string{"phone:(555) 123-4567", "phone:555.123.4567"}},
		{"tel:(555)123-4567, +49 (0)30 1234567", []string{"phone:(555)123-4567", "phone:+49 (0)30 1234567"}},
		{"uk +44 20 7946 0958; intl +14155552671", []string{"phone:+44 20 7946 0958", "phone:+14155552671"}},
		{"phone: 1-800-555-0199.", []string{"phone:1-800-555-0199"}},
		{"host 10.0.0.1:8080 and http://192.168.1.20/x", []string{"ip:10.0.0.1", "ip:192.168.1.20"}},
		{"v6 2001:db8:85a3::8a2e:370:7334 and fe80::1%eth0", []string{"ip:2001:db8:85a3::8a2e:370:7334", "ip:fe80::1"}},
		{"mapped ::ffff:192.0.2.128 here", []string{"ip:::ffff:192.0.2.128"}},
		{"(192.168.0.1)", []string{"ip:192.168.0.1"}},
		// Negatives.
		{"version 1.2.3 and 1.2.3.4.5 and v1.2.3.4", nil},
		{"at 2024-01-15 10:30:45 UTC", nil},
		{"timestamp 1700000000 and id 12345678901234", nil},
		{"pi is 3.14159265358979", nil},
		{"std::vector<int> and x :: Int and a::b::c", nil},
		{"isbn 978-3-16-148410-0", nil},
		{"@user wrote foo@bar and x@y.z1", nil},
		{"999.1.1.1 is not an address", nil},
		{"count 1 2 3 4 5 6 7 8 9 10 11 12", nil},
		{"mac 00:1a:2b:3c:4d:5e", nil},
	}
	for _, tc := range tests {
		var got []string
		for _, sp := range scanPII([]byte(tc.text), nil) {
			got = append(got, piiNames[sp.kind]+":"+tc.text[sp.start:sp.end])
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("scanPII(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
	red := appendRedacted(nil, []byte("a x@y.com b 10.1.2.3 c"), scanPII([]byte("a x@y.com b 10.1.2.3 c"), nil))
	if string(red) != "a [EMAIL] b [IP] c" {
		t.Errorf("redacted %q", red)
	}
}

func TestIDTable(t *testing.T) {
	tab := newIDTable(4)
	r := rand.New(rand.NewSource(1))
	want := map[uint64]uint32{}
	keys := []uint64{0, 0x9e3779b97f4a7c15}
	for range 100000 {
		keys = append(keys, r.Uint64())
	}
	for i, k := range keys {
		v, found := tab.getOrInsert(k, uint32(i))
		w, ok := want[fixKey(k)]
		if found != ok || ok && v != w {
			t.Fatalf("key %x: got %d %v, want %d %v", k, v, found, w, ok)
		}
		if !ok {
			want[fixKey(k)] = uint32(i)
		}
	}
	for k, w := range want {
		if v, ok := tab.get(k); !ok || v != w {
			t.Fatalf("get %x = %d %v, want %d", k, v, ok, w)
		}
	}
	if _, ok := tab.get(12345); ok {
		t.Error("found a missing key")
	}
}

func TestMinHashEstimate(t *testing.T) {
	m := newMinHasher(NearDupOptions{Threshold: 0.8, NumPerm: 256, Shingle: ShingleWord, ShingleSize: 1, Seed: 7})
	r := rand.New(rand.NewSource(3))
	for _, j := range []float64{0.2, 0.5, 0.8, 0.95} {
		// Two sets of 1000 elements sharing k: J = k / (2000 - k).
		k := int(2000 * j / (1 + j))
		common := make([]uint64, k)
		for i := range common {
			common[i] = mix64(r.Uint64())
		}
		a, b := append([]uint64{}, common...), append([]uint64{}, common...)
		for len(a) < 1000 {
			a = append(a, mix64(r.Uint64()))
			b = append(b, mix64(r.Uint64()))
		}
		sa, sb := make([]uint64, 256), make([]uint64, 256)
		m.signature(a, sa)
		m.signature(b, sb)
		same := 0
		for i := range sa {
			if sa[i] == sb[i] {
				same++
			}
		}
		if est := float64(same) / 256; est < j-0.1 || est > j+0.1 {
			t.Errorf("J=%.2f: estimate %.3f", j, est)
		}
	}
	if b, r := optimalBandsRows(0.8, 128); b != 9 || r != 13 {
		t.Errorf("bands, rows for 0.8/128 = %d, %d; want 9, 13 (datasketch)", b, r)
	}
}

func TestLexiconLoad(t *testing.T) {
	lx := newLexicon()
	if err := lx.load(builtinLexicon, "builtin"); err != nil {
		t.Fatal(err)
	}
	if len(lx.entries) < 50 {
		t.Errorf("builtin lexicon has %d entries", len(lx.entries))
	}
	for _, bad := range []string{"!!!", "two words*", strings.Repeat("w ", 17)} {
		if err := newLexicon().load(bad, "x"); err == nil {
			t.Errorf("load(%q): no error", bad)
		}
	}
	// Weights: the last field is a weight only if it parses in [0,1].
	lx = newLexicon()
	if err := lx.load("top 10\nfoo 0.25\n", "x"); err != nil {
		t.Fatal(err)
	}
	if len(lx.entries) != 2 || lx.entries[0].term != "top 10" || lx.entries[0].weight != 1 || lx.entries[1].weight != 0.25 {
		t.Errorf("entries %+v", lx.entries)
	}
}

func TestParserFieldsAndSpans(t *testing.T) {
	line := []byte(`{"messages":[{"role":"user","content":"caf\u00e9"},{"role":"assistant","content":"ok \"x\""}]}`)
	p := recParser{format: FormatChat}
	p.parse(line)
	if p.kind != "" || len(p.fields) != 2 {
		t.Fatalf("parse: %s %s %d", p.kind, p.detail, len(p.fields))
	}
	for i, want := range []string{"café", `ok "x"`} {
		f := p.fields[i]
		if string(f.val) != want || !utf8.Valid(f.val) {
			t.Errorf("field %d = %q", i, f.val)
		}
		var raw string
		if err := json.Unmarshal(line[f.start:f.end], &raw); err != nil || raw != want {
			t.Errorf("span %d = %s", i, line[f.start:f.end])
		}
	}
	if p.fields[0].tag != tagUser || p.fields[1].tag != tagAssistant {
		t.Errorf("tags %d %d", p.fields[0].tag, p.fields[1].tag)
	}
}
