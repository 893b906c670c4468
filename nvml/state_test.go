package nvml

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/store"
)

// st0 is when the synthetic samples start.
var st0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func fp(v float64) *float64 { return &v }
func up(v uint64) *uint64   { return &v }

// synthetic makes n samples of one GPU every step, utilization from util(i).
func synthetic(host string, gpu, n int, step time.Duration, util func(i int) float64) []Sample {
	var out []Sample
	for i := range n {
		s := Sample{Time: st0.Add(time.Duration(i) * step), Host: host, GPU: gpu, UUID: "GPU-" + host + string(rune('0'+gpu)),
			Model: "H100", UtilPct: fp(util(i)), MemUsedBytes: up(uint64(20+i%7) << 30), MemTotalBytes: up(80 << 30),
			PowerW: fp(300 + float64(i%5)), EnergyJ: fp(1000 + 300*float64(i)*step.Seconds()), XID: up(0), Throttle: []string{}, Job: "77"}
		if i == n/2 {
			s.Throttle = []string{"sw_thermal_slowdown", "gpu_idle"}
			s.XID = up(1)
		}
		if i > n/2 {
			s.XID = up(1)
		}
		out = append(out, s)
	}
	return out
}

func aggregate(t *testing.T, samples []Sample) Report {
	t.Helper()
	g := newTestState()
	for _, s := range samples {
		g.Add("train", s)
	}
	return g.Report("train")
}

func newTestState() *State { return newState("") }

// TestAggUnderutilizedFlagged: GPUs averaging 5% for 10 minutes are
// flagged; the same GPUs at 90% are not; a short idle stage is not either.
func TestAggUnderutilizedFlagged(t *testing.T) {
	idle := append(synthetic("n1", 0, 61, 10*time.Second, func(int) float64 { return 5 }),
		synthetic("n1", 1, 61, 10*time.Second, func(i int) float64 { return float64(i % 10) })...)
	r := aggregate(t, idle)
	if !r.Telemetry || len(r.GPUs) != 2 || r.MeanUtilPct == nil || *r.MeanUtilPct >= 15 {
		t.Fatalf("idle report: %+v", r)
	}
	if !r.Underutilized {
		t.Errorf("GPUs averaging %.1f%% over %s are not flagged underutilized", *r.MeanUtilPct, time.Duration(r.DurationS*float64(time.Second)))
	}
	busy := append(synthetic("n1", 0, 61, 10*time.Second, func(int) float64 { return 90 }),
		synthetic("n1", 1, 61, 10*time.Second, func(i int) float64 { return 80 + float64(i%20) })...)
	if r := aggregate(t, busy); r.Underutilized || *r.MeanUtilPct < 80 {
		t.Errorf("busy GPUs flagged: mean %.1f%%, underutilized %v", *r.MeanUtilPct, r.Underutilized)
	}
	short := synthetic("n1", 0, 20, 10*time.Second, func(int) float64 { return 1 }) // 190 s
	if r := aggregate(t, short); r.Underutilized {
		t.Errorf("a 190 s idle stage is flagged (the flag needs more than %s)", UnderutilizedAfter)
	}
	var b strings.Builder
	if err := aggregate(t, idle).WriteText(&b); err != nil || !strings.Contains(b.String(), "UNDERUTILIZED") {
		t.Errorf("text report lacks the flag (%v):\n%s", err, b.String())
	}
}

