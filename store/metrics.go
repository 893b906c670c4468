package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Training curves: every stage's payload appends JSON lines to its metrics
// file (the payload contract, see the README); slurmtune reads what was
// appended since it last looked and stores each metric of each line as one
// MetricPoint keyed by the line's byte offset, so a line read twice is
// stored once. The offsets and the points they produced are saved in one
// transaction, and a save that finds the file's offset moved since it was
// read (another slurmtune loaded the same lines) is dropped.

// MetricPoint is one value of one metric at one line of a metrics file.
type MetricPoint struct {
	Stage string `json:"stage"`
	Name  string `json:"name"`
	// Offset is the byte offset of the line in the stage's metrics file.
	Offset int64 `json:"-"`
	// Step is the payload's step; nil when the line had none.
	Step  *int64    `json:"step"`
	Value float64   `json:"value"`
	Time  time.Time `json:"time"`
	// JobID, Attempt (retries: a new job) and Restart (requeues of the same
	// job, SLURM_RESTART_COUNT) say which segment of the curve the point is
	// in.
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	Restart int    `json:"restart"`
}

// MetricFile is how far one metrics file of a run has been read, and the
// job segment its last line was in.
type MetricFile struct {
	Path    string
	Stage   string
	ReadTo  int64
	Bad     int
	JobID   string
	Restart int
	// Done is set once the file was read to the end after its stage ended.
	Done bool
}

// MetricFiles lists the recorded metrics files of a run by path.
func (s *Store) MetricFiles(ctx context.Context, runID string) (map[string]MetricFile, error) {
	files, err := metricFiles(ctx, s.db, runID)
	if err != nil {
		return nil, fmt.Errorf("metrics files of %s: %w", runID, err)
	}
	return files, nil
}

func metricFiles(ctx context.Context, q querier, runID string) (map[string]MetricFile, error) {
	rows, err := q.QueryContext(ctx, `SELECT path, stage, read_to, bad_lines, job_id, restart, done_at FROM metric_files WHERE run_id = ?`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]MetricFile{}
	for rows.Next() {
		var f MetricFile
		var done sql.NullInt64
		if err := rows.Scan(&f.Path, &f.Stage, &f.ReadTo, &f.Bad, &f.JobID, &f.Restart, &done); err != nil {
			return nil, err
		}
		f.Done = done.Valid
		out[f.Path] = f
	}
	return out, rows.Err()
}

