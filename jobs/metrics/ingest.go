// Package metrics owns runs' training curves and eval results: it reads
// what the stages' payloads appended to their metrics files (the payload
// contract, see the README) and the eval report into the store, and builds
// what `metrics`, `compare` and `status` show of them.
package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/slurmtune/slurmtune/eval"
	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// Training curves and eval results of runs.
//
// Metrics files: every stage's script exports SLURMTUNE_METRICS_FILE
// (<run dir>/metrics/<stage>.jsonl) and appends, at each start of its job,
// a segment marker {"slurmtune":{"job":"ID","restart":N,"time":T}}; the
// payload appends {"step": N, "time": unix, "name": value, ...} lines. sync,
// status, submit --wait and logs -f read what was appended since they last
// looked (store.MetricFile keeps each file's offset and the segment its
// last line was in), so a point keeps the job, retry attempt and restart
// it came from.
//
// Eval report: once the eval stage's job has ended, its eval_report.json
// (written by `slurmtune gate`) is stored: its metrics and every gate's
// threshold and verdict.

const (
	// metricsReadBudget is how much of a metrics file is read into one
	// transaction; a longer backlog takes several.
	metricsReadBudget = 1 << 20
	// maxMetricName: longer keys are not metrics.
	maxMetricName = 200
)

// metricsLine is what one line of a metrics file says.
type metricsLine struct {
	marker *segmentMarker
	step   *int64
	at     time.Time
	values []namedValue
}

// segmentMarker is the line a stage's script appends at each start of its
// job: {"slurmtune":{"job":"ID","restart":N,"time":T}}.
type segmentMarker struct {
	Job     string
	Restart int
}

type namedValue struct {
	name  string
	value float64
}

// lineParser reads lines of the metrics contract with one reused
// streaming decoder (a metrics file can have millions of lines).
type lineParser struct {
	r      bytes.Reader
	dec    *jsontext.Decoder
	names  map[string]string // interned metric names
	values []namedValue      // the last line's, reused
}

func newLineParser() *lineParser {
	p := &lineParser{names: map[string]string{}}
	p.dec = jsontext.NewDecoder(&p.r)
	return p
}

// parse reads one line: a JSON object whose "step" (integer) and "time"
// (unix seconds) are optional and whose every other number is a metric;
// other values are ignored. ok is false when the line is not one JSON
// object.
func (p *lineParser) parse(b []byte) (l metricsLine, ok bool) {
	p.r.Reset(b)
	p.dec.Reset(&p.r)
	l.values = p.values[:0]
	defer func() { p.values = l.values[:0] }()
	if t, err := p.dec.ReadToken(); err != nil || t.Kind() != '{' {
		return l, false
	}
	for p.dec.PeekKind() != '}' {
		name, ok := p.name()
		if !ok {
			return l, false
		}
		switch kind := p.dec.PeekKind(); {
		case name == "slurmtune" && kind != '{':
			return l, false // the key is slurmtune's own
		case name == "slurmtune":
			m, ok := p.marker()
			if !ok {
				return l, false
			}
			l.marker = m
		case kind == '0':
			vt, err := p.dec.ReadToken()
			if err != nil {
				return l, false
			}
			p.number(&l, name, vt.Float())
		default:
			if err := p.dec.SkipValue(); err != nil {
				return l, false
			}
		}
	}
	if _, err := p.dec.ReadToken(); err != nil { // the closing brace
		return l, false
	}
	if _, err := p.dec.ReadToken(); err != io.EOF {
		return l, false // more after the object
	}
	if l.marker != nil {
		l.values, l.step, l.at = nil, nil, time.Time{}
	}
	return l, true
}

func (p *lineParser) number(l *metricsLine, name string, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return
	}
	switch name {
	case "step":
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			n := int64(f)
			l.step = &n
		}
	case "time":
		if f > 0 && f < 1e11 {
			sec, frac := math.Modf(f)
			l.at = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		}
	default:
		if name == "" || len(name) > maxMetricName {
			return
		}
		l.values = append(l.values, namedValue{name, f})
	}
}

// name reads an object's name, interned: the names of a metrics file are
// few and repeat on every line.
func (p *lineParser) name() (string, bool) {
	v, err := p.dec.ReadValue()
	if err != nil || v.Kind() != '"' {
		return "", false
	}
	raw := []byte(v)
	if bytes.IndexByte(raw, '\\') >= 0 {
		u, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			return "", false
		}
		raw = u
	} else {
		raw = raw[1 : len(raw)-1]
	}
	if in, ok := p.names[string(raw)]; ok {
		return in, true
	}
	name := string(raw)
	if len(p.names) < 10000 && len(name) <= maxMetricName {
		p.names[name] = name
	}
	return name, true
}

