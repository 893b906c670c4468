package main

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
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/store"
)

type metricsOptions struct {
	run, stage, name string
	json, csv        bool
	noSync           bool
}

func metricsCommand() *cli.Command {
	return &cli.Command{
		Name:      "metrics",
		Usage:     "show the training curves and eval metrics a run's stages reported (refreshed first)",
		ArgsUsage: "RUN",
		Description: "Prints every point the run's payloads appended to $SLURMTUNE_METRICS_FILE\n" +
			"(see the README's payload contract) with its step, time, Slurm job, retry\n" +
			"attempt and restart, after reading what is new.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "stage", Usage: "only this stage's metrics (train, eval, ...)"},
			&cli.StringFlag{Name: "name", Usage: "only this metric (loss, learning_rate, ...)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "csv", Usage: "print CSV"},
			&cli.BoolFlag{Name: "no-sync", Usage: "show what the database knows without asking Slurm or reading new lines"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("metrics: want one RUN")
			}
			if c.Bool("json") && c.Bool("csv") {
				return usagef("metrics: --json and --csv exclude each other")
			}
			return showMetrics(c.Context, e, metricsOptions{run: c.Args().First(), stage: c.String("stage"), name: c.String("name"),
				json: c.Bool("json"), csv: c.Bool("csv"), noSync: c.Bool("no-sync")})
		},
	}
}

type metricsJSON struct {
	Run    string               `json:"run"`
	Name   string               `json:"name"`
	State  string               `json:"state"`
	Points []store.MetricPoint  `json:"points"`
	Eval   *store.EvalRecord    `json:"eval"`
	Series []store.MetricSeries `json:"series"`
}

// refreshRuns syncs with Slurm and reads what is new for the runs, unless
// noSync; it returns the runs as the database then has them.
func refreshRuns(ctx context.Context, e *env, st *store.Store, runs []*store.Run, noSync bool) ([]*store.Run, error) {
	if noSync {
		return runs, nil
	}
	cs := newClusterSet(e, st)
	defer cs.close()
	if _, err := cs.refresh(ctx); err != nil {
		e.log.Warn("could not refresh from Slurm; showing the last known state", "err", err)
	}
	out := make([]*store.Run, len(runs))
	for i, r := range runs {
		var err error
		if out[i], err = st.GetRun(ctx, r.ID); err != nil {
			return nil, err
		}
	}
	ingestRuns(ctx, e, st, cs, out)
	return out, nil
}

func showMetrics(ctx context.Context, e *env, o metricsOptions) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := st.GetRun(ctx, o.run)
	if err != nil {
		return err
	}
	runs, err := refreshRuns(ctx, e, st, []*store.Run{r}, o.noSync)
	if err != nil {
		return err
	}
	r = runs[0]
	pts, err := st.MetricPoints(ctx, r.ID, store.MetricFilter{Stage: o.stage, Name: o.name})
	if err != nil {
		return err
	}
	if pts == nil {
		pts = []store.MetricPoint{}
	}
	out := metricsJSON{Run: r.ID, Name: r.Name, State: r.State, Points: pts}
	if out.Series, err = st.MetricSeriesOf(ctx, r.ID); err != nil {
		return err
	}
	if out.Series == nil {
		out.Series = []store.MetricSeries{}
	}
	if o.stage == "" || o.stage == store.EvalStage {
		if out.Eval, err = st.EvalReport(ctx, r.ID); err != nil {
			return err
		}
	}
	switch {
	case o.json:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case o.csv:
		return writeMetricsCSV(e.stdout, out.Points)
	}
	return writeMetricsText(e.stdout, out)
}

func writeMetricsCSV(w io.Writer, pts []store.MetricPoint) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"stage", "name", "step", "time", "value", "job_id", "attempt", "restart"})
	for _, p := range pts {
		step := ""
		if p.Step != nil {
			step = strconv.FormatInt(*p.Step, 10)
		}
		cw.Write([]string{p.Stage, p.Name, step, p.Time.Format(time.RFC3339Nano), strconv.FormatFloat(p.Value, 'g', -1, 64),
			p.JobID, strconv.Itoa(p.Attempt), strconv.Itoa(p.Restart)})
	}
	cw.Flush()
	return cw.Error()
}

