package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
)

// Run states.
const (
	RunPending   = "PENDING"
	RunRunning   = "RUNNING"
	RunSucceeded = "SUCCEEDED"
	RunFailed    = "FAILED"
	RunCancelled = "CANCELLED"
)

// StateNotSubmitted is a stage's state before its job exists.
const StateNotSubmitted = "NOT_SUBMITTED"

// Run is one pipeline run.
type Run struct {
	ID           string
	Name         string
	PipelineFile string
	RunDir       string
	Transport    string
	Cluster      string
	State        string
	Cancelled    bool
	// ClusterConfig is how to reach the run's cluster again (JSON of the
	// pipeline's cluster section).
	ClusterConfig string
	// Fingerprint identifies the run's inputs (submit --if-changed).
	Fingerprint string
	// Submission is "submitting" while its jobs are being submitted,
	// "complete" after, "interrupted" when the submitter died part-way.
	Submission string
	// Submitter is host:pid of the process submitting the run.
	Submitter string
	// Reason says why a run failed outside Slurm (e.g. interrupted submission).
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
	EndedAt   time.Time
	Stages    []Stage
}

// Stage is one stage of a run and its current Slurm job.
type Stage struct {
	Name     string
	Position int
	JobID    string
	Attempt  int
	State    string
	Reason   string
	ExitCode *int
	Signal   int
	Restarts int
	Nodes    string
	// Error is the line a failed job's log says why with (the payload's
	// own error, read from the log's end); "" otherwise.
	Error     string
	Elapsed   time.Duration
	StartedAt time.Time
	EndedAt   time.Time
}

// Terminal reports whether the stage's job has ended.
func (s Stage) Terminal() bool { return slurm.State(s.State).Terminal() }

// Ended reports whether every stage of the run has ended (or will never be
// submitted).
func (r Run) Ended() bool {
	for _, s := range r.Stages {
		if s.State == StateNotSubmitted {
			continue
		}
		if !s.Terminal() {
			return false
		}
	}
	return true
}

// DeriveState is a run's state from its stages: FAILED as soon as one stage
// ended badly, SUCCEEDED when all completed, RUNNING once any started,
// otherwise PENDING. A run cancelled by hand is CANCELLED. A sweep task's
// stages (train[K], eval[K]) only count as started: a task that fails
// leaves the others going, and the select stage after them decides.
func DeriveState(cancelled bool, stages []Stage) string {
	if cancelled {
		return RunCancelled
	}
	all, started := true, false
	for _, s := range stages {
		st := slurm.State(s.State)
		switch {
		case jobs.IsTaskStage(s.Name):
			started = started || st != slurm.StatePending && st != StateNotSubmitted && st != StateSubmitting
		case st == slurm.StateCompleted:
			started = true
		case st.Terminal():
			return RunFailed
		case st == slurm.StateRunning || st == slurm.StateCompleting || st == slurm.StateSuspended:
			started = true
			all = false
		default:
			all = false
		}
	}
	switch {
	case all && len(stages) > 0:
		return RunSucceeded
	case started:
		return RunRunning
	}
	return RunPending
}

// CreateRun records a new run with its stages, none submitted yet.
func (s *Store) CreateRun(ctx context.Context, r Run, stages []string) error {
	now := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return insertRun(ctx, tx, r, stages, now)
	})
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

func insertRun(ctx context.Context, tx *sql.Tx, r Run, stages []string, now time.Time) error {
	submission := r.Submission
	if submission == "" {
		submission = SubmissionSubmitting
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO runs (id, name, pipeline_file, run_dir, transport, cluster, state, created_at, updated_at,
		cluster_config, fingerprint, submission, submitter) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Name, r.PipelineFile, r.RunDir, r.Transport, r.Cluster, RunPending, ms(now), ms(now),
		r.ClusterConfig, r.Fingerprint, submission, r.Submitter)
	if err != nil {
		return err
	}
	for i, st := range stages {
		if _, err := tx.ExecContext(ctx, `INSERT INTO stages (run_id, name, position, state, updated_at) VALUES (?, ?, ?, ?, ?)`,
			r.ID, st, i, StateNotSubmitted, ms(now)); err != nil {
			return err
		}
	}
	return nil
}

// RecordSubmitted records that a stage's job was submitted.
func (s *Store) RecordSubmitted(ctx context.Context, runID, stage, cluster, jobID string) error {
	now := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := recordSubmitted(ctx, tx, runID, stage, cluster, jobID, now); err != nil {
			return err
		}
		return s.refreshRunState(ctx, tx, runID, now)
	})
	if err != nil {
		return fmt.Errorf("record job %s of %s/%s: %w", jobID, runID, stage, err)
	}
	return nil
}

