package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SweepTask is one task of a sweep run.
type SweepTask struct {
	Task int
	// Settings is the task's swept values as JSON ({"key": value}).
	Settings string
	// Metric, Passed and Reason come from the select job (nil until it
	// ran); Winner marks the task it picked.
	Metric *float64
	Passed *bool
	Reason string
	Winner bool
}

// SweepRun is what a sweep run selects by: its metric and goal (min, max).
type SweepRun struct{ Metric, Goal string }

// SaveSweepTasks records a sweep run's select metric and goal, its tasks and
// their settings.
func (s *Store) SaveSweepTasks(ctx context.Context, runID string, sr SweepRun, tasks []SweepTask) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sweep_runs (run_id, metric, goal) VALUES (?, ?, ?)`, runID, sr.Metric, sr.Goal); err != nil {
			return err
		}
		for _, t := range tasks {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sweep_tasks (run_id, task, settings) VALUES (?, ?, ?)`, runID, t.Task, t.Settings); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record the sweep tasks of %s: %w", runID, err)
	}
	return nil
}

// SaveSweepSelection records what the select job found of each task.
func (s *Store) SaveSweepSelection(ctx context.Context, runID string, tasks []SweepTask) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, t := range tasks {
			var passed any
			if t.Passed != nil {
				passed = *t.Passed
			}
			if _, err := tx.ExecContext(ctx, `UPDATE sweep_tasks SET metric = ?, passed = ?, reason = ?, winner = ? WHERE run_id = ? AND task = ?`,
				t.Metric, passed, t.Reason, t.Winner, runID, t.Task); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record the sweep selection of %s: %w", runID, err)
	}
	return nil
}

// GetSweepRun returns a sweep run's metric and goal; nil for a run that is
// not a sweep.
func (s *Store) GetSweepRun(ctx context.Context, runID string) (*SweepRun, error) {
	var sr SweepRun
	err := s.db.QueryRowContext(ctx, `SELECT metric, goal FROM sweep_runs WHERE run_id = ?`, runID).Scan(&sr.Metric, &sr.Goal)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep of %s: %w", runID, err)
	}
	return &sr, nil
}

// SweepTasks returns a run's sweep tasks in task order (none for a run that
// is not a sweep).
func (s *Store) SweepTasks(ctx context.Context, runID string) ([]SweepTask, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT task, settings, metric, passed, reason, winner FROM sweep_tasks WHERE run_id = ? ORDER BY task`, runID)
	if err != nil {
		return nil, fmt.Errorf("sweep tasks of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []SweepTask
	for rows.Next() {
		var t SweepTask
		var metric sql.NullFloat64
		var passed sql.NullBool
		if err := rows.Scan(&t.Task, &t.Settings, &metric, &passed, &t.Reason, &t.Winner); err != nil {
			return nil, fmt.Errorf("sweep tasks of %s: %w", runID, err)
		}
		if metric.Valid {
			t.Metric = &metric.Float64
		}
		if passed.Valid {
			t.Passed = &passed.Bool
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RecordIntents is RecordIntent for each of stages (one job, or the tasks of
// one array).
func (s *Store) RecordIntents(ctx context.Context, runID string, stages []string) error {
	for _, st := range stages {
		if err := s.RecordIntent(ctx, runID, st); err != nil {
			return err
		}
	}
	return nil
}

// RecordArraySubmitted records that the stages of one array were submitted,
// stage i as job jobIDs[i] (ARRAY_TASK), in one transaction.
func (s *Store) RecordArraySubmitted(ctx context.Context, runID string, stages []string, cluster string, jobIDs []string) error {
	now := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i, st := range stages {
			if err := recordSubmitted(ctx, tx, runID, st, cluster, jobIDs[i], now); err != nil {
				return err
			}
		}
		return s.refreshRunState(ctx, tx, runID, now)
	})
	if err != nil {
		return fmt.Errorf("record the array jobs of %s: %w", runID, err)
	}
	return nil
}

// ResetSweepSelection forgets what the last select job found (a task is
// being retried: the next select decides again).
func (s *Store) ResetSweepSelection(ctx context.Context, runID string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE sweep_tasks SET metric = NULL, passed = NULL, reason = '', winner = 0 WHERE run_id = ?`, runID); err != nil {
		return fmt.Errorf("reset the sweep selection of %s: %w", runID, err)
	}
	return nil
}
