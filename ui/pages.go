package ui

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

var funcs = template.FuncMap{
	"num": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatFloat(*v, 'g', 5, 64)
	},
	"fnum": func(v float64) string { return strconv.FormatFloat(v, 'g', 5, 64) },
	"verdict": func(v *bool) string {
		switch {
		case v == nil:
			return "–"
		case *v:
			return "PASS"
		}
		return "FAIL"
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"lower": strings.ToLower,
	"list":  func(s ...string) []string { return s },
}

// overlay applies the last live refresh to a run's stages and state.
func (s *Server) overlay(cancelled bool, stages []store.Stage) (string, []store.Stage) {
	out := slices.Clone(stages)
	for i, st := range out {
		if st.JobID == "" {
			continue
		}
		if j, ok := s.liveJob(st.JobID); ok && j.State != "" {
			out[i].State = string(j.State)
			if !j.Start.IsZero() {
				out[i].StartedAt = j.Start
			}
			if !j.End.IsZero() && j.State.Terminal() {
				out[i].EndedAt = j.End
			}
			out[i].Restarts = max(out[i].Restarts, j.Restarts)
		}
	}
	return store.DeriveState(cancelled, out), out
}

type runRow struct {
	ID, Name, State string
	Created         time.Time
	Loss            *float64
	Eval            *bool
	Stages          []store.Stage
}

// runCells is a row of the runs page as text, formatted up front: the page
// template then only escapes.
type runCells struct {
	ID, Name, State, StateClass, Created, Loss, Eval string
	Stages                                           []chip
}

type chip struct{ Name, Class, Title string }

type runsView struct {
	Rows      []runRow
	Cells     []runCells
	Total     int
	Matched   int
	Q, State  string
	Sort, Dir string
	States    []string
	LiveAt    time.Time
	LiveError string
	// Limit rows a page (0: all); Page counts from 1.
	Limit, Page, From, To int
	Prev, Next            string
}

// defaultPageRows is how many runs the runs page shows at once.
const defaultPageRows = 100

// runRows lists the runs, live states applied, filtered by q (in name or
// id) and state, sorted by key (created, name, state, loss) and dir.
func (s *Server) runRows(r *http.Request) (runsView, error) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	state := r.URL.Query().Get("state")
	key := cmp.Or(r.URL.Query().Get("sort"), "created")
	dir := cmp.Or(r.URL.Query().Get("dir"), "desc")
	sums, err := s.o.Store.RunSummaries(r.Context())
	if err != nil {
		return runsView{}, err
	}
	v := runsView{Q: q, State: state, Sort: key, Dir: dir, Total: len(sums),
		States: []string{store.RunPending, store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled}}
	s.mu.RLock()
	v.LiveAt, v.LiveError = s.liveAt, s.liveError
	s.mu.RUnlock()
	lq := strings.ToLower(q)
	for _, sum := range sums {
		st, stages := s.overlay(sum.Cancelled, sum.Stages)
		if lq != "" && !strings.Contains(strings.ToLower(sum.Name), lq) && !strings.Contains(strings.ToLower(sum.ID), lq) {
			continue
		}
		if state != "" && st != state {
			continue
		}
		v.Rows = append(v.Rows, runRow{ID: sum.ID, Name: sum.Name, State: st, Created: sum.CreatedAt, Loss: sum.TrainLoss, Eval: sum.EvalPassed, Stages: stages})
	}
	less := func(a, b runRow) int {
		switch key {
		case "name":
			return cmp.Compare(a.Name, b.Name)
		case "state":
			return cmp.Compare(a.State, b.State)
		case "loss":
			return cmp.Compare(lossKey(a.Loss), lossKey(b.Loss))
		}
		return a.Created.Compare(b.Created)
	}
	slices.SortStableFunc(v.Rows, func(a, b runRow) int {
		c := less(a, b)
		if dir == "desc" {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.ID, b.ID))
	})
	return v, nil
}

