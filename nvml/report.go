package nvml

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report thresholds.
const (
	// IdleUtilPct and IdleMemBytes define an idle sample: utilization below
	// IdleUtilPct while more than IdleMemBytes of device memory is in use,
	// i.e. a job holds the GPU but does not compute on it.
	IdleUtilPct  = 10.0
	IdleMemBytes = 64 << 20
	// UnderutilizedPct and UnderutilizedAfter: the report is flagged
	// underutilized when the GPUs averaged under UnderutilizedPct over a
	// sampled span longer than UnderutilizedAfter.
	UnderutilizedPct   = 15.0
	UnderutilizedAfter = 5 * time.Minute
)

// Report summarises GPU samples. It is JSON-serialisable as is.
type Report struct {
	// Telemetry is false when the samples hold no GPU telemetry at all;
	// Message then says why in plain words.
	Telemetry bool      `json:"telemetry"`
	Message   string    `json:"message,omitempty"`
	Hosts     []string  `json:"hosts,omitempty"`
	Start     time.Time `json:"start,omitzero"`
	End       time.Time `json:"end,omitzero"`
	// DurationS is End-Start in seconds.
	DurationS float64 `json:"duration_s"`
	// MeanUtilPct is the mean over GPUs of their mean utilization; absent
	// when no GPU reported utilization.
	MeanUtilPct   *float64    `json:"mean_util_pct,omitempty"`
	Underutilized bool        `json:"underutilized"`
	GPUs          []GPUReport `json:"gpus"`
	// Notes are plain-language caveats, e.g. hosts where NVML was
	// unavailable while others reported.
	Notes []string `json:"notes,omitempty"`
}

// GPUReport summarises one GPU or MIG device.
type GPUReport struct {
	Host          string   `json:"host"`
	GPU           int      `json:"gpu"`
	UUID          string   `json:"uuid"`
	Model         string   `json:"model"`
	MIG           string   `json:"mig,omitempty"`
	Samples       int      `json:"samples"`
	MeanUtilPct   *float64 `json:"mean_util_pct,omitempty"`
	P95UtilPct    *float64 `json:"p95_util_pct,omitempty"`
	PeakMemBytes  uint64   `json:"peak_mem_bytes"`
	MemTotalBytes uint64   `json:"mem_total_bytes,omitempty"`
	// EnergyJ is the energy counter's increase, or integrated power when
	// the counter is absent (EnergySource "counter" or "power").
	EnergyJ      *float64 `json:"energy_j,omitempty"`
	EnergySource string   `json:"energy_source,omitempty"`
	// LongestIdleS is the longest run of idle samples (see IdleUtilPct).
	LongestIdleS float64 `json:"longest_idle_s"`
	// ThrottleReasons are the clock event reasons seen, except gpu_idle.
	ThrottleReasons []string `json:"throttle_reasons,omitempty"`
	XIDEvents       uint64   `json:"xid_events"`
	Jobs            []string `json:"jobs,omitempty"`
	Lost            bool     `json:"lost,omitempty"`
}

// BuildReport summarises samples, in any order, from one or more hosts.
// It is pure: no I/O, no clock.
func BuildReport(samples []Sample) Report {
	type key struct {
		host, uuid, mig string
		gpu             int
	}
	groups := make(map[key][]Sample)
	var statuses []Sample
	hosts := make(map[string]bool)
	for _, s := range samples {
		if s.IsStatus() {
			statuses = append(statuses, s)
			continue
		}
		hosts[s.Host] = true
		k := key{s.Host, s.UUID, s.MIG, s.GPU}
		groups[k] = append(groups[k], s)
	}

	r := Report{GPUs: []GPUReport{}}
	for h := range hosts {
		r.Hosts = append(r.Hosts, h)
	}
	slices.Sort(r.Hosts)
	for _, g := range groups {
		slices.SortStableFunc(g, func(a, b Sample) int { return a.Time.Compare(b.Time) })
		r.GPUs = append(r.GPUs, gpuReport(g))
		if first := g[0].Time; r.Start.IsZero() || first.Before(r.Start) {
			r.Start = first
		}
		if last := g[len(g)-1].Time; last.After(r.End) {
			r.End = last
		}
	}
	r.Finish(statusSummary(statuses, hosts))
	return r
}

