package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/nvml"
)

// GPU telemetry is kept bounded: the exporter's samples files stay the raw
// record; the database holds, per run, how far each file was read and, per
// stage and GPU, a running aggregate (GPUAgg) that later samples extend.
// Loading is idempotent: the offsets and the aggregates they produced are
// saved in one transaction, and a save that finds the offsets moved on since
// they were read (another slurmtune loaded the same lines) is dropped.

// maxJobsPerGPU bounds the job ids one GPU aggregate remembers.
const maxJobsPerGPU = 32

// GPUKey names one GPU (or MIG device) within one stage of a run.
type GPUKey struct {
	Stage, Host string
	GPU         int
	UUID, MIG   string
}

// GPUAgg is the running summary of one GPU's samples within one stage. The
// zero value is empty; Add extends it with samples in time order. It is
// stored as JSON.
type GPUAgg struct {
	Host    string    `json:"host"`
	GPU     int       `json:"gpu"`
	UUID    string    `json:"uuid,omitempty"`
	Model   string    `json:"model,omitempty"`
	MIG     string    `json:"mig,omitempty"`
	Lost    bool      `json:"lost,omitempty"`
	Samples int       `json:"samples"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	// UtilHist counts utilization samples by rounded percent (0-100): the
	// p95 is exact for NVML's integer percentages.
	UtilN    int          `json:"util_n"`
	UtilSum  float64      `json:"util_sum"`
	UtilHist []uint32     `json:"util_hist,omitempty"`
	PeakMem  uint64       `json:"peak_mem"`
	MemTotal uint64       `json:"mem_total,omitempty"`
	Energy   nvml.Counter `json:"energy"`
	XID      nvml.Counter `json:"xid"`
	// PowerJ integrates power between consecutive samples (the energy when
	// the driver has no energy counter).
	PowerJ     float64  `json:"power_j"`
	PowerOK    bool     `json:"power_ok,omitempty"`
	LastPowerW *float64 `json:"last_power_w,omitempty"`
	// StepS is the smallest positive time between two samples: the
	// exporter's interval, what the last sample of a streak stands for.
	StepS        float64  `json:"step_s"`
	IdleS        float64  `json:"idle_s"`
	LongestIdleS float64  `json:"longest_idle_s"`
	LastIdle     bool     `json:"last_idle,omitempty"`
	Throttle     []string `json:"throttle,omitempty"`
	Jobs         []string `json:"jobs,omitempty"`
}

func (a *GPUAgg) step() float64 {
	if a.StepS <= 0 {
		return 1
	}
	return a.StepS
}

// maxGap is the longest time between samples that still counts as one
// stretch (longer means the exporter was down), as nvml.BuildReport has it.
func (a *GPUAgg) maxGap() float64 { return max(5*a.step(), 30) }

// Add extends the aggregate with one GPU sample (not a status line).
// Samples must come in time order; one that goes back in time counts as
// simultaneous with the last.
func (a *GPUAgg) Add(s nvml.Sample) {
	if a.Samples == 0 {
		a.Host, a.GPU, a.UUID, a.MIG = s.Host, s.GPU, s.UUID, s.MIG
		a.First = s.Time
	}
	if s.Model != "" {
		a.Model = s.Model
	}
	gap := 0.0
	if a.Samples > 0 {
		gap = max(s.Time.Sub(a.Last).Seconds(), 0)
		if gap > 0 && (a.StepS == 0 || gap < a.StepS) {
			a.StepS = gap
		}
		// The previous sample's idle time lasts until this one.
		if a.LastIdle {
			if gap <= a.maxGap() {
				a.IdleS += gap
			} else {
				a.IdleS += a.step()
			}
			a.LongestIdleS = max(a.LongestIdleS, a.IdleS)
		}
		if gap > a.maxGap() {
			a.IdleS = 0
		}
		if a.LastPowerW != nil && s.PowerW != nil && gap <= a.maxGap() {
			a.PowerJ += (*a.LastPowerW + *s.PowerW) / 2 * gap
			a.PowerOK = true
		}
	}
	a.Samples++
	if s.Time.After(a.Last) {
		a.Last = s.Time
	}
	if s.Time.Before(a.First) {
		a.First = s.Time
	}
	if s.Lost {
		a.Lost = true
	}
	if s.UtilPct != nil && !math.IsNaN(*s.UtilPct) && !math.IsInf(*s.UtilPct, 0) {
		u := *s.UtilPct
		a.UtilN++
		a.UtilSum += u
		if a.UtilHist == nil {
			a.UtilHist = make([]uint32, 101)
		}
		a.UtilHist[int(math.Round(min(max(u, 0), 100)))]++
	}
	if s.MemUsedBytes != nil {
		a.PeakMem = max(a.PeakMem, *s.MemUsedBytes)
	}
	if s.MemTotalBytes != nil {
		a.MemTotal = *s.MemTotalBytes
	}
	if s.EnergyJ != nil {
		a.Energy.Add(*s.EnergyJ)
	}
	if s.XID != nil {
		a.XID.Add(float64(*s.XID))
	}
	a.LastPowerW = s.PowerW
	for _, t := range s.Throttle {
		if t != "gpu_idle" && !slices.Contains(a.Throttle, t) {
			a.Throttle = append(a.Throttle, t)
		}
	}
	for j := range strings.SplitSeq(s.Job, ",") {
		if j != "" && len(a.Jobs) < maxJobsPerGPU && !slices.Contains(a.Jobs, j) {
			a.Jobs = append(a.Jobs, j)
		}
	}
	idle := s.UtilPct != nil && *s.UtilPct < nvml.IdleUtilPct && s.MemUsedBytes != nil && *s.MemUsedBytes > nvml.IdleMemBytes
	if !idle {
		a.IdleS = 0
	}
	a.LastIdle = idle
}

// MeanUtilPct is the mean utilization, nil when no sample had one.
func (a *GPUAgg) MeanUtilPct() *float64 {
	if a.UtilN == 0 {
		return nil
	}
	return finite(a.UtilSum / float64(a.UtilN))
}

// P95UtilPct is the nearest-rank 95th percentile of the utilization (by
// whole percent), nil when no sample had one.
func (a *GPUAgg) P95UtilPct() *float64 {
	if a.UtilN == 0 || len(a.UtilHist) == 0 {
		return nil
	}
	rank := max(int(math.Ceil(0.95*float64(a.UtilN)))-1, 0)
	cum := 0
	for v, n := range a.UtilHist {
		cum += int(n)
		if cum > rank {
			f := float64(v)
			return &f
		}
	}
	f := 100.0
	return &f
}

// Report is the aggregate as the nvml report shows one GPU.
func (a *GPUAgg) Report() nvml.GPUReport {
	r := nvml.GPUReport{Host: a.Host, GPU: a.GPU, UUID: a.UUID, Model: a.Model, MIG: a.MIG, Samples: a.Samples,
		MeanUtilPct: a.MeanUtilPct(), P95UtilPct: a.P95UtilPct(), PeakMemBytes: a.PeakMem, MemTotalBytes: a.MemTotal,
		XIDEvents: uint64(a.XID.Total), Lost: a.Lost, LongestIdleS: a.LongestIdleS}
	if a.LastIdle {
		r.LongestIdleS = max(r.LongestIdleS, a.IdleS+a.step())
	}
	switch {
	case a.Energy.N >= 2:
		r.EnergyJ, r.EnergySource = finite(a.Energy.Total), "counter"
	case a.PowerOK:
		r.EnergyJ, r.EnergySource = finite(a.PowerJ), "power"
	}
	if r.EnergyJ == nil {
		r.EnergySource = ""
	}
	r.ThrottleReasons = slices.Sorted(slices.Values(a.Throttle))
	r.Jobs = slices.Sorted(slices.Values(a.Jobs))
	return r
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// NVMLStatus is what a host's status lines said within one stage: NVML
// unavailable, or no GPU found.
type NVMLStatus struct {
	Stage string    `json:"stage"`
	Host  string    `json:"host"`
	NVML  string    `json:"nvml"`
	Error string    `json:"error,omitempty"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

type statusKey struct{ stage, host, nvml string }

// GPUReport summarises one stage's GPUs and status lines as an nvml.Report:
// per-GPU figures, the mean utilization over GPUs, the underutilized flag
// (averaged under nvml.UnderutilizedPct over more than
// nvml.UnderutilizedAfter), and, without any GPU sample, a plain message
// saying why there is no telemetry.
func GPUReport(aggs []*GPUAgg, statuses []NVMLStatus) nvml.Report {
	r := nvml.Report{GPUs: []nvml.GPUReport{}}
	hosts := map[string]bool{}
	for _, a := range aggs {
		if a.Samples == 0 {
			continue
		}
		hosts[a.Host] = true
		r.GPUs = append(r.GPUs, a.Report())
		if r.Start.IsZero() || a.First.Before(r.Start) {
			r.Start = a.First
		}
		if a.Last.After(r.End) {
			r.End = a.Last
		}
	}
	r.Hosts = slices.Sorted(func(yield func(string) bool) {
		for h := range hosts {
			if !yield(h) {
				return
			}
		}
	})
	r.Finish(statusNotes(statuses, hosts))
	return r
}

// statusNotes says, in plain words and grouped by what was said, which
// hosts reported no GPU telemetry (hosts that also sent GPU samples are left
// out), e.g. "NVML was not available on st-node1, st-node2
// (ERROR_LIBRARY_NOT_FOUND)".
func statusNotes(statuses []NVMLStatus, withGPUs map[string]bool) []string {
	type group struct{ nvml, err string }
	byGroup := map[group][]string{}
	var order []group
	for _, s := range statuses {
		if withGPUs[s.Host] {
			continue
		}
		g := group{s.NVML, s.Error}
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		h := s.Host
		if h == "" {
			h = "an unnamed host"
		}
		if !slices.Contains(byGroup[g], h) {
			byGroup[g] = append(byGroup[g], h)
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		return cmp.Or(cmp.Compare(order[i].nvml, order[j].nvml), cmp.Compare(order[i].err, order[j].err)) < 0
	})
	var out []string
	for _, g := range order {
		hosts := byGroup[g]
		slices.Sort(hosts)
		on := strings.Join(hosts, ", ")
		var msg string
		switch g.nvml {
		case nvml.NVMLUnavailable:
			msg = "NVML was not available on " + on
		case nvml.NVMLNoDevices:
			msg = "NVML found no GPU on " + on
		default:
			msg = fmt.Sprintf("NVML status %q on %s", g.nvml, on)
		}
		if g.err != "" {
			msg += " (" + g.err + ")"
		}
		out = append(out, msg)
	}
	return out
}

// GPUState is everything the database knows of a run's GPU telemetry, as
// loaded by GPUState and extended by Add and Advance before SaveGPUState.
type GPUState struct {
	RunID string
	// Offsets is how far each samples file had been read when loaded.
	Offsets map[string]int64
	// DoneEndedAt is the run's end time (ms) when its files were last read
	// to the end after it ended; 0 when not.
	DoneEndedAt int64
	GPUs        map[GPUKey]*GPUAgg
	Status      map[statusKey]*NVMLStatus

	next        map[string]int64
	bad         map[string]int
	dirtyGPU    map[GPUKey]bool
	dirtyStatus map[statusKey]bool
	points      []GPUPoint
}

// GPUPoint is one GPU sample's utilization, memory and power over time.
type GPUPoint struct {
	GPUKey
	Time    time.Time `json:"time"`
	UtilPct *float64  `json:"util_pct"`
	MemUsed *uint64   `json:"mem_used_bytes"`
	PowerW  *float64  `json:"power_w"`
}

// Offset is how far path has been read, including what was added since
// the state was loaded.
func (g *GPUState) Offset(path string) int64 {
	if o, ok := g.next[path]; ok {
		return o
	}
	return g.Offsets[path]
}

// Advance records that path has been read up to offset, with bad lines
// that could not be parsed.
func (g *GPUState) Advance(path string, offset int64, badLines int) {
	g.next[path] = offset
	g.bad[path] += badLines
}

// Add adds one sample line (GPU sample or status line) to a stage.
func (g *GPUState) Add(stage string, s nvml.Sample) {
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
	k := GPUKey{stage, s.Host, s.GPU, s.UUID, s.MIG}
	a := g.GPUs[k]
	if a == nil {
		a = &GPUAgg{}
		g.GPUs[k] = a
	}
	a.Add(s)
	g.dirtyGPU[k] = true
	g.points = append(g.points, GPUPoint{GPUKey: k, Time: s.Time, UtilPct: s.UtilPct, MemUsed: s.MemUsedBytes, PowerW: s.PowerW})
}

// Changed reports whether anything was added or read since loading.
func (g *GPUState) Changed() bool {
	for p, o := range g.next {
		if o != g.Offsets[p] {
			return true
		}
	}
	return len(g.dirtyGPU) > 0 || len(g.dirtyStatus) > 0 || len(g.points) > 0
}

// Stages lists the stages with telemetry or status lines, sorted.
func (g *GPUState) Stages() []string {
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
func (g *GPUState) HasStage(stage string) bool { return slices.Contains(g.Stages(), stage) }

// Report is the GPU report of one stage.
func (g *GPUState) Report(stage string) nvml.Report {
	var aggs []*GPUAgg
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
	return GPUReport(aggs, sts)
}

// GPUState loads a run's GPU telemetry state.
func (s *Store) GPUState(ctx context.Context, runID string) (*GPUState, error) {
	g := &GPUState{RunID: runID, Offsets: map[string]int64{}, GPUs: map[GPUKey]*GPUAgg{}, Status: map[statusKey]*NVMLStatus{},
		next: map[string]int64{}, bad: map[string]int{}, dirtyGPU: map[GPUKey]bool{}, dirtyStatus: map[statusKey]bool{}}
	if err := g.load(ctx, s.db); err != nil {
		return nil, fmt.Errorf("GPU telemetry of %s: %w", runID, err)
	}
	return g, nil
}

type queryRower interface {
	querier
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// gpuOffsets reads how far each samples file of a run has been loaded.
func gpuOffsets(ctx context.Context, q querier, runID string) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT path, read_to FROM gpu_files WHERE run_id = ?`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var p string
		var o int64
		if err := rows.Scan(&p, &o); err != nil {
			return nil, err
		}
		out[p] = o
	}
	return out, rows.Err()
}

func (g *GPUState) load(ctx context.Context, q queryRower) error {
	offsets, err := gpuOffsets(ctx, q, g.RunID)
	if err != nil {
		return err
	}
	g.Offsets = offsets
	rows, err := q.QueryContext(ctx, `SELECT stage, host, gpu, uuid, mig, agg FROM gpu_stats WHERE run_id = ?`, g.RunID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k GPUKey
		var blob string
		if err := rows.Scan(&k.Stage, &k.Host, &k.GPU, &k.UUID, &k.MIG, &blob); err != nil {
			rows.Close()
			return err
		}
		a := &GPUAgg{}
		if err := json.Unmarshal([]byte(blob), a); err != nil {
			rows.Close()
			return fmt.Errorf("GPU aggregate %v: %w", k, err)
		}
		g.GPUs[k] = a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = q.QueryContext(ctx, `SELECT stage, host, nvml, error, first_at, last_at FROM gpu_nvml_status WHERE run_id = ?`, g.RunID)
	if err != nil {
		return err
	}
	for rows.Next() {
		st := &NVMLStatus{}
		var first, last int64
		if err := rows.Scan(&st.Stage, &st.Host, &st.NVML, &st.Error, &first, &last); err != nil {
			rows.Close()
			return err
		}
		st.First, st.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
		g.Status[statusKey{st.Stage, st.Host, st.NVML}] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	err = q.QueryRowContext(ctx, `SELECT ended_at FROM gpu_done WHERE run_id = ?`, g.RunID).Scan(&g.DoneEndedAt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return nil
}

// SaveGPUState saves what was read and added since g was loaded, in one
// transaction, unless another process has moved any of the run's file
// offsets meanwhile (then it read the same lines: nothing is saved and
// saved is false; load the state again to see its result).
func (s *Store) SaveGPUState(ctx context.Context, g *GPUState) (saved bool, err error) {
	if !g.Changed() {
		return true, nil
	}
	now := ms(time.Now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := gpuOffsets(ctx, tx, g.RunID)
		if err != nil {
			return err
		}
		for p, o := range cur {
			if g.Offsets[p] != o {
				return nil // someone else loaded these lines
			}
		}
		for p := range g.Offsets {
			if _, ok := cur[p]; !ok {
				return nil
			}
		}
		for p, o := range g.next {
			if _, err := tx.ExecContext(ctx, `INSERT INTO gpu_files (run_id, path, read_to, bad_lines, updated_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (run_id, path) DO UPDATE SET read_to = excluded.read_to, bad_lines = bad_lines + excluded.bad_lines,
				updated_at = excluded.updated_at`, g.RunID, p, o, g.bad[p], now); err != nil {
				return err
			}
		}
		for k := range g.dirtyGPU {
			blob, err := json.Marshal(g.GPUs[k])
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO gpu_stats (run_id, stage, host, gpu, uuid, mig, agg, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (run_id, stage, host, gpu, uuid, mig) DO UPDATE SET agg = excluded.agg, updated_at = excluded.updated_at`,
				g.RunID, k.Stage, k.Host, k.GPU, k.UUID, k.MIG, string(blob), now); err != nil {
				return err
			}
		}
		if err := insertGPUPoints(ctx, tx, g.RunID, g.points); err != nil {
			return err
		}
		for k := range g.dirtyStatus {
			st := g.Status[k]
			if _, err := tx.ExecContext(ctx, `INSERT INTO gpu_nvml_status (run_id, stage, host, nvml, error, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (run_id, stage, host, nvml) DO UPDATE SET error = excluded.error, first_at = excluded.first_at, last_at = excluded.last_at`,
				g.RunID, k.stage, k.host, k.nvml, st.Error, ms(st.First), ms(st.Last)); err != nil {
				return err
			}
		}
		saved = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save GPU telemetry of %s: %w", g.RunID, err)
	}
	if saved {
		for p, o := range g.next {
			g.Offsets[p] = o
		}
		clear(g.next)
		clear(g.bad)
		clear(g.dirtyGPU)
		clear(g.dirtyStatus)
		g.points = nil
	}
	return saved, nil
}