func recordSubmitted(ctx context.Context, tx *sql.Tx, runID, stage, cluster, jobID string, now time.Time) error {
	{
		var attempt int
		var from string
		if err := tx.QueryRowContext(ctx, `SELECT attempt, state FROM stages WHERE run_id = ? AND name = ?`, runID, stage).Scan(&attempt, &from); err != nil {
			return err
		}
		attempt++
		if _, err := tx.ExecContext(ctx, `UPDATE stages SET job_id = ?, attempt = ?, state = ?, reason = '', error = '', exit_code = NULL, signal = 0,
			restarts = 0, nodes = '', elapsed_s = 0, started_at = NULL, ended_at = NULL, intent_at = NULL, updated_at = ? WHERE run_id = ? AND name = ?`,
			jobID, attempt, string(slurm.StatePending), ms(now), runID, stage); err != nil {
			return err
		}
		// Slurm reuses job ids (MaxJobId wraps, a cluster is rebuilt): the
		// newest submission owns the id.
		if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (job_id, cluster, run_id, stage, attempt, state, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (cluster, job_id) DO UPDATE SET run_id = excluded.run_id, stage = excluded.stage, attempt = excluded.attempt,
			state = excluded.state, submitted_at = excluded.submitted_at`,
			jobID, cluster, runID, stage, attempt, string(slurm.StatePending), ms(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO transitions (run_id, stage, job_id, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?, 'submitted', ?)`,
			runID, stage, jobID, from, string(slurm.StatePending), ms(now)); err != nil {
			return err
		}
	}
	return nil
}

// SetStageError records the line a failed stage's job ended with; it is
// kept only while the stage's current job is jobID.
func (s *Store) SetStageError(ctx context.Context, runID, stage, jobID, msg string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE stages SET error = ? WHERE run_id = ? AND name = ? AND job_id = ?`, msg, runID, stage, jobID)
	if err != nil {
		return fmt.Errorf("record the error of %s/%s: %w", runID, stage, err)
	}
	return nil
}

// TrackedJob is a job slurmtune still has to hear the end of.
type TrackedJob struct {
	RunID, Stage, JobID string
	// ClusterConfig is the run's cluster section (JSON): how to reach it.
	ClusterConfig string
}

// LiveJobs lists the current jobs of all stages that have not ended.
func (s *Store) LiveJobs(ctx context.Context) ([]TrackedJob, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT s.run_id, s.name, s.job_id, s.state, r.cluster_config FROM stages s JOIN runs r ON r.id = s.run_id
		WHERE s.job_id != '' ORDER BY s.run_id, s.position`)
	if err != nil {
		return nil, fmt.Errorf("live jobs: %w", err)
	}
	defer rows.Close()
	var out []TrackedJob
	for rows.Next() {
		var t TrackedJob
		var state string
		if err := rows.Scan(&t.RunID, &t.Stage, &t.JobID, &state, &t.ClusterConfig); err != nil {
			return nil, fmt.Errorf("live jobs: %w", err)
		}
		if !slurm.State(state).Terminal() {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

// UpdateJob records what Slurm said about a stage's current job, with a
// transition when its state changed, and refreshes the run's state.
// It reports whether anything changed.
func (s *Store) UpdateJob(ctx context.Context, t TrackedJob, j slurm.Job) (bool, error) {
	now := time.Now()
	changed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var cur Stage
		var exit sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT job_id, state, reason, exit_code, restarts, nodes FROM stages WHERE run_id = ? AND name = ?`,
			t.RunID, t.Stage).Scan(&cur.JobID, &cur.State, &cur.Reason, &exit, &cur.Restarts, &cur.Nodes)
		if err != nil {
			return err
		}
		if cur.JobID != t.JobID {
			return nil // the stage moved on to another job meanwhile
		}
		state := string(j.State)
		var exitVal any
		if j.State.Terminal() {
			exitVal = j.ExitCode
		}
		changed = state != cur.State || j.Reason != cur.Reason || j.Restarts != cur.Restarts || j.Nodes != cur.Nodes ||
			exit.Valid != (exitVal != nil)
		if _, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, reason = ?, exit_code = ?, signal = ?, restarts = ?, nodes = ?,
			elapsed_s = ?, started_at = ?, ended_at = ?, updated_at = ? WHERE run_id = ? AND name = ?`,
			state, j.Reason, exitVal, j.Signal, j.Restarts, j.Nodes, int64(j.Elapsed/time.Second), nullMs(j.Start), nullMs(j.End), ms(now),
			t.RunID, t.Stage); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ? WHERE job_id = ? AND run_id = ?`, state, t.JobID, t.RunID); err != nil {
			return err
		}
		if state != cur.State || j.Restarts != cur.Restarts {
			reason := j.Reason
			if j.Restarts != cur.Restarts {
				reason = fmt.Sprintf("restart %d %s", j.Restarts, j.Reason)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO transitions (run_id, stage, job_id, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				t.RunID, t.Stage, t.JobID, cur.State, state, reason, ms(now)); err != nil {
				return err
			}
		}
		return s.refreshRunState(ctx, tx, t.RunID, now)
	})
	if err != nil {
		return false, fmt.Errorf("update job %s: %w", t.JobID, err)
	}
	return changed, nil
}

// MarkCancelled records that the user cancelled a run.
func (s *Store) MarkCancelled(ctx context.Context, runID string) error {
	now := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET cancelled = 1, updated_at = ? WHERE id = ?`, ms(now), runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return s.refreshRunState(ctx, tx, runID, now)
	})
	if err != nil {
		return fmt.Errorf("cancel run %s: %w", runID, err)
	}
	return nil
}