// Finish completes a report whose GPUs, Start, End and Hosts are filled in:
// it orders the GPUs, and sets the duration, the mean utilization, the
// underutilized flag and whether telemetry was available (with notes on the
// hosts that had none, or the plain message when no host had any). Every
// way of building a Report ends with it, so they all judge alike.
func (r *Report) Finish(notes []string) {
	slices.SortFunc(r.GPUs, func(a, b GPUReport) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.GPU, b.GPU), cmp.Compare(a.MIG, b.MIG), cmp.Compare(a.UUID, b.UUID))
	})
	r.DurationS = r.End.Sub(r.Start).Seconds()
	var sum float64
	var n int
	for _, g := range r.GPUs {
		if g.MeanUtilPct != nil {
			sum += *g.MeanUtilPct
			n++
		}
	}
	r.MeanUtilPct, r.Underutilized = nil, false
	if n > 0 {
		if r.MeanUtilPct = finite(sum / float64(n)); r.MeanUtilPct != nil {
			r.Underutilized = *r.MeanUtilPct < UnderutilizedPct && r.End.Sub(r.Start) > UnderutilizedAfter
		}
	}
	r.Telemetry = len(r.GPUs) > 0
	switch {
	case r.Telemetry:
		r.Notes = notes
	case len(notes) > 0:
		r.Message = "no GPU telemetry: " + strings.Join(notes, "; ")
	default:
		r.Message = "no GPU telemetry: no samples were recorded"
	}
}

// statusSummary describes the hosts that wrote a status line and no GPU
// sample, e.g. "NVML unavailable on node1 (ERROR_LIBRARY_NOT_FOUND)".
func statusSummary(statuses []Sample, withGPUs map[string]bool) []string {
	seen := make(map[string]bool)
	var out []string
	for _, s := range statuses {
		if withGPUs[s.Host] || seen[s.Host+s.NVML] {
			continue
		}
		seen[s.Host+s.NVML] = true
		var msg string
		switch s.NVML {
		case NVMLUnavailable:
			msg = "NVML unavailable on " + hostOrUnknown(s.Host)
		case NVMLNoDevices:
			msg = "NVML found no GPU on " + hostOrUnknown(s.Host)
		default:
			msg = fmt.Sprintf("NVML status %q on %s", s.NVML, hostOrUnknown(s.Host))
		}
		if s.Error != "" {
			msg += " (" + s.Error + ")"
		}
		out = append(out, msg)
	}
	return out
}

func hostOrUnknown(h string) string {
	if h == "" {
		return "an unnamed host"
	}
	return h
}

// gpuReport summarises the time-ordered samples of one device.
func gpuReport(g []Sample) GPUReport {
	last := g[len(g)-1]
	r := GPUReport{Host: last.Host, GPU: last.GPU, UUID: last.UUID, Model: last.Model, MIG: last.MIG, Samples: len(g)}

	// Each sample stands for the time until the next one; gaps longer than
	// maxGap (the exporter was down) are not integrated.
	step := medianStep(g)
	maxGap := max(5*step, 30*time.Second)
	cover := func(i int) time.Duration {
		if i+1 < len(g) {
			if d := g[i+1].Time.Sub(g[i].Time); d <= maxGap {
				return d
			}
		}
		return step
	}

	var utils []float64
	reasons := make(map[string]bool)
	jobs := make(map[string]bool)
	var idle, longestIdle time.Duration
	var energy, xid Counter
	var powerJ float64
	var powerOK bool
	for i, s := range g {
		if s.Lost {
			r.Lost = true
		}
		if s.UtilPct != nil {
			utils = append(utils, *s.UtilPct)
		}
		if s.MemUsedBytes != nil {
			r.PeakMemBytes = max(r.PeakMemBytes, *s.MemUsedBytes)
		}
		if s.MemTotalBytes != nil {
			r.MemTotalBytes = *s.MemTotalBytes
		}
		for _, t := range s.Throttle {
			if t != "gpu_idle" {
				reasons[t] = true
			}
		}
		for j := range strings.SplitSeq(s.Job, ",") {
			if j != "" {
				jobs[j] = true
			}
		}
		if s.EnergyJ != nil {
			energy.Add(*s.EnergyJ)
		}
		if s.XID != nil {
			xid.Add(float64(*s.XID))
		}
		if i+1 < len(g) && s.PowerW != nil && g[i+1].PowerW != nil {
			if dt := g[i+1].Time.Sub(s.Time); dt <= maxGap {
				powerJ += (*s.PowerW + *g[i+1].PowerW) / 2 * dt.Seconds()
				powerOK = true
			}
		}
		isIdle := s.UtilPct != nil && *s.UtilPct < IdleUtilPct && s.MemUsedBytes != nil && *s.MemUsedBytes > IdleMemBytes
		if isIdle {
			idle += cover(i)
			longestIdle = max(longestIdle, idle)
		}
		if !isIdle || (i+1 < len(g) && g[i+1].Time.Sub(s.Time) > maxGap) {
			idle = 0
		}
	}
	if len(utils) > 0 {
		var sum float64
		for _, u := range utils {
			sum += u
		}
		r.MeanUtilPct = finite(sum / float64(len(utils)))
		r.P95UtilPct = finite(percentile(utils, 0.95))
	}
	switch {
	case energy.N >= 2:
		r.EnergyJ, r.EnergySource = finite(energy.Total), "counter"
	case powerOK:
		r.EnergyJ, r.EnergySource = finite(powerJ), "power"
	}
	if r.EnergyJ == nil {
		r.EnergySource = ""
	}
	r.LongestIdleS = longestIdle.Seconds()
	r.XIDEvents = uint64(xid.Total)
	for t := range reasons {
		r.ThrottleReasons = append(r.ThrottleReasons, t)
	}
	slices.Sort(r.ThrottleReasons)
	for j := range jobs {
		r.Jobs = append(r.Jobs, j)
	}
	slices.Sort(r.Jobs)
	return r
}