func insertGPUPoints(ctx context.Context, tx *sql.Tx, runID string, pts []GPUPoint) error {
	if len(pts) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO gpu_points (run_id, stage, host, gpu, uuid, mig, at, util, mem_used, power_w)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, p := range pts {
		var mem sql.NullInt64
		if p.MemUsed != nil && *p.MemUsed <= math.MaxInt64 {
			mem = sql.NullInt64{Int64: int64(*p.MemUsed), Valid: true}
		}
		if _, err := stmt.ExecContext(ctx, runID, p.Stage, p.Host, p.GPU, p.UUID, p.MIG, ms(p.Time), nullFloat(p.UtilPct), mem, nullFloat(p.PowerW)); err != nil {
			return err
		}
	}
	return nil
}

func nullFloat(v *float64) sql.NullFloat64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return sql.NullFloat64{}
	}
	return sql.NullFloat64{Float64: *v, Valid: true}
}

// GPUPoints lists a run's GPU samples, by GPU and time.
func (s *Store) GPUPoints(ctx context.Context, runID string) ([]GPUPoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stage, host, gpu, uuid, mig, at, util, mem_used, power_w FROM gpu_points
		WHERE run_id = ? ORDER BY host, gpu, uuid, mig, at`, runID)
	if err != nil {
		return nil, fmt.Errorf("GPU samples of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []GPUPoint
	for rows.Next() {
		var p GPUPoint
		var at int64
		var util, power sql.NullFloat64
		var mem sql.NullInt64
		if err := rows.Scan(&p.Stage, &p.Host, &p.GPU, &p.UUID, &p.MIG, &at, &util, &mem, &power); err != nil {
			return nil, err
		}
		p.Time = time.UnixMilli(at).UTC()
		if util.Valid {
			p.UtilPct = &util.Float64
		}
		if power.Valid {
			p.PowerW = &power.Float64
		}
		if mem.Valid {
			m := uint64(mem.Int64)
			p.MemUsed = &m
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// MarkGPUDone records that a run's samples files were read to the end after
// the run ended at endedAt: they are not read again unless the run ends
// again at another time (a retry).
func (s *Store) MarkGPUDone(ctx context.Context, runID string, endedAt time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO gpu_done (run_id, ended_at) VALUES (?, ?)
			ON CONFLICT (run_id) DO UPDATE SET ended_at = excluded.ended_at`, runID, ms(endedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("mark GPU telemetry of %s read: %w", runID, err)
	}
	return nil
}