// TestAggMatchesBuildReport: the incremental aggregate, fed in pieces,
// agrees with BuildReport over all the samples at once.
func TestAggMatchesBuildReport(t *testing.T) {
	var samples []Sample
	samples = append(samples, synthetic("n1", 0, 200, 5*time.Second, func(i int) float64 {
		if i >= 50 && i < 90 {
			return 2 // idle while holding memory: 40 samples, 200 s
		}
		return float64(40 + i%57)
	})...)
	samples = append(samples, synthetic("n2", 3, 150, 5*time.Second, func(i int) float64 { return float64(i % 100) })...)
	// An exporter restart: a 10-minute gap, the energy counter starting over.
	late := synthetic("n2", 3, 30, 5*time.Second, func(int) float64 { return 60 })
	for i := range late {
		late[i].Time = late[i].Time.Add(150*5*time.Second + 10*time.Minute)
		late[i].EnergyJ = fp(10 + float64(i))
	}
	samples = append(samples, late...)

	want := BuildReport(samples)
	// Feed in three loads with a save in between, as status calls would.
	g := newTestState()
	for i, s := range samples {
		g.Add("train", s)
		if i%97 == 0 {
			roundTrip(t, g)
		}
	}
	got := g.Report("train")
	if len(got.GPUs) != len(want.GPUs) || got.Telemetry != want.Telemetry || !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
		t.Fatalf("report shape differs:\ngot  %+v\nwant %+v", got, want)
	}
	near := func(what string, a, b *float64) {
		t.Helper()
		if (a == nil) != (b == nil) || a != nil && math.Abs(*a-*b) > 1e-6*math.Max(1, math.Abs(*b)) {
			t.Errorf("%s = %v, want %v", what, deref(a), deref(b))
		}
	}
	near("mean util", got.MeanUtilPct, want.MeanUtilPct)
	for i := range want.GPUs {
		g, w := got.GPUs[i], want.GPUs[i]
		near(w.Host+" mean", g.MeanUtilPct, w.MeanUtilPct)
		near(w.Host+" p95", g.P95UtilPct, w.P95UtilPct)
		near(w.Host+" energy", g.EnergyJ, w.EnergyJ)
		if g.PeakMemBytes != w.PeakMemBytes || g.MemTotalBytes != w.MemTotalBytes || g.XIDEvents != w.XIDEvents || g.Samples != w.Samples ||
			g.EnergySource != w.EnergySource || !reflect.DeepEqual(g.ThrottleReasons, w.ThrottleReasons) || !reflect.DeepEqual(g.Jobs, w.Jobs) ||
			g.Host != w.Host || g.GPU != w.GPU || g.UUID != w.UUID || g.Model != w.Model {
			t.Errorf("GPU %d:\ngot  %+v\nwant %+v", i, g, w)
		}
		if math.Abs(g.LongestIdleS-w.LongestIdleS) > 1e-6 {
			t.Errorf("%s longest idle %v, want %v", w.Host, g.LongestIdleS, w.LongestIdleS)
		}
	}
	if got.GPUs[0].LongestIdleS != 200 {
		t.Errorf("longest idle %v s, want 200", got.GPUs[0].LongestIdleS)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// roundTrip replaces g's aggregates with their JSON round trip, as saving
// and loading does.
func roundTrip(t *testing.T, g *State) {
	t.Helper()
	for k, a := range g.GPUs {
		blob, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		b := &Agg{}
		if err := json.Unmarshal(blob, b); err != nil {
			t.Fatal(err)
		}
		g.GPUs[k] = b
	}
}

// TestGPUNoTelemetryMessage: hosts without NVML are named plainly, grouped.
func TestGPUNoTelemetryMessage(t *testing.T) {
	g := newTestState()
	for _, h := range []string{"st-node2", "st-node1", "st-node1"} {
		g.Add("job", Sample{Time: st0, Host: h, NVML: NVMLUnavailable, Error: "ERROR_LIBRARY_NOT_FOUND"})
	}
	r := g.Report("job")
	if r.Telemetry || len(r.GPUs) != 0 || r.Message != "no GPU telemetry: NVML was not available on st-node1, st-node2 (ERROR_LIBRARY_NOT_FOUND)" {
		t.Errorf("report = %+v", r)
	}
	if r := g.Report("other"); r.Telemetry || r.Message != "no GPU telemetry: no samples were recorded" {
		t.Errorf("empty stage: %+v", r)
	}
	// With a GPU on another host, the host without NVML becomes a note.
	for _, s := range synthetic("st-node3", 0, 3, time.Second, func(int) float64 { return 50 }) {
		g.Add("job", s)
	}
	r = g.Report("job")
	if !r.Telemetry || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "st-node1, st-node2") {
		t.Errorf("notes: %+v", r)
	}
}

// TestStatePersistence: offsets and aggregates are saved together, a
// concurrent loader that read the same lines saves nothing, and the run's
// rows go with it.
func TestStatePersistence(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateRun(ctx, store.Run{ID: "r1", Name: "r", RunDir: "/runs/r1", Transport: "local"}, []string{"train"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSubmitted(ctx, "r1", "train", "c", "77"); err != nil {
		t.Fatal(err)
	}
	a, err := LoadState(ctx, s, "r1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadState(ctx, s, "r1") // a second process, same starting point
	samples := synthetic("n1", 0, 10, time.Second, func(int) float64 { return 50 })
	for _, smp := range samples[:6] {
		a.Add("train", smp)
		b.Add("train", smp)
	}
	a.Add("train", Sample{Time: st0, Host: "n2", NVML: NVMLUnavailable, Error: "x"})
	a.Advance("/runs/r1/gpu/samples-n1.jsonl", 600, 1)
	b.Advance("/runs/r1/gpu/samples-n1.jsonl", 600, 0)
	if ok, err := a.Save(ctx, s); !ok || err != nil {
		t.Fatalf("first save: %v %v", ok, err)
	}
	if ok, err := b.Save(ctx, s); ok || err != nil {
		t.Fatalf("a save from a stale state must be dropped: %v %v", ok, err)
	}
	c, err := LoadState(ctx, s, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Offset("/runs/r1/gpu/samples-n1.jsonl") != 600 || len(c.GPUs) != 1 || len(c.Status) != 1 || c.Changed() {
		t.Fatalf("reloaded: offsets %v, %d GPUs, %d statuses", c.Offsets, len(c.GPUs), len(c.Status))
	}
	for _, smp := range samples[6:] {
		c.Add("train", smp)
	}
	c.Advance("/runs/r1/gpu/samples-n1.jsonl", 1000, 0)
	if ok, err := c.Save(ctx, s); !ok || err != nil {
		t.Fatalf("second save: %v %v", ok, err)
	}
	d, _ := LoadState(ctx, s, "r1")
	r := d.Report("train")
	if len(r.GPUs) != 1 || r.GPUs[0].Samples != 10 || r.Notes == nil || d.Offset("/runs/r1/gpu/samples-n1.jsonl") != 1000 {
		t.Errorf("after two loads: %+v offsets %v", r, d.Offsets)
	}
	if st := d.Stages(); !reflect.DeepEqual(st, []string{"train"}) {
		t.Errorf("stages %v", st)
	}
	if err := s.MarkGPUDone(ctx, "r1", st0); err != nil {
		t.Fatal(err)
	}
	if d, _ := LoadState(ctx, s, "r1"); d.DoneEndedAt != st0.UnixMilli() {
		t.Errorf("done = %d", d.DoneEndedAt)
	}

}