// SaveMetricLines stores the points read from one metrics file between
// from.ReadTo and to.ReadTo, and the file's new state, in one transaction,
// unless the recorded offset is no longer from.ReadTo (another process read
// these lines: nothing is saved and saved is false).
func (s *Store) SaveMetricLines(ctx context.Context, runID string, from, to MetricFile, points []MetricPoint) (saved bool, err error) {
	now := ms(time.Now())
	err = s.connTx(ctx, func(tx *sql.Conn) error {
		var cur int64
		err := tx.QueryRowContext(ctx, `SELECT read_to FROM metric_files WHERE run_id = ? AND path = ?`, runID, from.Path).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			cur = 0
		} else if err != nil {
			return err
		}
		if cur != from.ReadTo {
			return nil
		}
		if err := insertMetricPoints(ctx, tx, runID, points); err != nil {
			return err
		}
		var done sql.NullInt64
		if to.Done {
			done = sql.NullInt64{Int64: now, Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO metric_files (run_id, path, stage, read_to, bad_lines, job_id, restart, done_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, path) DO UPDATE SET read_to = excluded.read_to, bad_lines = excluded.bad_lines, job_id = excluded.job_id,
			restart = excluded.restart, done_at = excluded.done_at, updated_at = excluded.updated_at`,
			runID, to.Path, to.Stage, to.ReadTo, to.Bad, to.JobID, to.Restart, done, now); err != nil {
			return err
		}
		saved = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save metrics of %s: %w", runID, err)
	}
	return saved, nil
}

// pointsPerInsert is how many points one INSERT statement carries (6
// parameters each, well under SQLite's limit of 32,766).
const pointsPerInsert = 500

type seriesKey struct{ stage, name string }

type segmentKey struct {
	stage, job       string
	attempt, restart int
}

// connTx runs fn in one immediate transaction on one connection of the
// pool, which fn may also use through the driver (Conn.Raw).
func (s *Store) connTx(ctx context.Context, fn func(*sql.Conn) error) error {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	if err := fn(c); err != nil {
		return rollback(ctx, c, err)
	}
	if _, err := c.ExecContext(ctx, `COMMIT`); err != nil {
		return rollback(ctx, c, err)
	}
	return nil
}

// rollback ends c's failed transaction and returns err, joined with the
// rollback's own error if that failed too. A connection whose rollback
// failed may still be inside the transaction, so it is then discarded
// (driver.ErrBadConn from Raw) rather than returned to the pool.
func rollback(ctx context.Context, c *sql.Conn, err error) error {
	if _, rerr := c.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`); rerr != nil {
		_ = c.Raw(func(any) error { return driver.ErrBadConn }) // its error is ErrBadConn itself
		return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
	}
	return err
}

// insertMetricPoints inserts points with multi-row INSERTs, their series
// and segments looked up (or added) once each. The INSERTs go to the
// SQLite driver directly with one reused argument slice: through
// database/sql, each statement's 3,000 arguments were checked, converted
// and copied into a fresh slice, which was most of the Go side of a large
// ingest (100,000 lines of six metrics are 600,000 rows).
func insertMetricPoints(ctx context.Context, tx *sql.Conn, runID string, points []MetricPoint) error {
	series, segments := map[seriesKey]int64{}, map[segmentKey]int64{}
	for i := range points {
		p := &points[i]
		if k := (seriesKey{p.Stage, p.Name}); series[k] == 0 {
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO metric_series (run_id, stage, name) VALUES (?, ?, ?)
				ON CONFLICT (run_id, stage, name) DO UPDATE SET name = excluded.name RETURNING id`, runID, k.stage, k.name).Scan(&id); err != nil {
				return err
			}
			series[k] = id
		}
		if k := (segmentKey{p.Stage, p.JobID, p.Attempt, p.Restart}); segments[k] == 0 {
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO metric_segments (run_id, stage, job_id, attempt, restart) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (run_id, stage, job_id, attempt, restart) DO UPDATE SET restart = excluded.restart RETURNING id`,
				runID, k.stage, k.job, k.attempt, k.restart).Scan(&id); err != nil {
				return err
			}
			segments[k] = id
		}
	}
	return tx.Raw(func(dc any) error {
		conn, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("driver %T cannot prepare statements", dc)
		}
		in := &pointInserter{conn: conn}
		defer in.close()
		args := make([]driver.NamedValue, 6*pointsPerInsert)
		for i := range args {
			args[i].Ordinal = i + 1
		}
		// A line's points share its offset, step and time, and most
		// points their series and segment: their boxed values are
		// reused, so a point costs one allocation (its value), not six.
		var (
			last             *MetricPoint
			lastSid, lastGid int64
			sid, gid         driver.Value
			off, step, at    driver.Value
		)
		for len(points) > 0 {
			n := min(len(points), pointsPerInsert)
			for i := range points[:n] {
				p := &points[i]
				if id := series[seriesKey{p.Stage, p.Name}]; id != lastSid {
					sid, lastSid = id, id
				}
				if id := segments[segmentKey{p.Stage, p.JobID, p.Attempt, p.Restart}]; id != lastGid {
					gid, lastGid = id, id
				}
				if last == nil || p.Offset != last.Offset || p.Step != last.Step || !p.Time.Equal(last.Time) {
					off, step, at = p.Offset, nil, ms(p.Time)
					if p.Step != nil {
						step = *p.Step
					}
				}
				last = p
				a := args[6*i : 6*i+6]
				a[0].Value, a[1].Value, a[2].Value, a[3].Value, a[4].Value, a[5].Value = sid, off, step, p.Value, at, gid
			}
			if err := in.exec(ctx, n, args[:6*n]); err != nil {
				return err
			}
			points = points[n:]
		}
		return nil
	})
}

// pointInserter runs the INSERTs of points on one driver connection, the
// statement of a full batch prepared once.
type pointInserter struct {
	conn driver.ConnPrepareContext
	full driver.Stmt
}

