package nvml

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// The report's one computation: every GPU's samples, in time order, extend
// a running aggregate (Agg), which BuildReport uses over a set of samples
// and the run telemetry (State) keeps per stage and GPU across loads.

// maxJobsPerGPU bounds the job ids one GPU aggregate remembers.
const maxJobsPerGPU = 32

// Agg is the running summary of one GPU's samples within one stage. The
// zero value is empty; Add extends it with samples in time order. It is
// stored as JSON.
type Agg struct {
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
	UtilN    int      `json:"util_n"`
	UtilSum  float64  `json:"util_sum"`
	UtilHist []uint32 `json:"util_hist,omitempty"`
	PeakMem  uint64   `json:"peak_mem"`
	MemTotal uint64   `json:"mem_total,omitempty"`
	Energy   Counter  `json:"energy"`
	XID      Counter  `json:"xid"`
	// PowerJ integrates power between consecutive samples (the energy when
	// the driver has no energy counter).
	PowerJ     float64  `json:"power_j"`
	PowerOK    bool     `json:"power_ok,omitempty"`
	LastPowerW *float64 `json:"last_power_w,omitempty"`
	// Gaps counts the positive times between consecutive samples, in
	// tenths of a second (at most maxGapKinds distinct ones): their lower
	// median is the exporter's interval, what the last sample of a streak
	// stands for. StepS is the smallest gap, all that aggregates saved
	// before Gaps existed know.
	Gaps         map[int64]uint32 `json:"gaps,omitempty"`
	StepS        float64          `json:"step_s"`
	IdleS        float64          `json:"idle_s"`
	LongestIdleS float64          `json:"longest_idle_s"`
	LastIdle     bool             `json:"last_idle,omitempty"`
	Throttle     []string         `json:"throttle,omitempty"`
	Jobs         []string         `json:"jobs,omitempty"`
}

// step is the exporter's interval as the samples show it: the lower median
// of the gaps between consecutive samples, robust to the odd short gap (an
// exporter restarted within an interval) and to long ones (the exporter
// was down); 1 s before there are two samples.
func (a *Agg) step() float64 {
	if len(a.Gaps) == 0 {
		if a.StepS > 0 {
			return a.StepS
		}
		return 1
	}
	var n uint64
	keys := make([]int64, 0, len(a.Gaps))
	for k, c := range a.Gaps {
		keys = append(keys, k)
		n += uint64(c)
	}
	slices.Sort(keys)
	rank, cum := (n-1)/2, uint64(0)
	for _, k := range keys {
		if cum += uint64(a.Gaps[k]); cum > rank {
			return float64(k) / 10
		}
	}
	return float64(keys[len(keys)-1]) / 10
}

// maxGapKinds bounds how many distinct gaps an aggregate counts.
const maxGapKinds = 128

func (a *Agg) addGap(gap float64) {
	k := max(int64(math.Round(gap*10)), 1)
	if a.Gaps == nil {
		a.Gaps = map[int64]uint32{}
	}
	if _, ok := a.Gaps[k]; ok || len(a.Gaps) < maxGapKinds {
		a.Gaps[k]++
	}
}

// maxGapOf is the longest time between samples that still counts as one
// stretch (longer means the exporter was down) for a step.
func maxGapOf(step float64) float64 { return max(5*step, 30) }

// Add extends the aggregate with one GPU sample (not a status line).
// Samples must come in time order; one that goes back in time counts as
// simultaneous with the last.
func (a *Agg) Add(s Sample) {
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
		if gap > 0 {
			a.addGap(gap)
			if a.StepS == 0 || gap < a.StepS {
				a.StepS = gap
			}
		}
		step := a.step() // once a sample: it sorts the gaps
		maxGap := maxGapOf(step)
		// The previous sample's idle time lasts until this one.
		if a.LastIdle {
			if gap <= maxGap {
				a.IdleS += gap
			} else {
				a.IdleS += step
			}
			a.LongestIdleS = max(a.LongestIdleS, a.IdleS)
		}
		if gap > maxGap {
			a.IdleS = 0
		}
		if a.LastPowerW != nil && s.PowerW != nil && gap <= maxGap {
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
	idle := s.UtilPct != nil && *s.UtilPct < IdleUtilPct && s.MemUsedBytes != nil && *s.MemUsedBytes > IdleMemBytes
	if !idle {
		a.IdleS = 0
	}
	a.LastIdle = idle
}

// MeanUtilPct is the mean utilization, nil when no sample had one.
func (a *Agg) MeanUtilPct() *float64 {
	if a.UtilN == 0 {
		return nil
	}
	return finite(a.UtilSum / float64(a.UtilN))
}

// P95UtilPct is the nearest-rank 95th percentile of the utilization (by
// whole percent), nil when no sample had one.
func (a *Agg) P95UtilPct() *float64 {
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
func (a *Agg) Report() GPUReport {
	r := GPUReport{Host: a.Host, GPU: a.GPU, UUID: a.UUID, Model: a.Model, MIG: a.MIG, Samples: a.Samples,
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

// ReportOf summarises GPUs (one stage's) and status lines as a Report:
// per-GPU figures, the mean utilization over GPUs, the underutilized flag
// (averaged under UnderutilizedPct over more than
// UnderutilizedAfter), and, without any GPU sample, a plain message
// saying why there is no telemetry.
func ReportOf(aggs []*Agg, statuses []NVMLStatus) Report {
	r := Report{GPUs: []GPUReport{}}
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
		case NVMLUnavailable:
			msg = "NVML was not available on " + on
		case NVMLNoDevices:
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