func lossKey(v *float64) float64 {
	if v == nil {
		return math.Inf(1)
	}
	return *v
}

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.runRows(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	v.Matched = len(v.Rows)
	v.Limit, v.Page = defaultPageRows, 1
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l >= 0 {
		v.Limit = l
	}
	if p, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && p > 1 {
		v.Page = p
	}
	rows := v.Rows
	if v.Limit > 0 {
		from := min((v.Page-1)*v.Limit, len(rows))
		to := min(from+v.Limit, len(rows))
		rows = rows[from:to]
		v.From, v.To = from+1, to
		page := func(n int) string {
			q := r.URL.Query()
			q.Set("page", strconv.Itoa(n))
			q.Set("limit", strconv.Itoa(v.Limit))
			return "/?" + q.Encode()
		}
		if from > 0 {
			v.Prev = page(v.Page - 1)
		}
		if to < len(v.Rows) {
			v.Next = page(v.Page + 1)
		}
	} else {
		v.From, v.To = 1, len(rows)
	}
	v.Cells = make([]runCells, 0, len(rows))
	for _, row := range rows {
		c := runCells{ID: row.ID, Name: row.Name, State: row.State, StateClass: "state state-" + strings.ToLower(row.State),
			Created: row.Created.UTC().Format("2006-01-02 15:04:05Z"), Loss: "–", Eval: "–"}
		if row.Loss != nil {
			c.Loss = strconv.FormatFloat(*row.Loss, 'g', 5, 64)
		}
		if row.Eval != nil {
			c.Eval = map[bool]string{true: "PASS", false: "FAIL"}[*row.Eval]
		}
		for _, st := range row.Stages {
			c.Stages = append(c.Stages, chip{st.Name, "chip state-" + strings.ToLower(st.State), st.Name + ": " + st.State})
		}
		v.Cells = append(v.Cells, c)
	}
	v.Rows = nil
	s.render(w, "runs.html", v)
}

type apiRun struct {
	ID     string     `json:"id"`
	Name   string     `json:"name"`
	State  string     `json:"state"`
	Loss   *float64   `json:"train_loss"`
	Eval   *bool      `json:"eval_passed"`
	Stages []apiStage `json:"stages"`
}

type apiStage struct {
	Name  string `json:"name"`
	JobID string `json:"job_id"`
	State string `json:"state"`
}

func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	v, err := s.runRows(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]apiRun, 0, len(v.Rows))
	for _, row := range v.Rows {
		a := apiRun{ID: row.ID, Name: row.Name, State: row.State, Loss: row.Loss, Eval: row.Eval, Stages: []apiStage{}}
		for _, st := range row.Stages {
			a.Stages = append(a.Stages, apiStage{st.Name, st.JobID, st.State})
		}
		out = append(out, a)
	}
	writeJSON(w, out)
}

// timelineBar is one stretch of one job in one state.
type timelineBar struct {
	Kind        string // queued, running, ended
	State       string
	From, To    time.Time
	Left, Width float64 // percent of the timeline
	Label       string
}

type timelineRow struct {
	Stage, JobID     string
	Attempt, Restart int
	Bars             []timelineBar
}

type timeline struct {
	Rows     []timelineRow
	From, To time.Time
}

// buildTimeline draws, per stage, job and restart, the stretches it was
// queued and running, from the job's submission, the state changes
// slurmtune saw, and Slurm's start and end times of the current job.
func buildTimeline(stages []store.Stage, jobs []store.JobRecord, trs []store.Transition, now time.Time) timeline {
	var tl timeline
	current := map[string]store.Stage{}
	for _, st := range stages {
		current[st.JobID] = st
	}
	for _, st := range stages {
		var stageJobs []store.JobRecord
		for _, j := range jobs {
			if j.Stage == st.Name {
				stageJobs = append(stageJobs, j)
			}
		}
		if len(stageJobs) == 0 {
			tl.Rows = append(tl.Rows, timelineRow{Stage: st.Name, JobID: "", Bars: nil})
			continue
		}
		for _, j := range stageJobs {
			tl.Rows = append(tl.Rows, jobRows(st.Name, j, trs, current, now)...)
		}
	}
	for _, row := range tl.Rows {
		for _, b := range row.Bars {
			if tl.From.IsZero() || b.From.Before(tl.From) {
				tl.From = b.From
			}
			if b.To.After(tl.To) {
				tl.To = b.To
			}
		}
	}
	span := tl.To.Sub(tl.From).Seconds()
	if span <= 0 {
		span = 1
	}
	for i := range tl.Rows {
		for k := range tl.Rows[i].Bars {
			b := &tl.Rows[i].Bars[k]
			b.Left = 100 * b.From.Sub(tl.From).Seconds() / span
			b.Width = max(100*b.To.Sub(b.From).Seconds()/span, 0.4)
			b.Label = fmt.Sprintf("%s %s → %s (%s)", b.State, b.From.UTC().Format("15:04:05"), b.To.UTC().Format("15:04:05"), b.To.Sub(b.From).Round(time.Second))
		}
	}
	return tl
}

