package nvml

import (
	"testing"
	"time"
)

// TestAggStepIsMedianGap: what a sample stands for is the lower median of
// the gaps between samples, not the smallest one: with a 60 s interval and
// one sample a second after another (an exporter restarted), an idle GPU
// is idle for the whole 10 minutes; with the smallest gap (1 s) every
// 60 s gap would look like the exporter was down (over 5 steps and 30 s)
// and the streak would break at each one.
func TestAggStepIsMedianGap(t *testing.T) {
	var samples []Sample
	for i := range 10 {
		at := t0.Add(time.Duration(i) * time.Minute)
		samples = append(samples, Sample{Time: at, Host: "n1", UUID: "GPU-a", UtilPct: f64(2), MemUsedBytes: u64(10 * gib)})
		if i == 3 {
			samples = append(samples, Sample{Time: at.Add(time.Second), Host: "n1", UUID: "GPU-a", UtilPct: f64(2), MemUsedBytes: u64(10 * gib)})
		}
	}
	r := BuildReport(samples)
	if g := r.GPUs[0]; g.LongestIdleS != 600 {
		t.Errorf("longest idle %v s, want 600 (9 minutes of gaps and the last sample's minute)", g.LongestIdleS)
	}
	a := &Agg{}
	for _, s := range samples {
		a.Add(s)
	}
	if a.step() != 60 {
		t.Errorf("step %v s, want 60", a.step())
	}
}

// BenchmarkAggAdd: one GPU's samples into its aggregate, as reading a
// samples file does (with one exporter restart among them).
func BenchmarkAggAdd(b *testing.B) {
	samples := series("n1", 0, 10_000, time.Second, func(i int, s *Sample) {
		s.UtilPct, s.MemUsedBytes, s.PowerW = f64(float64(i%100)), u64(10*gib), f64(300)
		if i > 5000 {
			s.Time = s.Time.Add(1500 * time.Millisecond)
		}
	})
	b.ResetTimer()
	for range b.N {
		a := &Agg{}
		for _, s := range samples {
			a.Add(s)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(samples)), "ns/sample")
}