// GPUAlloc is the GPUs one job was allocated and for how long.
type GPUAlloc struct {
	RunID, Stage, JobID string
	GPUs                int
	Elapsed             time.Duration
	// Source is "sacct" (Slurm accounting's AllocTRES gres/gpu and
	// ElapsedRaw) or "pipeline" (nodes x gpus_per_node, elapsed as tracked).
	Source string
	// Final is set once the job has ended: the figures do not change.
	Final bool
}

// GPUHours is GPUs x elapsed, in hours.
func (a GPUAlloc) GPUHours() float64 { return float64(a.GPUs) * a.Elapsed.Hours() }

// SetGPUAlloc records a job's GPU allocation.
func (s *Store) SetGPUAlloc(ctx context.Context, a GPUAlloc) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO gpu_alloc (run_id, stage, job_id, gpus, elapsed_s, source, final, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, stage, job_id) DO UPDATE SET gpus = excluded.gpus, elapsed_s = excluded.elapsed_s, source = excluded.source,
			final = excluded.final, updated_at = excluded.updated_at`,
			a.RunID, a.Stage, a.JobID, a.GPUs, int64(a.Elapsed/time.Second), a.Source, a.Final, ms(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("record GPU allocation of job %s: %w", a.JobID, err)
	}
	return nil
}

// GPUAllocs lists the recorded GPU allocations of a run's jobs.
func (s *Store) GPUAllocs(ctx context.Context, runID string) ([]GPUAlloc, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stage, job_id, gpus, elapsed_s, source, final FROM gpu_alloc WHERE run_id = ? ORDER BY stage, job_id`, runID)
	if err != nil {
		return nil, fmt.Errorf("GPU allocations of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []GPUAlloc
	for rows.Next() {
		a := GPUAlloc{RunID: runID}
		var el int64
		if err := rows.Scan(&a.Stage, &a.JobID, &a.GPUs, &el, &a.Source, &a.Final); err != nil {
			return nil, err
		}
		a.Elapsed = time.Duration(el) * time.Second
		out = append(out, a)
	}
	return out, rows.Err()
}

// JobRecord is one Slurm job submitted for a stage (every attempt).
type JobRecord struct {
	JobID, Cluster, Stage string
	Attempt               int
	State                 string
	SubmittedAt           time.Time
}

// RunJobs lists every job submitted for a run, oldest first.
func (s *Store) RunJobs(ctx context.Context, runID string) ([]JobRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT job_id, cluster, stage, attempt, state, submitted_at FROM jobs WHERE run_id = ? ORDER BY submitted_at, stage`, runID)
	if err != nil {
		return nil, fmt.Errorf("jobs of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []JobRecord
	for rows.Next() {
		var j JobRecord
		var at int64
		if err := rows.Scan(&j.JobID, &j.Cluster, &j.Stage, &j.Attempt, &j.State, &at); err != nil {
			return nil, err
		}
		j.SubmittedAt = time.UnixMilli(at)
		out = append(out, j)
	}
	return out, rows.Err()
}

// RunOfJob finds the run and stage a Slurm job id was submitted for (the
// newest submission when the id was reused). It returns an error wrapping
// ErrNotFound when no run has it.
func (s *Store) RunOfJob(ctx context.Context, jobID string) (runID, stage string, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT run_id, stage FROM jobs WHERE job_id = ? ORDER BY submitted_at DESC LIMIT 1`, jobID).Scan(&runID, &stage)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("job %s: %w", jobID, err)
	}
	return runID, stage, nil
}