func barKind(state string) string {
	st := slurm.ParseState(state)
	switch {
	case st == slurm.StateRunning || st == slurm.StateCompleting || st == slurm.StateSuspended:
		return "running"
	case st.Terminal():
		return "ended"
	}
	return "queued"
}

// jobRows is one row per restart of one job.
func jobRows(stage string, j store.JobRecord, trs []store.Transition, current map[string]store.Stage, now time.Time) []timelineRow {
	row := timelineRow{Stage: stage, JobID: j.JobID, Attempt: j.Attempt}
	var rows []timelineRow
	state, since := "PENDING", j.SubmittedAt
	ended := false
	flush := func(to time.Time) {
		if to.After(since) || to.Equal(since) {
			row.Bars = append(row.Bars, timelineBar{Kind: barKind(state), State: state, From: since, To: to})
		}
	}
	for _, t := range trs {
		// A restart: the job is queued or running again under the same id
		// (Slurm's restart count went up).
		restart := strings.HasPrefix(t.Reason, "restart ") && !slurm.ParseState(t.To).Terminal()
		if t.Stage != stage || t.JobID != j.JobID || t.To == state && !restart {
			continue
		}
		flush(t.At)
		if restart && len(row.Bars) > 0 {
			rows = append(rows, row)
			row = timelineRow{Stage: stage, JobID: j.JobID, Attempt: j.Attempt, Restart: row.Restart + 1}
		}
		state, since = t.To, t.At
		if slurm.ParseState(t.To).Terminal() {
			ended = true
			break
		}
	}
	if !ended {
		if cur, ok := current[j.JobID]; ok && slurm.ParseState(cur.State).Terminal() {
			end := cmp.Or(cur.EndedAt, since)
			flush(end)
			state, since = cur.State, end
		} else {
			flush(now)
		}
	}
	// Slurm's own times for the current job's last run.
	if cur, ok := current[j.JobID]; ok {
		hasRun := slices.ContainsFunc(row.Bars, func(b timelineBar) bool { return b.Kind == "running" })
		if !hasRun && !cur.StartedAt.IsZero() && len(row.Bars) > 0 && !cur.StartedAt.Before(row.Bars[0].From) {
			// It ran between two looks: Slurm says when.
			end := cur.EndedAt
			switch {
			case !end.IsZero():
			case slurm.ParseState(cur.State).Terminal():
				end = later(row.Bars[len(row.Bars)-1].To, cur.StartedAt) // when slurmtune saw it end
			default:
				end = now
			}
			var bars []timelineBar
			for _, b := range row.Bars {
				if b.From.Before(cur.StartedAt) {
					b.To = minTime(b.To, cur.StartedAt)
					bars = append(bars, b)
				}
			}
			row.Bars = append(bars, timelineBar{Kind: "running", State: string(slurm.StateRunning), From: cur.StartedAt, To: end})
		}
		for k := len(row.Bars) - 1; k >= 0; k-- {
			if row.Bars[k].Kind == "running" {
				if !cur.StartedAt.IsZero() && cur.StartedAt.After(row.Bars[k].From.Add(-time.Hour)) && (k == 0 || !cur.StartedAt.Before(row.Bars[k-1].From)) {
					if k > 0 {
						row.Bars[k-1].To = cur.StartedAt
					}
					row.Bars[k].From = cur.StartedAt
				}
				if !cur.EndedAt.IsZero() {
					row.Bars[k].To = cur.EndedAt
				}
				break
			}
		}
	}
	if len(row.Bars) == 0 {
		row.Bars = append(row.Bars, timelineBar{Kind: barKind(state), State: state, From: since, To: later(now, since)})
	}
	return append(rows, row)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type deployRow struct {
	store.DeployEvent
	This bool
}

type runView struct {
	Run      *store.Run
	State    string
	Stages   []store.Stage
	Timeline timeline
	Eval     *store.EvalRecord
	Metrics  []evalMetricRow
	Series   []store.MetricSeries
	Params   []paramRow
	Deploys  []deployRow
	// Sweep is a sweep run's tasks, best first (nil for other runs).
	Sweep      *sweep.View
	SweepTasks []sweep.TaskView
}

type evalMetricRow struct {
	Name  string
	Value float64
	Gates []store.GateRecord
}

type paramRow struct{ Key, Value string }

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	run, err := s.o.Store.GetRun(ctx, r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	state, stages := s.overlay(run.Cancelled, run.Stages)
	jobs, err := s.o.Store.RunJobs(ctx, run.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	trs, err := s.o.Store.Transitions(ctx, run.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	v := runView{Run: run, State: state, Stages: stages, Timeline: buildTimeline(stages, jobs, trs, s.o.Now())}
	if v.Eval, err = s.o.Store.EvalReport(ctx, run.ID); err != nil {
		s.fail(w, err)
		return
	}
	sweeps, err := sweep.Views(ctx, s.o.Store, []*store.Run{run})
	if err != nil {
		s.fail(w, err)
		return
	}
	if v.Sweep = sweeps[run.ID]; v.Sweep != nil {
		v.SweepTasks = slices.SortedFunc(slices.Values(v.Sweep.Tasks), func(a, b sweep.TaskView) int { return a.Rank - b.Rank })
	}
	if v.Eval != nil {
		for _, name := range slices.Sorted(mapKeys(v.Eval.Metrics)) {
			row := evalMetricRow{Name: name, Value: v.Eval.Metrics[name]}
			for _, g := range v.Eval.Gates {
				if g.Metric == name {
					row.Gates = append(row.Gates, g)
				}
			}
			v.Metrics = append(v.Metrics, row)
		}
	}
	if v.Series, err = s.o.Store.MetricSeriesOf(ctx, run.ID); err != nil {
		s.fail(w, err)
		return
	}
	params, err := s.o.Store.RunParams(ctx, run.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	for _, k := range slices.Sorted(mapKeys(params)) {
		b, _ := json.Marshal(params[k])
		v.Params = append(v.Params, paramRow{k, string(b)})
	}
	evs, err := s.o.Store.DeployEvents(ctx, run.Name)
	if err != nil {
		s.fail(w, err)
		return
	}
	for _, e := range evs {
		v.Deploys = append(v.Deploys, deployRow{e, e.ToRun == run.ID || e.FromRun == run.ID})
	}
	s.render(w, "run.html", v)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Chart is one chart's data as the page's script draws it: a shared x
// axis and series aligned to it (null where a series has no point).
type Chart struct {
	ID     string        `json:"id"`
	Title  string        `json:"title"`
	XLabel string        `json:"x_label"`
	YLabel string        `json:"y_label"`
	XTime  bool          `json:"x_time"`
	X      []float64     `json:"x"`
	Series []ChartSeries `json:"series"`
	// Marks are vertical lines: where a restart or retry began.
	Marks []Mark `json:"marks"`
	// Empty says why there is nothing to draw.
	Empty string `json:"empty,omitempty"`
}

// ChartSeries is one line of a chart.
type ChartSeries struct {
	Label string     `json:"label"`
	Y     []*float64 `json:"y"`
}

// Mark is a labelled vertical line.
type Mark struct {
	X     float64 `json:"x"`
	Label string  `json:"label"`
}

type line struct {
	label  string
	xs, ys []float64
}

// align downsamples each line to MaxPoints and puts them on one x axis.
func align(c *Chart, lines []line) {
	c.X, c.Series = []float64{}, []ChartSeries{}
	set := map[float64]bool{}
	for i := range lines {
		lines[i].xs, lines[i].ys = lttb(lines[i].xs, lines[i].ys, MaxPoints)
		for _, x := range lines[i].xs {
			set[x] = true
		}
	}
	for x := range set {
		c.X = append(c.X, x)
	}
	sort.Float64s(c.X)
	pos := make(map[float64]int, len(c.X))
	for i, x := range c.X {
		pos[x] = i
	}
	for _, l := range lines {
		y := make([]*float64, len(c.X))
		for i, x := range l.xs {
			v := l.ys[i]
			y[pos[x]] = &v
		}
		c.Series = append(c.Series, ChartSeries{Label: l.label, Y: y})
	}
}

// add appends the i-th point p at its step (i without one); x must grow
// within a line: a step written twice keeps the later value.
func (l *line) add(i int, p store.MetricPoint) {
	x := float64(i)
	if p.Step != nil {
		x = float64(*p.Step)
	}
	if n := len(l.xs); n > 0 && x <= l.xs[n-1] {
		for n > 0 && x <= l.xs[n-1] {
			n--
		}
		l.xs, l.ys = l.xs[:n], l.ys[:n]
	}
	l.xs, l.ys = append(l.xs, x), append(l.ys, p.Value)
}

// sweepChart is a sweep's train loss: a line per task (its settings that
// vary in the label), so the tasks' curves can be read side by side.
func (s *Server) sweepChart(ctx context.Context, run *store.Run) (*Chart, error) {
	views, err := sweep.Views(ctx, s.o.Store, []*store.Run{run})
	if err != nil || views[run.ID] == nil {
		return nil, err
	}
	v := views[run.ID]
	c := Chart{ID: "sweep_loss", Title: "train loss by task", XLabel: "step", YLabel: "train loss", Marks: []Mark{}}
	var lines []line
	for _, t := range v.Tasks {
		pts, err := s.o.Store.MetricPoints(ctx, run.ID, store.MetricFilter{Stage: jobs.TaskStage(jobs.StageTrain, t.Task), Name: "loss"})
		if err != nil {
			return nil, err
		}
		l := line{label: fmt.Sprintf("task %d", t.Task)}
		for _, k := range v.Varying {
			l.label += fmt.Sprintf(" %s=%v", k[strings.LastIndexByte(k, '.')+1:], t.Settings[k])
		}
		for i, p := range pts {
			l.add(i, p)
		}
		lines = append(lines, l)
	}
	align(&c, lines)
	if len(c.X) == 0 {
		c.Empty = noMetrics
	}
	return &c, nil
}

type segKey struct {
	job              string
	attempt, restart int
}

// curveChart is one metric of one stage: a line per job segment (retry
// attempt and restart) against the step, each later segment marked.
func curveChart(id, title string, pts []store.MetricPoint, empty string) Chart {
	c := Chart{ID: id, Title: title, XLabel: "step", YLabel: title, Marks: []Mark{}}
	var order []segKey
	segs := map[segKey]*line{}
	for i, p := range pts {
		k := segKey{p.JobID, p.Attempt, p.Restart}
		l := segs[k]
		if l == nil {
			l = &line{label: segLabel(k)}
			segs[k] = l
			order = append(order, k)
		}
		l.add(i, p)
	}
	lines := make([]line, 0, len(order))
	for i, k := range order {
		l := segs[k]
		lines = append(lines, *l)
		if i > 0 && len(l.xs) > 0 {
			c.Marks = append(c.Marks, Mark{X: l.xs[0], Label: segLabel(k)})
		}
	}
	align(&c, lines)
	if len(pts) == 0 {
		c.Empty = empty
	}
	return c
}

func segLabel(k segKey) string {
	s := fmt.Sprintf("attempt %d", max(k.attempt, 1))
	if k.restart > 0 {
		s += fmt.Sprintf(" restart %d", k.restart)
	}
	if k.job != "" {
		s += " (job " + k.job + ")"
	}
	return s
}

// gpuCharts are utilization, memory and power per GPU against time.
func gpuCharts(pts []store.GPUPoint) []Chart {
	type gk struct {
		host, uuid, mig string
		gpu             int
	}
	var order []gk
	util, mem, pow := map[gk]*line{}, map[gk]*line{}, map[gk]*line{}
	for _, p := range pts {
		k := gk{p.Host, p.UUID, p.MIG, p.GPU}
		if util[k] == nil {
			label := fmt.Sprintf("%s GPU %d", p.Host, p.GPU)
			if p.MIG != "" {
				label += " MIG " + p.MIG
			}
			util[k], mem[k], pow[k] = &line{label: label}, &line{label: label}, &line{label: label}
			order = append(order, k)
		}
		x := float64(p.Time.UnixMilli()) / 1000
		add := func(l *line, v float64) {
			if n := len(l.xs); n == 0 || x > l.xs[n-1] {
				l.xs, l.ys = append(l.xs, x), append(l.ys, v)
			}
		}
		if p.UtilPct != nil {
			add(util[k], *p.UtilPct)
		}
		if p.MemUsed != nil {
			add(mem[k], float64(*p.MemUsed)/(1<<30))
		}
		if p.PowerW != nil {
			add(pow[k], *p.PowerW)
		}
	}
	mk := func(id, title, ylabel string, m map[gk]*line) Chart {
		c := Chart{ID: id, Title: title, XLabel: "time", YLabel: ylabel, XTime: true, Marks: []Mark{}}
		var lines []line
		for _, k := range order {
			if len(m[k].xs) > 0 {
				lines = append(lines, *m[k])
			}
		}
		align(&c, lines)
		if len(lines) == 0 {
			c.Empty = "No GPU telemetry for this run (no exporter samples with a GPU: NVML unavailable, no GPU, or nothing recorded yet)."
		}
		return c
	}
	return []Chart{mk("gpu_util", "GPU utilization", "%", util), mk("gpu_mem", "GPU memory used", "GiB", mem), mk("gpu_power", "GPU power", "W", pow)}
}

// deployCharts are the router's traffic (requests/s), error rate and p95
// latency of the run's backend.
func deployCharts(samples []store.DeploySample) []Chart {
	tr := line{label: "requests/s"}
	er := line{label: "error rate"}
	lat := line{label: "p95 latency (ms)"}
	for i, x := range samples {
		t := float64(x.At.UnixMilli()) / 1000
		lat.xs, lat.ys = append(lat.xs, t), append(lat.ys, float64(x.P95)/float64(time.Millisecond))
		if i == 0 {
			continue
		}
		p := samples[i-1]
		dt := x.At.Sub(p.At).Seconds()
		dr, de := x.Requests-p.Requests, x.Errors-p.Errors
		if dt <= 0 || dr < 0 || de < 0 || x.Backend != p.Backend {
			continue // a counter reset or a new backend
		}
		tr.xs, tr.ys = append(tr.xs, t), append(tr.ys, float64(dr)/dt)
		rate := 0.0
		if dr > 0 {
			rate = float64(de) / float64(dr)
		}
		er.xs, er.ys = append(er.xs, t), append(er.ys, rate)
	}
	empty := "This run was not served behind the router (no router samples)."
	var out []Chart
	for _, d := range []struct {
		id, title, y string
		l            line
	}{{"deploy_traffic", "Router traffic", "requests/s", tr}, {"deploy_errors", "Router error rate", "errors/requests", er}, {"deploy_latency", "Router p95 latency", "ms", lat}} {
		c := Chart{ID: d.id, Title: d.title, XLabel: "time", YLabel: d.y, XTime: true, Marks: []Mark{}}
		var lines []line
		if len(d.l.xs) > 0 {
			lines = []line{d.l}
		}
		align(&c, lines)
		if len(lines) == 0 {
			c.Empty = empty
		}
		out = append(out, c)
	}
	return out
}

const noMetrics = "No training metrics recorded yet: the payload appends them to $SLURMTUNE_METRICS_FILE (see the README's payload contract)."

func (s *Server) apiCharts(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	run, err := s.o.Store.GetRun(ctx, r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	loss, err := s.o.Store.MetricPoints(ctx, run.ID, store.MetricFilter{Stage: "train", Name: "loss"})
	if err != nil {
		s.fail(w, err)
		return
	}
	lr, err := s.o.Store.MetricPoints(ctx, run.ID, store.MetricFilter{Stage: "train", Name: "learning_rate"})
	if err != nil {
		s.fail(w, err)
		return
	}
	gpu, err := s.o.Store.GPUPoints(ctx, run.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	dep, err := s.o.Store.DeploySamples(ctx, run.Name, run.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	charts := []Chart{curveChart("loss", "train loss", loss, noMetrics), curveChart("lr", "learning rate", lr, "No learning rate recorded.")}
	if sc, err := s.sweepChart(ctx, run); err != nil {
		s.fail(w, err)
		return
	} else if sc != nil {
		charts = append(charts, *sc)
	}
	charts = append(charts, gpuCharts(gpu)...)
	charts = append(charts, deployCharts(dep)...)
	writeJSON(w, charts)
}

// compareRuns are the runs named by ?run= (at most 20).
func (s *Server) compareRuns(r *http.Request) ([]*store.Run, error) {
	ids := r.URL.Query()["run"]
	if len(ids) > 20 {
		ids = ids[:20]
	}
	var runs []*store.Run
	for _, id := range ids {
		run, err := s.o.Store.GetRun(r.Context(), id)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	return runs, nil
}

type compareRow struct {
	Run    *store.Run
	State  string
	Loss   *float64
	Eval   *store.EvalRecord
	Params map[string]string
}

type compareView struct {
	Rows      []compareRow
	Differing []string
	All       []store.RunSummary
}

func (s *Server) comparePage(w http.ResponseWriter, r *http.Request) {
	runs, err := s.compareRuns(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx := r.Context()
	var v compareView
	params := map[string][]any{}
	for _, run := range runs {
		row := compareRow{Run: run, Params: map[string]string{}}
		row.State, _ = s.overlay(run.Cancelled, run.Stages)
		last, err := s.o.Store.LastMetricPoints(ctx, []string{run.ID}, "train", "loss")
		if err != nil {
			s.fail(w, err)
			return
		}
		if p, ok := last[run.ID]; ok {
			row.Loss = &p.Value
		}
		if row.Eval, err = s.o.Store.EvalReport(ctx, run.ID); err != nil {
			s.fail(w, err)
			return
		}
		hp, err := s.o.Store.RunParams(ctx, run.ID)
		if err != nil {
			s.fail(w, err)
			return
		}
		for k, val := range hp {
			b, _ := json.Marshal(val)
			row.Params[k] = string(b)
		}
		for k := range hp {
			if _, ok := params[k]; !ok {
				params[k] = nil
			}
		}
		v.Rows = append(v.Rows, row)
	}
	for _, k := range slices.Sorted(mapKeys(params)) {
		var vals []any
		for _, row := range v.Rows {
			val, ok := row.Params[k]
			if !ok {
				val = "\x00absent"
			}
			vals = append(vals, val)
		}
		for _, x := range vals[1:] {
			if !reflect.DeepEqual(x, vals[0]) {
				v.Differing = append(v.Differing, k)
				break
			}
		}
	}
	if v.All, err = s.o.Store.RunSummaries(ctx); err != nil {
		s.fail(w, err)
		return
	}
	if len(v.All) > 200 {
		v.All = v.All[:200]
	}
	s.render(w, "compare.html", v)
}

func (s *Server) apiCompare(w http.ResponseWriter, r *http.Request) {
	runs, err := s.compareRuns(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	c := Chart{ID: "compare_loss", Title: "train loss", XLabel: "step", YLabel: "loss", Marks: []Mark{}}
	var lines []line
	for _, run := range runs {
		pts, err := s.o.Store.MetricPoints(r.Context(), run.ID, store.MetricFilter{Stage: "train", Name: "loss"})
		if err != nil {
			s.fail(w, err)
			return
		}
		// The run's curve as it finally stands: a step a restart trained
		// again keeps the later value.
		byStep := map[float64]float64{}
		for i, p := range pts {
			x := float64(i)
			if p.Step != nil {
				x = float64(*p.Step)
			}
			byStep[x] = p.Value
		}
		l := line{label: run.Name + " " + run.ID}
		for _, x := range slices.Sorted(func(yield func(float64) bool) {
			for x := range byStep {
				if !yield(x) {
					return
				}
			}
		}) {
			l.xs, l.ys = append(l.xs, x), append(l.ys, byStep[x])
		}
		lines = append(lines, l)
	}
	align(&c, lines)
	if len(c.X) == 0 {
		c.Empty = "None of these runs has recorded a train loss yet."
	}
	writeJSON(w, []Chart{c})
}

func (s *Server) render(w http.ResponseWriter, name string, v any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.pages.ExecuteTemplate(w, name, v); err != nil {
		s.o.Log.Error("ui: render", "page", name, "err", err)
	}
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	s.o.Log.Error("ui", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		return
	}
}
