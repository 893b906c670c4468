package nvml

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/slurmtune/slurmtune/store"
)

// A run's GPU telemetry is kept bounded: the exporter's samples files stay
// the raw record; the database holds, per run, how far each file was read
// and, per stage and GPU, a running aggregate (Agg) that later samples
// extend. Loading is idempotent: the offsets and the aggregates they
// produced are saved in one transaction, and a save that finds the offsets
// moved on since they were read (another slurmtune loaded the same lines)
// is dropped.

type statusKey struct{ stage, host, nvml string }

// StateStore persists run telemetry (the store).
type StateStore interface {
	GPUTelemetry(ctx context.Context, runID string) (*store.GPUTelemetry, error)
	SaveGPUTelemetry(ctx context.Context, runID string, c store.GPUTelemetryChange) (saved bool, err error)
}

// State is everything the database knows of a run's GPU telemetry, as
// loaded by LoadState and extended by Add and Advance before Save.
type State struct {
	RunID string
	// Offsets is how far each samples file had been read when loaded.
	Offsets map[string]int64
	// DoneEndedAt is the run's end time (ms) when its files were last read
	// to the end after it ended; 0 when not.
	DoneEndedAt int64
	GPUs        map[store.GPUKey]*Agg
	Status      map[statusKey]*NVMLStatus

	next        map[string]int64
	bad         map[string]int
	dirtyGPU    map[store.GPUKey]bool
	dirtyStatus map[statusKey]bool
	points      []store.GPUPoint
}

// Offset is how far path has been read, including what was added since
// the state was loaded.
func (g *State) Offset(path string) int64 {
	if o, ok := g.next[path]; ok {
		return o
	}
	return g.Offsets[path]
}

// Advance records that path has been read up to offset, with bad lines
// that could not be parsed.
func (g *State) Advance(path string, offset int64, badLines int) {
	g.next[path] = offset
	g.bad[path] += badLines
}

// Add adds one sample line (GPU sample or status line) to a stage.
func (g *State) Add(stage string, s Sample) {
	if s.IsStatus() {
		k := statusKey{stage, s.Host, s.NVML}
		st := g.Status[k]
		if st == nil {
			st = &NVMLStatus{Stage: stage, Host: s.Host, NVML: s.NVML, First: s.Time}
			g.Status[k] = st
		}
		if s.Error != "" {
			st.Error = s.Error
		}
		if s.Time.Before(st.First) {
			st.First = s.Time
		}
		if s.Time.After(st.Last) {
			st.Last = s.Time
		}
		g.dirtyStatus[k] = true
		return
	}
	k := store.GPUKey{Stage: stage, Host: s.Host, GPU: s.GPU, UUID: s.UUID, MIG: s.MIG}
	a := g.GPUs[k]
	if a == nil {
		a = &Agg{}
		g.GPUs[k] = a
	}
	a.Add(s)
	g.dirtyGPU[k] = true
	g.points = append(g.points, store.GPUPoint{GPUKey: k, Time: s.Time, UtilPct: s.UtilPct, MemUsed: s.MemUsedBytes, PowerW: s.PowerW})
}

// Changed reports whether anything was added or read since loading.
func (g *State) Changed() bool {
	for p, o := range g.next {
		if o != g.Offsets[p] {
			return true
		}
	}
	return len(g.dirtyGPU) > 0 || len(g.dirtyStatus) > 0 || len(g.points) > 0
}

// Stages lists the stages with telemetry or status lines, sorted.
func (g *State) Stages() []string {
	seen := map[string]bool{}
	for k := range g.GPUs {
		seen[k.Stage] = true
	}
	for k := range g.Status {
		seen[k.stage] = true
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// HasStage reports whether a stage has any telemetry or status line.
func (g *State) HasStage(stage string) bool { return slices.Contains(g.Stages(), stage) }

// Report is the GPU report of one stage.
func (g *State) Report(stage string) Report {
	var aggs []*Agg
	for k, a := range g.GPUs {
		if k.Stage == stage {
			aggs = append(aggs, a)
		}
	}
	var sts []NVMLStatus
	for k, s := range g.Status {
		if k.stage == stage {
			sts = append(sts, *s)
		}
	}
	sort.Slice(sts, func(i, j int) bool { return sts[i].Host < sts[j].Host })
	return ReportOf(aggs, sts)
}

// LoadState loads a run's GPU telemetry state.
func LoadState(ctx context.Context, st StateStore, runID string) (*State, error) {
	t, err := st.GPUTelemetry(ctx, runID)
	if err != nil {
		return nil, err
	}
	g := newState(runID)
	g.Offsets, g.DoneEndedAt = t.Offsets, t.DoneEndedAt
	for _, s := range t.Stats {
		a := &Agg{}
		if err := json.Unmarshal(s.Agg, a); err != nil {
			return nil, fmt.Errorf("GPU telemetry of %s: GPU aggregate %v: %w", runID, s.GPUKey, err)
		}
		g.GPUs[s.GPUKey] = a
	}
	for _, s := range t.Statuses {
		g.Status[statusKey{s.Stage, s.Host, s.NVML}] = &NVMLStatus{Stage: s.Stage, Host: s.Host, NVML: s.NVML, Error: s.Error, First: s.First, Last: s.Last}
	}
	return g, nil
}

func newState(runID string) *State {
	return &State{RunID: runID, Offsets: map[string]int64{}, GPUs: map[store.GPUKey]*Agg{}, Status: map[statusKey]*NVMLStatus{},
		next: map[string]int64{}, bad: map[string]int{}, dirtyGPU: map[store.GPUKey]bool{}, dirtyStatus: map[statusKey]bool{}}
}

// Save saves what was read and added since g was loaded, unless another
// process has moved any of the run's file offsets meanwhile (then it read
// the same lines: nothing is saved and saved is false; load the state again
// to see its result).
func (g *State) Save(ctx context.Context, st StateStore) (saved bool, err error) {
	if !g.Changed() {
		return true, nil
	}
	c := store.GPUTelemetryChange{Offsets: g.Offsets, Next: g.next, Bad: g.bad, Points: g.points}
	for k := range g.dirtyGPU {
		blob, err := json.Marshal(g.GPUs[k])
		if err != nil {
			return false, err
		}
		c.Stats = append(c.Stats, store.GPUStat{GPUKey: k, Agg: blob})
	}
	for k := range g.dirtyStatus {
		s := g.Status[k]
		c.Statuses = append(c.Statuses, store.GPUStatus{Stage: k.stage, Host: k.host, NVML: k.nvml, Error: s.Error, First: s.First, Last: s.Last})
	}
	if saved, err = st.SaveGPUTelemetry(ctx, g.RunID, c); err != nil || !saved {
		return saved, err
	}
	for p, o := range g.next {
		g.Offsets[p] = o
	}
	clear(g.next)
	clear(g.bad)
	clear(g.dirtyGPU)
	clear(g.dirtyStatus)
	g.points = nil
	return true, nil
}