func (in *pointInserter) exec(ctx context.Context, n int, args []driver.NamedValue) error {
	stmt := in.full
	if stmt == nil || n != pointsPerInsert {
		const row = `(?, ?, ?, ?, ?, ?)`
		var err error
		stmt, err = in.conn.PrepareContext(ctx, `INSERT INTO metric_points (series, off, step, value, at, segment) VALUES `+
			row+strings.Repeat(", "+row, n-1)+` ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		if n == pointsPerInsert {
			in.full = stmt
		} else {
			defer stmt.Close()
		}
	}
	// The driver's query path binds every argument and steps in one cgo
	// call (its exec path makes one call an argument); an INSERT without
	// RETURNING is done at that first step and returns no row.
	q, ok := stmt.(driver.StmtQueryContext)
	if !ok {
		return fmt.Errorf("driver statement %T cannot query with a context", stmt)
	}
	rows, err := q.QueryContext(ctx, args)
	if err != nil {
		return err
	}
	return rows.Close()
}

func (in *pointInserter) close() {
	if in.full != nil {
		in.full.Close()
	}
}

// pointsFrom is the FROM clause of point queries: points with their series
// and segment.
const pointsFrom = ` FROM metric_series s JOIN metric_points p ON p.series = s.id JOIN metric_segments g ON g.id = p.segment`

// MetricFilter selects points of a run; empty fields select all.
type MetricFilter struct {
	Stage, Name string
}

// MetricPoints lists a run's points, by stage, name and line order.
func (s *Store) MetricPoints(ctx context.Context, runID string, f MetricFilter) ([]MetricPoint, error) {
	q := `SELECT s.stage, s.name, p.off, p.step, p.value, p.at, g.job_id, g.attempt, g.restart` + pointsFrom + ` WHERE s.run_id = ?`
	args := []any{runID}
	if f.Stage != "" {
		q += ` AND s.stage = ?`
		args = append(args, f.Stage)
	}
	if f.Name != "" {
		q += ` AND s.name = ?`
		args = append(args, f.Name)
	}
	q += ` ORDER BY s.stage, s.name, p.off`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []MetricPoint
	for rows.Next() {
		var p MetricPoint
		if err := scanPoint(rows, &p, &p.Stage, &p.Name); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", runID, err)
	}
	return out, nil
}

// scanPoint reads [lead...,] off, step, value, at, job_id, attempt, restart
// into p.
func scanPoint(row interface{ Scan(...any) error }, p *MetricPoint, lead ...any) error {
	var step sql.NullInt64
	var at int64
	if err := row.Scan(append(lead, &p.Offset, &step, &p.Value, &at, &p.JobID, &p.Attempt, &p.Restart)...); err != nil {
		return err
	}
	if step.Valid {
		v := step.Int64
		p.Step = &v
	}
	p.Time = time.UnixMilli(at).UTC()
	return nil
}

// MetricSeries names one stored series: a stage's metric and its count.
type MetricSeries struct {
	Stage  string `json:"stage"`
	Name   string `json:"name"`
	Points int    `json:"points"`
}

// MetricSeriesOf lists the series a run has, by stage and name.
func (s *Store) MetricSeriesOf(ctx context.Context, runID string) ([]MetricSeries, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT s.stage, s.name, count(*) FROM metric_series s JOIN metric_points p ON p.series = s.id
		WHERE s.run_id = ? GROUP BY s.id ORDER BY s.stage, s.name`, runID)
	if err != nil {
		return nil, fmt.Errorf("metric series of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []MetricSeries
	for rows.Next() {
		var m MetricSeries
		if err := rows.Scan(&m.Stage, &m.Name, &m.Points); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// LastMetricPoints is, per run, the last point (in line order) of one
// stage's metric; runs without it are absent.
func (s *Store) LastMetricPoints(ctx context.Context, runIDs []string, stage, name string) (map[string]MetricPoint, error) {
	out := map[string]MetricPoint{}
	for _, id := range runIDs {
		p := MetricPoint{Stage: stage, Name: name}
		err := scanPoint(s.db.QueryRowContext(ctx, `SELECT p.off, p.step, p.value, p.at, g.job_id, g.attempt, g.restart`+pointsFrom+`
			WHERE s.run_id = ? AND s.stage = ? AND s.name = ? ORDER BY p.off DESC LIMIT 1`, id, stage, name), &p)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("last %s of %s: %w", name, id, err)
		}
		out[id] = p
	}
	return out, nil
}

// SetRunParams records a run's hyperparameters (as JSON).
func (s *Store) SetRunParams(ctx context.Context, runID string, params map[string]any) error {
	b, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("hyperparameters of %s: %w", runID, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO run_params (run_id, params) VALUES (?, ?)
			ON CONFLICT (run_id) DO UPDATE SET params = excluded.params`, runID, string(b))
		return err
	})
	if err != nil {
		return fmt.Errorf("record hyperparameters of %s: %w", runID, err)
	}
	return nil
}

// RunParams returns a run's recorded hyperparameters; nil when none were.
func (s *Store) RunParams(ctx context.Context, runID string) (map[string]any, error) {
	var blob string
	err := s.db.QueryRowContext(ctx, `SELECT params FROM run_params WHERE run_id = ?`, runID).Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hyperparameters of %s: %w", runID, err)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(blob), &out); err != nil {
		return nil, fmt.Errorf("hyperparameters of %s: %w", runID, err)
	}
	return out, nil
}

// GateRecord is one checked quality gate of a run's eval report.
type GateRecord struct {
	Metric    string   `json:"metric"`
	Op        string   `json:"op"`
	Threshold float64  `json:"threshold"`
	Value     *float64 `json:"value"`
	Passed    bool     `json:"passed"`
	Reason    string   `json:"reason,omitempty"`
}

// EvalRecord is a run's stored eval report: its metrics, every gate with
// its threshold and verdict, and the eval job it came from.
type EvalRecord struct {
	JobID   string             `json:"job_id"`
	Passed  bool               `json:"passed"`
	Metrics map[string]float64 `json:"metrics"`
	Gates   []GateRecord       `json:"gates"`
	ReadAt  time.Time          `json:"read_at"`
}

// EvalStage is the stage the eval report's metrics are stored under.
const EvalStage = "eval"

// SaveEvalReport records a run's eval report, replacing an earlier one
// (a retried eval): its metrics go to the run's metrics of stage eval.
func (s *Store) SaveEvalReport(ctx context.Context, runID string, r EvalRecord) error {
	now := ms(time.Now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO eval_reports (run_id, job_id, passed, read_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (run_id) DO UPDATE SET job_id = excluded.job_id, passed = excluded.passed, read_at = excluded.read_at`,
			runID, r.JobID, r.Passed, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM eval_gates WHERE run_id = ?`, runID); err != nil {
			return err
		}
		for i, g := range r.Gates {
			var v sql.NullFloat64
			if g.Value != nil {
				v = sql.NullFloat64{Float64: *g.Value, Valid: true}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO eval_gates (run_id, position, metric, op, threshold, value, passed, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				runID, i, g.Metric, g.Op, g.Threshold, v, g.Passed, g.Reason); err != nil {
				return err
			}
		}
		for name, v := range r.Metrics {
			if _, err := tx.ExecContext(ctx, `INSERT INTO metrics (run_id, stage, name, value, at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (run_id, stage, name) DO UPDATE SET value = excluded.value, at = excluded.at`, runID, EvalStage, name, v, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record eval report of %s: %w", runID, err)
	}
	return nil
}

// EvalReport returns a run's stored eval report (metrics of stage eval,
// gates); nil when none was read yet.
func (s *Store) EvalReport(ctx context.Context, runID string) (*EvalRecord, error) {
	r := &EvalRecord{Metrics: map[string]float64{}, Gates: []GateRecord{}}
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT job_id, passed, read_at FROM eval_reports WHERE run_id = ?`, runID).Scan(&r.JobID, &r.Passed, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eval report of %s: %w", runID, err)
	}
	r.ReadAt = time.UnixMilli(at).UTC()
	rows, err := s.db.QueryContext(ctx, `SELECT metric, op, threshold, value, passed, reason FROM eval_gates WHERE run_id = ? ORDER BY position`, runID)
	if err != nil {
		return nil, fmt.Errorf("eval report of %s: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var g GateRecord
		var v sql.NullFloat64
		if err := rows.Scan(&g.Metric, &g.Op, &g.Threshold, &v, &g.Passed, &g.Reason); err != nil {
			return nil, err
		}
		if v.Valid {
			f := v.Float64
			g.Value = &f
		}
		r.Gates = append(r.Gates, g)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	m, err := s.Metrics(ctx, runID)
	if err != nil {
		return nil, err
	}
	for k, v := range m[EvalStage] {
		r.Metrics[k] = v
	}
	return r, nil
}

// EvalVerdicts is, per run, whether its stored eval report passed; runs
// without one are absent.
func (s *Store) EvalVerdicts(ctx context.Context, runIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(runIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(runIDs))
	for i, id := range runIDs {
		args[i] = id
	}
	rows, err := s.db.QueryContext(ctx, `SELECT run_id, passed FROM eval_reports WHERE run_id IN (?`+strings.Repeat(", ?", len(runIDs)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("eval verdicts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var p bool
		if err := rows.Scan(&id, &p); err != nil {
			return nil, err
		}
		out[id] = p
	}
	return out, rows.Err()
}
