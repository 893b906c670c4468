package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Run submission states.
const (
	SubmissionSubmitting  = "submitting"
	SubmissionComplete    = "complete"
	SubmissionInterrupted = "interrupted"
)

// StateSubmitting is a stage's state while its sbatch is in flight: the
// intent is recorded before sbatch runs, so a crash in between is found and
// reconciled by the next command.
const StateSubmitting = "SUBMITTING"

// ClaimRun records a new run unless a run with the same fingerprint is in
// flight or succeeded, in one transaction (BEGIN IMMEDIATE), so concurrent
// callers (two cron jobs at the same moment) claim at most one run. It
// returns the existing run instead when there is one.
func (s *Store) ClaimRun(ctx context.Context, r Run, stages []string) (existing *Run, err error) {
	now := time.Now()
	var existingID string
	err = s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM runs WHERE fingerprint = ? AND fingerprint != ''
			AND (state IN (?, ?, ?) OR submission = ?) AND cancelled = 0 ORDER BY created_at DESC LIMIT 1`,
			r.Fingerprint, RunPending, RunRunning, RunSucceeded, SubmissionSubmitting).Scan(&existingID)
		switch {
		case err == nil:
			return nil
		case err != sql.ErrNoRows:
			return err
		}
		return insertRun(ctx, tx, r, stages, now)
	})
	if err != nil {
		return nil, fmt.Errorf("claim run %s: %w", r.ID, err)
	}
	if existingID != "" {
		return s.GetRun(ctx, existingID)
	}
	return nil, nil
}

// RecordIntent records, before sbatch runs, that a stage is being submitted.
func (s *Store) RecordIntent(ctx context.Context, runID, stage string) error {
	now := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, intent_at = ?, updated_at = ? WHERE run_id = ? AND name = ?`,
			StateSubmitting, ms(now), ms(now), runID, stage)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("no stage %s in run %s", stage, runID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record submit intent for %s/%s: %w", runID, stage, err)
	}
	return nil
}

// ClearIntent records that a stage's submission never reached Slurm.
func (s *Store) ClearIntent(ctx context.Context, runID, stage string) error {
	now := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE stages SET state = CASE WHEN job_id = '' THEN ? ELSE state END, intent_at = NULL, updated_at = ?
			WHERE run_id = ? AND name = ? AND intent_at IS NOT NULL`, StateNotSubmitted, ms(now), runID, stage)
		return err
	})
	if err != nil {
		return fmt.Errorf("clear submit intent for %s/%s: %w", runID, stage, err)
	}
	return nil
}

// FinishSubmission records how a run's submission ended (complete or
// interrupted, with a reason) and refreshes its state.
func (s *Store) FinishSubmission(ctx context.Context, runID, submission, reason string) error {
	now := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET submission = ?, reason = ?, updated_at = ? WHERE id = ?`,
			submission, reason, ms(now), runID); err != nil {
			return err
		}
		return s.refreshRunState(ctx, tx, runID, now)
	})
	if err != nil {
		return fmt.Errorf("finish submission of %s: %w", runID, err)
	}
	return nil
}

// Intent is a stage whose sbatch may or may not have reached Slurm.
type Intent struct {
	RunID, Stage, Submitter, ClusterConfig string
	Attempt                                int
	At                                     time.Time
}

// SubmittingRuns lists runs whose submission has not finished, with their
// stages' open intents.
func (s *Store) SubmittingRuns(ctx context.Context) ([]*Run, error) {
	rows, err := s.db.QueryContext(ctx, runSelect+` WHERE submission = ? ORDER BY created_at`, SubmissionSubmitting)
	if err != nil {
		return nil, fmt.Errorf("submitting runs: %w", err)
	}
	runs, err := s.scanRuns(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("submitting runs: %w", err)
	}
	return runs, nil
}

// ResetForRetry prepares a run for resubmitting stages from the given one
// on: the run is no longer cancelled or interrupted; its history stays.
func (s *Store) ResetForRetry(ctx context.Context, runID, submitter string) error {
	now := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET cancelled = 0, submission = ?, submitter = ?, reason = '', ended_at = NULL,
			updated_at = ? WHERE id = ?`, SubmissionSubmitting, submitter, ms(now), runID); err != nil {
			return err
		}
		return s.refreshRunState(ctx, tx, runID, now)
	})
	if err != nil {
		return fmt.Errorf("reset %s for retry: %w", runID, err)
	}
	return nil
}

// Backup writes a consistent copy of the database to path while others may
// be using it (VACUUM INTO). path must not exist.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	return nil
}