// SbatchJob is how a job submitted with `slurmtune sbatch` was submitted.
type SbatchJob struct {
	RunID string
	// Script is the user's script (a copy of it lives in the run directory);
	// Args are its arguments and Options the sbatch options given.
	Script  string
	Args    []string
	Options []string
	// Output is the job's output path as sbatch was told it (the user's
	// --output, or the run directory's log).
	Output string
	// OutputResolved is Output with the job id (and name, user) filled in;
	// empty when it holds patterns known only on the node.
	OutputResolved string
}

// SetSbatchJob records how a job was submitted.
func (s *Store) SetSbatchJob(ctx context.Context, j SbatchJob) error {
	args, _ := json.Marshal(nonNil(j.Args))
	opts, _ := json.Marshal(nonNil(j.Options))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sbatch_jobs (run_id, script, args, options, output, output_resolved) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id) DO UPDATE SET script = excluded.script, args = excluded.args, options = excluded.options,
			output = excluded.output, output_resolved = excluded.output_resolved`,
			j.RunID, j.Script, string(args), string(opts), j.Output, j.OutputResolved)
		return err
	})
	if err != nil {
		return fmt.Errorf("record sbatch job of %s: %w", j.RunID, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetSbatchJob returns how a run's job was submitted with `slurmtune
