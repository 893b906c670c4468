package nvml

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

// series builds n samples of one GPU, one per step, from a per-sample
// function.
func series(host string, gpu, n int, step time.Duration, fn func(i int, s *Sample)) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Time: t0.Add(time.Duration(i) * step), Host: host, GPU: gpu, UUID: "GPU-" + string(rune('a'+gpu)), Model: "H100"}
		fn(i, &out[i])
	}
	return out
}

func f64(v float64) *float64 { return &v }
func u64(v uint64) *uint64   { return &v }

func TestBuildReport(t *testing.T) {
	tests := []struct {
		name    string
		samples []Sample
		check   func(t *testing.T, r Report)
	}{
		{
			name:    "no samples",
			samples: nil,
			check: func(t *testing.T, r Report) {
				if r.Telemetry || r.Message != "no GPU telemetry: no samples were recorded" {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "nvml unavailable",
			samples: []Sample{
				{Time: t0, Host: "n1", NVML: NVMLUnavailable, Error: "ERROR_LIBRARY_NOT_FOUND"},
			},
			check: func(t *testing.T, r Report) {
				if r.Telemetry || r.Message != "no GPU telemetry: NVML was not available on n1 (ERROR_LIBRARY_NOT_FOUND)" || len(r.GPUs) != 0 {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "no devices",
			samples: []Sample{
				{Time: t0, Host: "n1", NVML: NVMLNoDevices},
			},
			check: func(t *testing.T, r Report) {
				if r.Telemetry || r.Message != "no GPU telemetry: NVML found no GPU on n1" {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "mean, p95, peak memory, energy counter",
			samples: series("n1", 0, 20, time.Second, func(i int, s *Sample) {
				s.UtilPct = f64(float64(i * 5)) // 0..95
				s.MemUsedBytes = u64(uint64(i) * gib)
				s.MemTotalBytes = u64(80 * gib)
				s.EnergyJ = f64(1000 + float64(i)*300)
				s.PowerW = f64(999) // ignored: the counter wins
				s.Job = "42"
			}),
			check: func(t *testing.T, r Report) {
				g := r.GPUs[0]
				if !r.Telemetry || len(r.GPUs) != 1 || g.Samples != 20 {
					t.Fatalf("got %+v", r)
				}
				if *g.MeanUtilPct != 47.5 || *g.P95UtilPct != 90 {
					t.Errorf("mean %v p95 %v, want 47.5 and 90", *g.MeanUtilPct, *g.P95UtilPct)
				}
				if g.PeakMemBytes != 19*gib || g.MemTotalBytes != 80*gib {
					t.Errorf("peak %d total %d", g.PeakMemBytes, g.MemTotalBytes)
				}
				if g.EnergySource != "counter" || *g.EnergyJ != 19*300 {
					t.Errorf("energy %v from %s, want 5700 J from counter", *g.EnergyJ, g.EnergySource)
				}
				if !slices.Equal(g.Jobs, []string{"42"}) || r.Underutilized || r.DurationS != 19 {
					t.Errorf("jobs %v underutilized %v duration %v", g.Jobs, r.Underutilized, r.DurationS)
				}
			},
		},
		{
			name: "energy counter reset is not negative",
			samples: series("n1", 0, 4, time.Second, func(i int, s *Sample) {
				s.EnergyJ = f64([]float64{100, 200, 10, 30}[i])
			}),
			check: func(t *testing.T, r Report) {
				if g := r.GPUs[0]; *g.EnergyJ != 100+10+20 {
					t.Errorf("energy %v, want 130", *g.EnergyJ)
				}
			},
		},
		{
			name: "energy integrated from power when the counter is absent",
			samples: series("n1", 0, 11, time.Second, func(i int, s *Sample) {
				s.PowerW = f64(200)
			}),
			check: func(t *testing.T, r Report) {
				if g := r.GPUs[0]; g.EnergySource != "power" || *g.EnergyJ != 2000 {
					t.Errorf("energy %v from %q, want 2000 J from power", *g.EnergyJ, g.EnergySource)
				}
			},
		},
		{
			name: "power gaps longer than the max gap are not integrated",
			samples: append(series("n1", 0, 2, time.Second, func(i int, s *Sample) { s.PowerW = f64(100) }),
				Sample{Time: t0.Add(time.Hour), Host: "n1", GPU: 0, UUID: "GPU-a", PowerW: f64(100)}),
			check: func(t *testing.T, r Report) {
				if g := r.GPUs[0]; *g.EnergyJ != 100 {
					t.Errorf("energy %v, want 100 J (the hour-long gap skipped)", *g.EnergyJ)
				}
			},
		},
		{
			name: "no energy at all",
			samples: series("n1", 0, 3, time.Second, func(i int, s *Sample) {
				s.UtilPct = f64(50)
			}),
			check: func(t *testing.T, r Report) {
				if g := r.GPUs[0]; g.EnergyJ != nil || g.EnergySource != "" {
					t.Errorf("energy %v %q, want absent", g.EnergyJ, g.EnergySource)
				}
			},
		},
		{
			name: "longest idle streak needs low util and memory held",
			samples: series("n1", 0, 30, time.Second, func(i int, s *Sample) {
				s.MemUsedBytes = u64(10 * gib)
				switch {
				case i < 5: // busy
					s.UtilPct = f64(90)
				case i < 12: // idle 7 s
					s.UtilPct = f64(3)
				case i < 14: // busy
					s.UtilPct = f64(80)
				case i < 26: // low util but memory released: not idle
					s.UtilPct = f64(0)
					s.MemUsedBytes = u64(1 << 20)
				default: // idle 4 s (last sample counts one step)
					s.UtilPct = f64(9.9)
				}
			}),
			check: func(t *testing.T, r Report) {
				if g := r.GPUs[0]; g.LongestIdleS != 7 {
					t.Errorf("longest idle %v s, want 7", g.LongestIdleS)
				}
			},
		},
		{
			name: "throttle reasons, xid increase, lost",
			samples: series("n1", 0, 5, time.Second, func(i int, s *Sample) {
				s.Throttle = [][]string{{}, {"gpu_idle"}, {"sw_power_cap"}, {"hw_thermal_slowdown", "sw_power_cap"}, nil}[i]
				s.XID = u64([]uint64{0, 0, 1, 3, 3}[i])
				s.Lost = i == 4
			}),
			check: func(t *testing.T, r Report) {
				g := r.GPUs[0]
				if !slices.Equal(g.ThrottleReasons, []string{"hw_thermal_slowdown", "sw_power_cap"}) || g.XIDEvents != 3 || !g.Lost {
					t.Errorf("got %+v", g)
				}
			},
		},
		{
			name: "underutilized: under 15% for more than 5 minutes",
			samples: slices.Concat(
				series("n1", 0, 61, 6*time.Second, func(i int, s *Sample) { s.UtilPct = f64(20) }),
				series("n1", 1, 61, 6*time.Second, func(i int, s *Sample) { s.UtilPct = f64(5) }),
			),
			check: func(t *testing.T, r Report) {
				if !r.Underutilized || *r.MeanUtilPct != 12.5 || r.DurationS != 360 {
					t.Errorf("underutilized %v mean %v duration %v", r.Underutilized, *r.MeanUtilPct, r.DurationS)
				}
			},
		},
		{
			name:    "low but short is not underutilized",
			samples: series("n1", 0, 60, time.Second, func(i int, s *Sample) { s.UtilPct = f64(1) }),
			check: func(t *testing.T, r Report) {
				if r.Underutilized {
					t.Error("flagged after one minute")
				}
			},
		},
		{
			name: "busy for long is not underutilized",
			samples: series("n1", 0, 61, 10*time.Second, func(i int, s *Sample) {
				s.UtilPct = f64(15)
			}),
			check: func(t *testing.T, r Report) {
				if r.Underutilized {
					t.Error("flagged at exactly 15%")
				}
			},
		},
		{
			name: "hosts and mig devices are separate GPUs, unordered input, unavailable host noted",
			samples: func() []Sample {
				s := slices.Concat(
					series("n2", 0, 3, time.Second, func(i int, s *Sample) { s.UtilPct = f64(10) }),
					series("n1", 0, 3, time.Second, func(i int, s *Sample) { s.MIG = "gi1/ci0"; s.MemUsedBytes = u64(gib) }),
					series("n1", 0, 3, time.Second, func(i int, s *Sample) { s.UtilPct = f64(30) }),
					[]Sample{{Time: t0, Host: "n3", NVML: NVMLUnavailable, Error: "ERROR_DRIVER_NOT_LOADED"}},
				)
				slices.Reverse(s)
				return s
			}(),
			check: func(t *testing.T, r Report) {
				if len(r.GPUs) != 3 || r.GPUs[0].Host != "n1" || r.GPUs[0].MIG != "" || r.GPUs[1].MIG != "gi1/ci0" || r.GPUs[2].Host != "n2" {
					t.Fatalf("gpus %+v", r.GPUs)
				}
				if r.GPUs[1].MeanUtilPct != nil || *r.MeanUtilPct != 20 {
					t.Errorf("mig util %v overall %v", r.GPUs[1].MeanUtilPct, *r.MeanUtilPct)
				}
				if !slices.Equal(r.Hosts, []string{"n1", "n2"}) || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "NVML was not available on n3") {
					t.Errorf("hosts %v notes %v", r.Hosts, r.Notes)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := BuildReport(tt.samples)
			tt.check(t, r)
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("report not JSON-serialisable: %v", err)
			}
		})
	}
}

func TestReportWriteText(t *testing.T) {
	samples := slices.Concat(
		series("n1", 0, 61, 6*time.Second, func(i int, s *Sample) {
			s.UtilPct = f64(2)
			s.MemUsedBytes = u64(10 * gib)
			s.MemTotalBytes = u64(80 * gib)
			s.EnergyJ = f64(float64(i) * 1000)
			s.Throttle = []string{"sw_power_cap"}
			s.Job = "42"
		}),
	)
	var b bytes.Buffer
	if err := BuildReport(samples).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"GPU telemetry: 1 device(s) on n1",
		"(6m0s), mean utilization 2.0%",
		"GPU  MIG  MODEL  UTIL MEAN  UTIL P95  PEAK MEM",
		"10.0/80.0 GiB", "60.0 kJ", "6m0s", "sw_power_cap", "42",
		"UNDERUTILIZED: the GPUs averaged 2.0% utilization over 6m0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}

	b.Reset()
	if err := BuildReport([]Sample{{Host: "n1", NVML: NVMLUnavailable, Error: "ERROR_LIBRARY_NOT_FOUND"}}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "no GPU telemetry: NVML was not available on n1 (ERROR_LIBRARY_NOT_FOUND)\n" {
		t.Errorf("text = %q", got)
	}
}

func TestLoadSamples(t *testing.T) {
	good := `{"time":"2026-01-02T03:00:00Z","host":"n1","gpu":0,"uuid":"GPU-a","util_pct":50,"throttle":[]}`
	tests := []struct {
		name    string
		in      string
		n       int
		wantErr bool
	}{
		{"empty", "", 0, false},
		{"lines and blanks", good + "\n\n" + good + "\n", 2, false},
		{"no trailing newline", good, 1, false},
		{"truncated last line tolerated", good + "\n" + good[:30], 1, false},
		{"malformed middle line", good + "\n{oops\n" + good + "\n", 0, true},
		{"status line", `{"time":"2026-01-02T03:00:00Z","host":"n1","nvml":"unavailable","error":"x"}`, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadSamples(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != tt.n {
				t.Errorf("%d samples, want %d", len(got), tt.n)
			}
		})
	}
}

func TestSampleJSON(t *testing.T) {
	tests := []struct {
		name string
		s    Sample
		want string
	}{
		{"status line has exactly its keys",
			Sample{Time: t0, Host: "n1", NVML: NVMLUnavailable, Error: "ERROR_LIBRARY_NOT_FOUND"},
			`{"time":"2026-01-02T03:00:00Z","host":"n1","nvml":"unavailable","error":"ERROR_LIBRARY_NOT_FOUND"}`},
		{"gpu 0 keeps its index, absent metrics omitted, no reasons is []",
			Sample{Time: t0, Host: "n1", GPU: 0, UUID: "GPU-a", UtilPct: f64(0), Throttle: []string{}},
			`{"time":"2026-01-02T03:00:00Z","host":"n1","gpu":0,"uuid":"GPU-a","util_pct":0,"throttle":[]}`},
		{"reasons unknown are omitted",
			Sample{Time: t0, Host: "n1", GPU: 1, XID: u64(2), Job: "7"},
			`{"time":"2026-01-02T03:00:00Z","host":"n1","gpu":1,"xid":2,"job":"7"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.s)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
			back, err := LoadSamples(bytes.NewReader(b))
			if err != nil || len(back) != 1 {
				t.Fatalf("round trip: %v %v", back, err)
			}
			if b2, _ := json.Marshal(back[0]); string(b2) != tt.want {
				t.Errorf("round trip changed it: %s", b2)
			}
		})
	}
}

func TestBuildReportAbsurdValuesStaySerialisable(t *testing.T) {
	samples := series("n1", 0, 3, time.Second, func(i int, s *Sample) {
		s.PowerW = f64(1e308)
		s.UtilPct = f64(1e308)
	})
	r := BuildReport(samples)
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("report not serialisable: %v", err)
	}
	if g := r.GPUs[0]; g.EnergyJ != nil || g.EnergySource != "" || g.MeanUtilPct != nil {
		t.Errorf("overflowing values kept: %+v", g)
	}
}