// marker reads the segment marker object.
func (p *lineParser) marker() (*segmentMarker, bool) {
	if _, err := p.dec.ReadToken(); err != nil {
		return nil, false
	}
	m := &segmentMarker{}
	for p.dec.PeekKind() != '}' {
		nt, err := p.dec.ReadToken()
		if err != nil {
			return nil, false
		}
		key := nt.String() // the token is void after the next read
		vt, err := p.dec.ReadToken()
		if err != nil {
			return nil, false
		}
		switch key {
		case "job":
			if vt.Kind() != '"' {
				return nil, false
			}
			m.Job = vt.String()
		case "restart":
			if vt.Kind() != '0' {
				return nil, false
			}
			m.Restart = int(vt.Int())
		default:
			if k := vt.Kind(); k == '{' || k == '[' {
				return nil, false
			}
		}
	}
	if _, err := p.dec.ReadToken(); err != nil {
		return nil, false
	}
	return m, true
}

// Ingest reads what is new for one run: its stages' metrics files, its
// hyperparameters (once) and, after eval ended, its eval report. Errors are
// logged; a run that cannot be read is shown as the database has it.
func Ingest(ctx context.Context, log *slog.Logger, st *store.Store, fsys slurm.FileSystem, r *store.Run) {
	if err := ingestMetrics(ctx, st, fsys, r); err != nil {
		log.Warn("could not read the run's metrics", "run", r.ID, "err", err)
	}
	if err := ingestParams(ctx, st, fsys, r); err != nil {
		log.Warn("could not read the run's hyperparameters", "run", r.ID, "err", err)
	}
	if err := ingestEvalReport(ctx, st, fsys, r); err != nil {
		log.Warn("could not read the run's eval report", "run", r.ID, "err", err)
	}
	if err := sweep.Ingest(ctx, st, fsys, r); err != nil {
		log.Warn("could not read the sweep's selection", "run", r.ID, "err", err)
	}
}

// ingestMetrics reads the new lines of every submitted stage's metrics file.
func ingestMetrics(ctx context.Context, st *store.Store, fsys slurm.FileSystem, r *store.Run) error {
	files, err := st.MetricFiles(ctx, r.ID)
	if err != nil {
		return err
	}
	var attempts map[string]int
	l := templates.LayoutOf(r.RunDir)
	for _, s := range r.Stages {
		if s.JobID == "" {
			continue
		}
		path := l.StageMetricsPath(s.Name)
		from, ok := files[path]
		if !ok {
			from = store.MetricFile{Path: path, Stage: s.Name}
		}
		if from.Done && from.JobID == s.JobID && s.Terminal() {
			continue // read to the end after this job ended
		}
		if attempts == nil {
			jobs, err := st.RunJobs(ctx, r.ID)
			if err != nil {
				return err
			}
			attempts = map[string]int{}
			for _, j := range jobs {
				attempts[j.JobID] = j.Attempt
			}
		}
		if err := ingestMetricsFile(ctx, st, fsys, r.ID, s, from, attempts); err != nil {
			return err
		}
	}
	return nil
}