// sbatch`; an error wrapping ErrNotFound when it was not.
func (s *Store) GetSbatchJob(ctx context.Context, runID string) (*SbatchJob, error) {
	j := &SbatchJob{RunID: runID}
	var args, opts string
	err := s.db.QueryRowContext(ctx, `SELECT script, args, options, output, output_resolved FROM sbatch_jobs WHERE run_id = ?`, runID).
		Scan(&j.Script, &args, &opts, &j.Output, &j.OutputResolved)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sbatch job of %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sbatch job of %s: %w", runID, err)
	}
	if err := json.Unmarshal([]byte(args), &j.Args); err != nil {
		return nil, fmt.Errorf("sbatch job of %s: %w", runID, err)
	}
	if err := json.Unmarshal([]byte(opts), &j.Options); err != nil {
		return nil, fmt.Errorf("sbatch job of %s: %w", runID, err)
	}
	return j, nil
}

// DeleteUnsubmittedRun removes a run none of whose stages ever got a job
// (its sbatch was refused): there is nothing in Slurm to track.
func (s *Store) DeleteUnsubmittedRun(ctx context.Context, runID string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE run_id = ?`, runID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("it has %d job(s)", n)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM transitions WHERE run_id = ?`, runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE id = ?`, runID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete unsubmitted run %s: %w", runID, err)
	}
	return nil
}