// finite returns &v, or nil when v is NaN or infinite (absurd inputs must
// not make the report unserialisable).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// Counter sums the increase of a monotonic counter, a decrease counting as
// a reset (driver reload, exporter restart), as Prometheus does. It is kept
// as JSON by running aggregates (store.GPUAgg).
type Counter struct {
	N     int     `json:"n"`
	Prev  float64 `json:"prev"`
	Total float64 `json:"total"`
}

// Add counts the next reading.
func (c *Counter) Add(v float64) {
	if c.N > 0 {
		if v >= c.Prev {
			c.Total += v - c.Prev
		} else {
			c.Total += v
		}
	}
	c.Prev = v
	c.N++
}

// medianStep is the (lower) median time between consecutive samples, 1s when
// there are fewer than two.
func medianStep(g []Sample) time.Duration {
	if len(g) < 2 {
		return time.Second
	}
	steps := make([]time.Duration, 0, len(g)-1)
	for i := 1; i < len(g); i++ {
		if d := g[i].Time.Sub(g[i-1].Time); d > 0 {
			steps = append(steps, d)
		}
	}
	if len(steps) == 0 {
		return time.Second
	}
	slices.Sort(steps)
	return steps[(len(steps)-1)/2] // lower median: robust to one long gap
}

// percentile is the nearest-rank percentile (0 < q <= 1) of vs.
func percentile(vs []float64, q float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// WriteText writes the report as a plain-text table.
func (r Report) WriteText(w io.Writer) error {
	if !r.Telemetry {
		_, err := fmt.Fprintln(w, r.Message)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GPU telemetry: %d device(s) on %s, %s to %s (%s)",
		len(r.GPUs), strings.Join(r.Hosts, ", "), r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339), fmtSeconds(r.DurationS))
	if r.MeanUtilPct != nil {
		fmt.Fprintf(&b, ", mean utilization %.1f%%", *r.MeanUtilPct)
	}
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	multiHost := len(r.Hosts) > 1
	if multiHost {
		fmt.Fprint(tw, "HOST\t")
	}
	fmt.Fprintln(tw, "GPU\tMIG\tMODEL\tUTIL MEAN\tUTIL P95\tPEAK MEM\tENERGY\tLONGEST IDLE\tTHROTTLE\tXID\tJOBS")
	for _, g := range r.GPUs {
		if multiHost {
			fmt.Fprintf(tw, "%s\t", g.Host)
		}
		gpu := fmt.Sprint(g.GPU)
		if g.Lost {
			gpu += " (lost)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			gpu, dash(g.MIG), dash(g.Model), fmtPct(g.MeanUtilPct), fmtPct(g.P95UtilPct),
			fmtBytes(g.PeakMemBytes, g.MemTotalBytes), fmtEnergy(g.EnergyJ, g.EnergySource),
			fmtSeconds(g.LongestIdleS), dash(strings.Join(g.ThrottleReasons, ",")), g.XIDEvents,
			dash(strings.Join(g.Jobs, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Underutilized {
		fmt.Fprintf(&b, "\nUNDERUTILIZED: the GPUs averaged %.1f%% utilization over %s (flagged below %.0f%% for more than %s).\n",
			*r.MeanUtilPct, fmtSeconds(r.DurationS), UnderutilizedPct, UnderutilizedAfter)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtPct(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *p)
}

func fmtBytes(used, total uint64) string {
	const gib = 1 << 30
	if total == 0 {
		return fmt.Sprintf("%.1f GiB", float64(used)/gib)
	}
	return fmt.Sprintf("%.1f/%.1f GiB", float64(used)/gib, float64(total)/gib)
}

func fmtEnergy(j *float64, source string) string {
	if j == nil {
		return "-"
	}
	var s string
	switch {
	case *j >= 1e6:
		s = fmt.Sprintf("%.2f MJ", *j/1e6)
	case *j >= 1e3:
		s = fmt.Sprintf("%.1f kJ", *j/1e3)
	default:
		s = fmt.Sprintf("%.0f J", *j)
	}
	if source == "power" {
		s += " (from power)"
	}
	return s
}

func fmtSeconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
