package metrics

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/store"
)

// View is what `slurmtune metrics` shows of a run.
type View struct {
	Run    string               `json:"run"`
	Name   string               `json:"name"`
	State  string               `json:"state"`
	Points []store.MetricPoint  `json:"points"`
	Eval   *store.EvalRecord    `json:"eval"`
	Series []store.MetricSeries `json:"series"`
}

// Show is the run's points (those f selects), series and eval report.
func Show(ctx context.Context, st *store.Store, r *store.Run, f store.MetricFilter) (View, error) {
	pts, err := st.MetricPoints(ctx, r.ID, f)
	if err != nil {
		return View{}, err
	}
	if pts == nil {
		pts = []store.MetricPoint{}
	}
	out := View{Run: r.ID, Name: r.Name, State: r.State, Points: pts}
	if out.Series, err = st.MetricSeriesOf(ctx, r.ID); err != nil {
		return out, err
	}
	if out.Series == nil {
		out.Series = []store.MetricSeries{}
	}
	if f.Stage == "" || f.Stage == store.EvalStage {
		out.Eval, err = st.EvalReport(ctx, r.ID)
	}
	return out, err
}

// WriteCSV writes the view's points as CSV.
func (out View) WriteCSV(w io.Writer) error {
	pts := out.Points
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"stage", "name", "step", "time", "value", "job_id", "attempt", "restart"}); err != nil {
		return err
	}
	for _, p := range pts {
		step := ""
		if p.Step != nil {
			step = strconv.FormatInt(*p.Step, 10)
		}
		if err := cw.Write([]string{p.Stage, p.Name, step, p.Time.Format(time.RFC3339Nano), strconv.FormatFloat(p.Value, 'g', -1, 64),
			p.JobID, strconv.Itoa(p.Attempt), strconv.Itoa(p.Restart)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteText writes the view as text.
func (out View) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "run %s (%s) %s\n", out.Run, nvml.OneLine(out.Name), out.State)
	if len(out.Points) == 0 {
		fmt.Fprintln(w, "no metrics recorded yet (payloads append them to $SLURMTUNE_METRICS_FILE; see the README's payload contract)")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STAGE\tNAME\tSTEP\tTIME\tVALUE\tJOB\tATTEMPT\tRESTART")
		for _, p := range out.Points {
			step := "-"
			if p.Step != nil {
				step = strconv.FormatInt(*p.Step, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", nvml.OneLine(p.Stage), nvml.OneLine(p.Name), step, p.Time.Format(time.RFC3339),
				Fmt(p.Value), nvml.Dash(p.JobID), p.Attempt, p.Restart)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if out.Eval != nil {
		fmt.Fprintf(w, "eval (job %s): %s\n", out.Eval.JobID, Verdict(out.Eval.Passed))
		for _, g := range out.Eval.Gates {
			fmt.Fprintln(w, "  "+gateRecordLine(g))
		}
	}
	return nil
}

// Verdict is PASS or FAIL.
func Verdict(passed bool) string {
	if passed {
		return "PASS"
	}
	return "FAIL"
}

func gateRecordLine(g store.GateRecord) string {
	val := "missing"
	if g.Value != nil {
		val = Fmt(*g.Value)
	}
	return fmt.Sprintf("%s %s %s %s: %s", Verdict(g.Passed), nvml.OneLine(g.Metric), g.Op, Fmt(g.Threshold), val)
}

// CompareRun is one run of a comparison.
type CompareRun struct {
	ID              string             `json:"id"`
	Name            string             `json:"name"`
	State           string             `json:"state"`
	Hyperparameters map[string]any     `json:"hyperparameters"`
	FinalTrainLoss  *float64           `json:"final_train_loss"`
	FinalTrainStep  *int64             `json:"final_train_step"`
	EvalPassed      *bool              `json:"eval_passed"`
	EvalMetrics     map[string]float64 `json:"eval_metrics"`
	Gates           []store.GateRecord `json:"gates"`
	GPUHours        *float64           `json:"gpu_hours"`
	WallSeconds     *int64             `json:"wall_seconds"`
	Restarts        int                `json:"restarts"`
	Retries         int                `json:"retries"`
}

// Comparison is what `slurmtune compare` shows of runs.
type Comparison struct {
	// Differing names the hyperparameters whose values are not the same in
	// every run (absent in some counts as different).
	Differing []string     `json:"differing_hyperparameters"`
	Runs      []CompareRun `json:"runs"`
	// Sweeps are the sweep runs' tasks, with their rank (by run id).
	Sweeps map[string]*sweep.View `json:"sweeps,omitempty"`
	runs   []*store.Run
}

// Compare compares runs: differing hyperparameters, final train loss,
// eval metrics and gates, GPU-hours, wall time, restarts and retries.
func Compare(ctx context.Context, st *store.Store, runs []*store.Run) (Comparison, error) {
	out := Comparison{Differing: []string{}, Runs: []CompareRun{}, runs: runs}
	var err error
	if out.Sweeps, err = sweep.Views(ctx, st, runs); err != nil {
		return out, err
	}
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	last, err := st.LastMetricPoints(ctx, ids, "train", "loss")
	if err != nil {
		return out, err
	}
	keys := map[string]bool{}
	for _, r := range runs {
		c := CompareRun{ID: r.ID, Name: r.Name, State: r.State, EvalMetrics: map[string]float64{}, Gates: []store.GateRecord{}}
		if c.Hyperparameters, err = st.RunParams(ctx, r.ID); err != nil {
			return out, err
		}
		if c.Hyperparameters == nil {
			c.Hyperparameters = map[string]any{}
		}
		for k := range c.Hyperparameters {
			keys[k] = true
		}
		if p, ok := last[r.ID]; ok {
			v := p.Value
			c.FinalTrainLoss, c.FinalTrainStep = &v, p.Step
		}
		ev, err := st.EvalReport(ctx, r.ID)
		if err != nil {
			return out, err
		}
		if ev != nil {
			c.EvalPassed, c.EvalMetrics, c.Gates = &ev.Passed, ev.Metrics, ev.Gates
		}
		allocs, err := st.GPUAllocs(ctx, r.ID)
		if err != nil {
			return out, err
		}
		for _, a := range allocs {
			if c.GPUHours == nil {
				c.GPUHours = new(float64)
			}
			*c.GPUHours += a.GPUHours()
		}
		c.WallSeconds = wallSeconds(r)
		for _, s := range r.Stages {
			c.Restarts += s.Restarts
			c.Retries += max(s.Attempt-1, 0)
		}
		out.Runs = append(out.Runs, c)
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}) {
		first, ok0 := out.Runs[0].Hyperparameters[k]
		for _, c := range out.Runs[1:] {
			v, ok := c.Hyperparameters[k]
			if ok != ok0 || !reflect.DeepEqual(v, first) {
				out.Differing = append(out.Differing, k)
				break
			}
		}
	}
	return out, nil
}

// wallSeconds is from the first stage's start to the last stage's end (or
// now, while running); nil before anything started.
func wallSeconds(r *store.Run) *int64 {
	var start, end time.Time
	running := false
	for _, s := range r.Stages {
		if !s.StartedAt.IsZero() && (start.IsZero() || s.StartedAt.Before(start)) {
			start = s.StartedAt
		}
		if s.EndedAt.After(end) {
			end = s.EndedAt
		}
		if !s.Terminal() && !s.StartedAt.IsZero() {
			running = true
		}
	}
	if start.IsZero() {
		return nil
	}
	if running || end.IsZero() {
		end = time.Now()
	}
	n := int64(end.Sub(start) / time.Second)
	return &n
}

// WriteText writes the comparison as a table, a column a run.
func (out Comparison) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(label string, cell func(c CompareRun) string) {
		cells := []string{label}
		for _, c := range out.Runs {
			cells = append(cells, cell(c))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("RUN", func(c CompareRun) string { return c.ID })
	row("name", func(c CompareRun) string { return nvml.OneLine(c.Name) })
	row("state", func(c CompareRun) string { return c.State })
	for _, k := range out.Differing {
		row("hp "+nvml.OneLine(k), func(c CompareRun) string {
			v, ok := c.Hyperparameters[k]
			if !ok {
				return "-"
			}
			b, _ := json.Marshal(v)
			return nvml.OneLine(string(b))
		})
	}
	row("final train loss", func(c CompareRun) string {
		if c.FinalTrainLoss == nil {
			return "-"
		}
		s := Fmt(*c.FinalTrainLoss)
		if c.FinalTrainStep != nil {
			s += fmt.Sprintf(" @%d", *c.FinalTrainStep)
		}
		return s
	})
	row("eval", func(c CompareRun) string {
		if c.EvalPassed == nil {
			return "-"
		}
		return Verdict(*c.EvalPassed)
	})
	metrics := map[string]bool{}
	for _, c := range out.Runs {
		for m := range c.EvalMetrics {
			metrics[m] = true
		}
	}
	names := make([]string, 0, len(metrics))
	for m := range metrics {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		row("eval "+nvml.OneLine(m), func(c CompareRun) string {
			v, ok := c.EvalMetrics[m]
			if !ok {
				return "-"
			}
			s := Fmt(v)
			for _, g := range c.Gates {
				if g.Metric == m {
					s += fmt.Sprintf(" %s(%s %s)", Verdict(g.Passed), g.Op, Fmt(g.Threshold))
				}
			}
			return s
		})
	}
	row("GPU-hours", func(c CompareRun) string {
		if c.GPUHours == nil {
			return "-"
		}
		return nvml.FmtGPUHours(*c.GPUHours)
	})
	row("wall time", func(c CompareRun) string {
		if c.WallSeconds == nil {
			return "-"
		}
		return (time.Duration(*c.WallSeconds) * time.Second).String()
	})
	row("restarts", func(c CompareRun) string { return strconv.Itoa(c.Restarts) })
	row("retries", func(c CompareRun) string { return strconv.Itoa(c.Retries) })
	if len(out.Differing) == 0 {
		fmt.Fprintln(tw, "hyperparameters\tthe same in every run")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return WriteSweepTables(w, out.runs, out.Sweeps, true)
}

// Status is what `slurmtune status` shows of a run's metrics: its last train
// loss and its eval report.
type Status struct {
	TrainLoss  *float64           `json:"train_loss"`
	TrainStep  *int64             `json:"train_step"`
	EvalPassed *bool              `json:"eval_passed"`
	Eval       map[string]float64 `json:"eval"`
	Gates      []store.GateRecord `json:"gates"`
}

func StatusOf(ctx context.Context, st *store.Store, runs []*store.Run) (map[string]*Status, error) {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	last, err := st.LastMetricPoints(ctx, ids, "train", "loss")
	if err != nil {
		return nil, err
	}
	out := map[string]*Status{}
	for _, r := range runs {
		m := &Status{Eval: map[string]float64{}, Gates: []store.GateRecord{}}
		if p, ok := last[r.ID]; ok {
			v := p.Value
			m.TrainLoss, m.TrainStep = &v, p.Step
		}
		ev, err := st.EvalReport(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			m.EvalPassed, m.Eval, m.Gates = &ev.Passed, ev.Metrics, ev.Gates
		}
		out[r.ID] = m
	}
	return out, nil
}

// LossCell is the LOSS cell of status.
func (m *Status) LossCell() string {
	if m == nil || m.TrainLoss == nil {
		return "-"
	}
	return Fmt(*m.TrainLoss)
}

// EvalCell is the EVAL cell of status.
func (m *Status) EvalCell() string {
	if m == nil || m.EvalPassed == nil {
		return "-"
	}
	return Verdict(*m.EvalPassed)
}