func (s *Store) refreshRunState(ctx context.Context, tx *sql.Tx, runID string, now time.Time) error {
	var cancelled bool
	var old, submission string
	if err := tx.QueryRowContext(ctx, `SELECT cancelled, state, submission FROM runs WHERE id = ?`, runID).Scan(&cancelled, &old, &submission); err != nil {
		return err
	}
	stages, err := loadStages(ctx, tx, runID)
	if err != nil {
		return err
	}
	r := Run{Stages: stages}
	state := DeriveState(cancelled, stages)
	if submission == SubmissionInterrupted && state != RunCancelled {
		state = RunFailed
	}
	var ended sql.NullInt64
	if r.Ended() {
		ended = nullMs(now)
	}
	_, err = tx.ExecContext(ctx, `UPDATE runs SET state = ?, updated_at = ?, ended_at = COALESCE(ended_at, ?) WHERE id = ?`,
		state, ms(now), ended, runID)
	return err
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func loadStages(ctx context.Context, q querier, runID string) ([]Stage, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, position, job_id, attempt, state, reason, exit_code, signal, restarts, nodes, elapsed_s, started_at, ended_at, error
		FROM stages WHERE run_id = ? ORDER BY position`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Stage
	for rows.Next() {
		var st Stage
		var exit, started, ended sql.NullInt64
		var elapsed int64
		if err := rows.Scan(&st.Name, &st.Position, &st.JobID, &st.Attempt, &st.State, &st.Reason, &exit, &st.Signal,
			&st.Restarts, &st.Nodes, &elapsed, &started, &ended, &st.Error); err != nil {
			return nil, err
		}
		if exit.Valid {
			v := int(exit.Int64)
			st.ExitCode = &v
		}
		st.Elapsed = time.Duration(elapsed) * time.Second
		st.StartedAt, st.EndedAt = fromMs(started), fromMs(ended)
		out = append(out, st)
	}
	return out, rows.Err()
}

// GetRun loads one run with its stages. id may be a unique prefix.
func (s *Store) GetRun(ctx context.Context, id string) (*Run, error) {
	if id == "" {
		return nil, fmt.Errorf("run: %w (no id given)", ErrNotFound)
	}
	rows, err := s.db.QueryContext(ctx, runSelect+` WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 2`, len(id), id)
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	runs, err := s.scanRuns(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	for _, r := range runs {
		if r.ID == id {
			return r, nil
		}
	}
	switch len(runs) {
	case 0:
		return nil, fmt.Errorf("run %s: %w", id, ErrNotFound)
	case 1:
		return runs[0], nil
	}
	return nil, fmt.Errorf("run %s: ambiguous prefix (matches %s and %s)", id, runs[0].ID, runs[1].ID)
}

// ListRuns lists runs, newest first, at most limit (0: all).
func (s *Store) ListRuns(ctx context.Context, limit int) ([]*Run, error) {
	q := runSelect + ` ORDER BY created_at DESC, id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := s.scanRuns(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

const runSelect = `SELECT id, name, pipeline_file, run_dir, transport, cluster, state, cancelled, created_at, updated_at, ended_at,
	cluster_config, fingerprint, submission, submitter, reason FROM runs`

func (s *Store) scanRuns(ctx context.Context, rows *sql.Rows) ([]*Run, error) {
	var runs []*Run
	for rows.Next() {
		r := &Run{}
		var created, updated int64
		var ended sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Name, &r.PipelineFile, &r.RunDir, &r.Transport, &r.Cluster, &r.State, &r.Cancelled,
			&created, &updated, &ended, &r.ClusterConfig, &r.Fingerprint, &r.Submission, &r.Submitter, &r.Reason); err != nil {
			rows.Close()
			return nil, err
		}
		r.CreatedAt, r.UpdatedAt, r.EndedAt = time.UnixMilli(created), time.UnixMilli(updated), fromMs(ended)
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, r := range runs {
		st, err := loadStages(ctx, s.db, r.ID)
		if err != nil {
			return nil, err
		}
		r.Stages = st
	}
	return runs, nil
}

// Transition is one recorded state change.
type Transition struct {
	Stage, JobID, From, To, Reason string
	At                             time.Time
}

// Transitions lists a run's state changes in order.
func (s *Store) Transitions(ctx context.Context, runID string) ([]Transition, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stage, job_id, from_state, to_state, reason, at FROM transitions WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("transitions of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []Transition
	for rows.Next() {
		var t Transition
		var at int64
		if err := rows.Scan(&t.Stage, &t.JobID, &t.From, &t.To, &t.Reason, &at); err != nil {
			return nil, err
		}
		t.At = time.UnixMilli(at)
		out = append(out, t)
	}
	return out, rows.Err()
}

// SetMetric records a metric of a run's stage.
func (s *Store) SetMetric(ctx context.Context, runID, stage, name string, value float64) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO metrics (run_id, stage, name, value, at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (run_id, stage, name) DO UPDATE SET value = excluded.value, at = excluded.at`, runID, stage, name, value, ms(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("set metric %s of %s: %w", name, runID, err)
	}
	return nil
}

// Metrics returns a run's metrics by stage and name.
func (s *Store) Metrics(ctx context.Context, runID string) (map[string]map[string]float64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stage, name, value FROM metrics WHERE run_id = ?`, runID)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", runID, err)
	}
	defer rows.Close()
	out := map[string]map[string]float64{}
	for rows.Next() {
		var st, n string
		var v float64
		if err := rows.Scan(&st, &n, &v); err != nil {
			return nil, err
		}
		if out[st] == nil {
			out[st] = map[string]float64{}
		}
		out[st][n] = v
	}
	return out, rows.Err()
}

// RunSummary is one row of a runs list: the run, its stages' jobs, its
// last train loss and its eval verdict, read with a constant number of
// queries however many runs there are.
type RunSummary struct {
	ID, Name, State string
	Cancelled       bool
	CreatedAt       time.Time
	EndedAt         time.Time
	// TrainLoss is the last train loss point; nil without one.
	TrainLoss *float64
	// EvalPassed is the stored eval report's verdict; nil without one.
	EvalPassed *bool
	Stages     []Stage
}

// RunSummaries lists every run, newest first.
func (s *Store) RunSummaries(ctx context.Context) ([]RunSummary, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.id, r.name, r.state, r.cancelled, r.created_at, r.ended_at,
		(SELECT p.value FROM metric_series s JOIN metric_points p ON p.series = s.id
			WHERE s.run_id = r.id AND s.stage = 'train' AND s.name = 'loss' ORDER BY p.off DESC LIMIT 1),
		e.passed
		FROM runs r LEFT JOIN eval_reports e ON e.run_id = r.id ORDER BY r.created_at DESC, r.id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	var out []RunSummary
	index := map[string]int{}
	for rows.Next() {
		var r RunSummary
		var created int64
		var ended sql.NullInt64
		var loss sql.NullFloat64
		var passed sql.NullBool
		if err := rows.Scan(&r.ID, &r.Name, &r.State, &r.Cancelled, &created, &ended, &loss, &passed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list runs: %w", err)
		}
		r.CreatedAt, r.EndedAt = time.UnixMilli(created), fromMs(ended)
		if loss.Valid {
			r.TrainLoss = &loss.Float64
		}
		if passed.Valid {
			r.EvalPassed = &passed.Bool
		}
		index[r.ID] = len(out)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT run_id, name, position, job_id, attempt, state, restarts FROM stages ORDER BY run_id, position`)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var st Stage
		if err := rows.Scan(&id, &st.Name, &st.Position, &st.JobID, &st.Attempt, &st.State, &st.Restarts); err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		if i, ok := index[id]; ok {
			out[i].Stages = append(out[i].Stages, st)
		}
	}
	return out, rows.Err()
}

// IsNotFound reports whether err means a missing run.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
