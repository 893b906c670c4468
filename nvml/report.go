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

// BuildReport summarises samples, in any order, from one or more hosts,
// with the same aggregate (Agg) and wording the stored run telemetry uses.
// It is pure: no I/O, no clock.
func BuildReport(samples []Sample) Report {
	type key struct {
		host, uuid, mig string
		gpu             int
	}
	groups := make(map[key][]Sample)
	var statuses []NVMLStatus
	for _, s := range samples {
		if s.IsStatus() {
			statuses = append(statuses, NVMLStatus{Host: s.Host, NVML: s.NVML, Error: s.Error, First: s.Time, Last: s.Time})
			continue
		}
		k := key{s.Host, s.UUID, s.MIG, s.GPU}
		groups[k] = append(groups[k], s)
	}
	aggs := make([]*Agg, 0, len(groups))
	for _, g := range groups {
		slices.SortStableFunc(g, func(a, b Sample) int { return a.Time.Compare(b.Time) })
		a := &Agg{}
		for _, s := range g {
			a.Add(s)
		}
		aggs = append(aggs, a)
	}
	return ReportOf(aggs, statuses)
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
			gpu, Dash(g.MIG), Dash(g.Model), fmtPct(g.MeanUtilPct), fmtPct(g.P95UtilPct),
			fmtBytes(g.PeakMemBytes, g.MemTotalBytes), fmtEnergy(g.EnergyJ, g.EnergySource),
			fmtSeconds(g.LongestIdleS), Dash(strings.Join(g.ThrottleReasons, ",")), g.XIDEvents,
			Dash(strings.Join(g.Jobs, ",")))
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

// Dash is s, or "-" for an empty cell.
func Dash(s string) string {
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