func writeMetricsText(w io.Writer, out metricsJSON) error {
	fmt.Fprintf(w, "run %s (%s) %s\n", out.Run, oneLine(out.Name), out.State)
	if len(out.Points) == 0 {
		fmt.Fprintln(w, "no metrics recorded yet (payloads append them to $SLURMTUNE_METRICS_FILE; see the README's payload contract)")
	} else {
		tw := newTable(w)
		fmt.Fprintln(tw, "STAGE\tNAME\tSTEP\tTIME\tVALUE\tJOB\tATTEMPT\tRESTART")
		for _, p := range out.Points {
			step := "-"
			if p.Step != nil {
				step = strconv.FormatInt(*p.Step, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", oneLine(p.Stage), oneLine(p.Name), step, p.Time.Format(time.RFC3339),
				fmtMetric(p.Value), dash(p.JobID), p.Attempt, p.Restart)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if out.Eval != nil {
		fmt.Fprintf(w, "eval (job %s): %s\n", out.Eval.JobID, verdictWord(out.Eval.Passed))
		for _, g := range out.Eval.Gates {
			fmt.Fprintln(w, "  "+gateRecordLine(g))
		}
	}
	return nil
}

func verdictWord(passed bool) string {
	if passed {
		return "PASS"
	}
	return "FAIL"
}

func gateRecordLine(g store.GateRecord) string {
	val := "missing"
	if g.Value != nil {
		val = fmtMetric(*g.Value)
	}
	return fmt.Sprintf("%s %s %s %s: %s", verdictWord(g.Passed), oneLine(g.Metric), g.Op, fmtMetric(g.Threshold), val)
}

type compareOptions struct {
	runs   []string
	json   bool
	noSync bool
}

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "compare runs: differing hyperparameters, final train loss, eval metrics and gates, GPU-hours, wall time, restarts",
		ArgsUsage: "RUN RUN...",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "no-sync", Usage: "show what the database knows without asking Slurm or reading new lines"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() < 1 {
				return usagef("compare: want at least two RUNs, or one sweep run")
			}
			return compareRuns(c.Context, e, compareOptions{runs: c.Args().Slice(), json: c.Bool("json"), noSync: c.Bool("no-sync")})
		},
	}
}

type compareRunJSON struct {
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

type compareJSON struct {
	// Differing names the hyperparameters whose values are not the same in
	// every run (absent in some counts as different).
	Differing []string         `json:"differing_hyperparameters"`
	Runs      []compareRunJSON `json:"runs"`
	// Sweeps are the sweep runs' tasks, with their rank (by run id).
	Sweeps map[string]*sweep.View `json:"sweeps,omitempty"`
}

func compareRuns(ctx context.Context, e *env, o compareOptions) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	var runs []*store.Run
	for _, id := range o.runs {
		r, err := st.GetRun(ctx, id)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	runs, err = refreshRuns(ctx, e, st, runs, o.noSync)
	if err != nil {
		return err
	}
	out, err := buildComparison(ctx, st, runs)
	if err != nil {
		return err
	}
	if out.Sweeps, err = sweep.Views(ctx, st, runs); err != nil {
		return err
	}
	if len(runs) < 2 && len(out.Sweeps) == 0 {
		return usagef("compare: want at least two RUNs (%s is not a sweep)", runs[0].ID)
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if err := writeCompareText(e.stdout, out); err != nil {
		return err
	}
	return writeSweepTables(e.stdout, runs, out.Sweeps, true)
}

func buildComparison(ctx context.Context, st *store.Store, runs []*store.Run) (compareJSON, error) {
	out := compareJSON{Differing: []string{}, Runs: []compareRunJSON{}}
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
		c := compareRunJSON{ID: r.ID, Name: r.Name, State: r.State, EvalMetrics: map[string]float64{}, Gates: []store.GateRecord{}}
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

func writeCompareText(w io.Writer, out compareJSON) error {
	tw := newTable(w)
	row := func(label string, cell func(c compareRunJSON) string) {
		cells := []string{label}
		for _, c := range out.Runs {
			cells = append(cells, cell(c))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("RUN", func(c compareRunJSON) string { return c.ID })
	row("name", func(c compareRunJSON) string { return oneLine(c.Name) })
	row("state", func(c compareRunJSON) string { return c.State })
	for _, k := range out.Differing {
		row("hp "+oneLine(k), func(c compareRunJSON) string {
			v, ok := c.Hyperparameters[k]
			if !ok {
				return "-"
			}
			b, _ := json.Marshal(v)
			return oneLine(string(b))
		})
	}
	row("final train loss", func(c compareRunJSON) string {
		if c.FinalTrainLoss == nil {
			return "-"
		}
		s := fmtMetric(*c.FinalTrainLoss)
		if c.FinalTrainStep != nil {
			s += fmt.Sprintf(" @%d", *c.FinalTrainStep)
		}
		return s
	})
	row("eval", func(c compareRunJSON) string {
		if c.EvalPassed == nil {
			return "-"
		}
		return verdictWord(*c.EvalPassed)
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
		row("eval "+oneLine(m), func(c compareRunJSON) string {
			v, ok := c.EvalMetrics[m]
			if !ok {
				return "-"
			}
			s := fmtMetric(v)
			for _, g := range c.Gates {
				if g.Metric == m {
					s += fmt.Sprintf(" %s(%s %s)", verdictWord(g.Passed), g.Op, fmtMetric(g.Threshold))
				}
			}
			return s
		})
	}
	row("GPU-hours", func(c compareRunJSON) string {
		if c.GPUHours == nil {
			return "-"
		}
		return fmtGPUHours(*c.GPUHours)
	})
	row("wall time", func(c compareRunJSON) string {
		if c.WallSeconds == nil {
			return "-"
		}
		return (time.Duration(*c.WallSeconds) * time.Second).String()
	})
	row("restarts", func(c compareRunJSON) string { return strconv.Itoa(c.Restarts) })
	row("retries", func(c compareRunJSON) string { return strconv.Itoa(c.Retries) })
	if len(out.Differing) == 0 {
		fmt.Fprintln(tw, "hyperparameters\tthe same in every run")
	}
	return tw.Flush()
}
