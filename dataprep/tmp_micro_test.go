package dataprep

import (
	"runtime"
	"strings"
	"testing"
)

func cpuBench(b *testing.B, n int, f func()) {
	runtime.LockOSThread()
	b.SetBytes(int64(n))
	c0 := cpuTime()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(b.N)*float64(n)/(cpuTime()-c0).Seconds()/1e6, "MB/cpu-s")
}

func BenchmarkTmpAddField(b *testing.B) {
	s := []byte(strings.Repeat(longText(1, 200)+" Hello, World! ", 4))
	lx := newLexicon()
	lx.load(builtinLexicon, "b")
	ts := textScan{lex: lx}
	cpuBench(b, len(s), func() { ts.reset(); ts.addField(1, s) })
}
func BenchmarkTmpXXH(b *testing.B) {
	s := []byte(strings.Repeat(longText(1, 200), 4))
	cpuBench(b, len(s), func() { xxh64(s, 0) })
}
func BenchmarkTmpParse(b *testing.B) {
	s := []byte(chatLine(longText(1, 100), longText(2, 300)))
	p := recParser{format: FormatChat}
	cpuBench(b, len(s), func() { p.parse(s) })
}
func BenchmarkTmpPII(b *testing.B) {
	s := []byte(longText(2, 300))
	var sp []piiSpan
	cpuBench(b, len(s), func() { sp = scanPII(s, sp[:0]) })
}
func BenchmarkTmpMinHash(b *testing.B) {
	var ts textScan
	s := []byte(longText(2, 300))
	ts.addField(1, s)
	m := newMinHasher(DefaultOptions().NearDup)
	sig := make([]uint64, 128)
	var sh []uint64
	cpuBench(b, len(s), func() { sh = m.shingles(ts.norm, ts.toks, sh[:0]); m.signature(sh, sig) })
}