// ingestMetricsFile reads a metrics file from where it was last read, one
// budget of lines a transaction. The next lines are read and parsed while
// the last ones are being saved (a long backlog keeps both cores busy),
// and the two point buffers are reused.
func ingestMetricsFile(ctx context.Context, st *store.Store, fsys slurm.FileSystem, runID string, s store.Stage, from store.MetricFile, attempts map[string]int) error {
	type chunk struct {
		to     store.MetricFile
		points []store.MetricPoint
		done   bool
		err    error
	}
	ctx, cancel := context.WithCancel(ctx)
	chunks, free := make(chan chunk), make(chan []store.MetricPoint, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(chunks)
		for at := from; ; {
			var buf []store.MetricPoint
			select {
			case buf = <-free:
			default:
			}
			to, points, done, err := readMetricsFile(ctx, fsys, s, at, attempts, time.Now(), buf)
			select {
			case chunks <- chunk{to, points, done, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || done || to.ReadTo == at.ReadTo {
				return
			}
			at = to
		}
	}()
	for c := range chunks {
		if c.err != nil {
			return c.err
		}
		to := c.to
		to.Done = c.done && s.Terminal()
		if to.ReadTo == from.ReadTo && to.Done == from.Done {
			return nil
		}
		saved, err := st.SaveMetricLines(ctx, runID, from, to, c.points)
		if err != nil || !saved || c.done {
			return err // not saved: another slurmtune read these lines
		}
		select {
		case free <- c.points[:0]:
		default:
		}
		from = to
	}
	return nil
}

// readMetricsFile parses the lines of a metrics file after from.ReadTo into
// points (appended to buf), following the segment markers; now stands for
// a line's missing time.
func readMetricsFile(ctx context.Context, fsys slurm.FileSystem, s store.Stage, from store.MetricFile, attempts map[string]int, now time.Time, buf []store.MetricPoint) (to store.MetricFile, points []store.MetricPoint, done bool, err error) {
	to, points = from, buf[:0]
	lp := newLineParser()
	next, skipped, done, err := nvml.ReadNewLines(ctx, fsys, from.Path, from.ReadTo, metricsReadBudget, func(off int64, b []byte) {
		l, ok := lp.parse(b)
		if !ok {
			to.Bad++
			return
		}
		if l.marker != nil {
			to.JobID, to.Restart = l.marker.Job, l.marker.Restart
			return
		}
		at := l.at
		if at.IsZero() {
			at = now
		}
		job := to.JobID
		if job == "" {
			job = s.JobID // a file from before segment markers
		}
		for _, v := range l.values {
			points = append(points, store.MetricPoint{Stage: s.Name, Name: v.name, Offset: off, Step: l.step, Value: v.value, Time: at,
				JobID: job, Attempt: attempts[job], Restart: to.Restart})
		}
	})
	if err != nil {
		return from, nil, false, err
	}
	to.ReadTo, to.Bad = next, to.Bad+skipped
	return to, points, done, nil
}

// ingestParams records the run's hyperparameters file once it exists.
func ingestParams(ctx context.Context, st *store.Store, fsys slurm.FileSystem, r *store.Run) error {
	have, err := st.RunParams(ctx, r.ID)
	if err != nil || have != nil {
		return err
	}
	b, err := fsys.ReadFile(ctx, templates.LayoutOf(r.RunDir).Hparams)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var hp map[string]any
	if err := json.Unmarshal(b, &hp); err != nil {
		return err
	}
	if hp == nil {
		hp = map[string]any{}
	}
	return st.SetRunParams(ctx, r.ID, hp)
}

// ingestEvalReport stores eval_report.json once the eval job that wrote it
// has ended (again after a retry).
func ingestEvalReport(ctx context.Context, st *store.Store, fsys slurm.FileSystem, r *store.Run) error {
	s := stageNamed(r, store.EvalStage)
	if s == nil || s.JobID == "" || !s.Terminal() {
		return nil
	}
	have, err := st.EvalReport(ctx, r.ID)
	if err != nil || have != nil && have.JobID == s.JobID {
		return err
	}
	b, err := fsys.ReadFile(ctx, templates.LayoutOf(r.RunDir).Eval+"/eval_report.json")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rep eval.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	vals, err := evalMetrics(rep.Metrics)
	if err != nil {
		return err
	}
	rec := store.EvalRecord{JobID: s.JobID, Passed: rep.Passed, Metrics: vals}
	for _, g := range rep.Gates {
		rec.Gates = append(rec.Gates, store.GateRecord{Metric: g.Metric, Op: string(g.Op), Threshold: g.Threshold,
			Value: g.Value, Passed: g.Passed, Reason: g.Reason})
	}
	return st.SaveEvalReport(ctx, r.ID, rec)
}

// evalMetrics is the report's metrics by name (those with a value).
func evalMetrics(m eval.Metrics) (map[string]float64, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("eval report metrics: %w", err)
	}
	var out map[string]float64
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("eval report metrics: %w", err)
	}
	return out, nil
}

// HasJobs reports whether any stage of the run was submitted.
func HasJobs(r *store.Run) bool {
	for _, s := range r.Stages {
		if s.JobID != "" {
			return true
		}
	}
	return false
}

// Fmt prints a metric value compactly.
func Fmt(v float64) string { return strconv.FormatFloat(v, 'g', 5, 64) }

func stageNamed(r *store.Run, name string) *store.Stage {
	for i := range r.Stages {
		if r.Stages[i].Name == name {
			return &r.Stages[i]
		}
	}
	return nil
}
