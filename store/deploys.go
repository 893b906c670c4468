package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DeployEvent is one traffic switch of a deployment (see serve/deploy): its
// time, action, reason and the two model versions involved. Detail is the
// event as the history file has it (JSON).
type DeployEvent struct {
	ID        string
	Name      string
	At        time.Time
	Action    string
	Reason    string
	Strategy  string
	FromRun   string
	FromModel string
	ToRun     string
	ToModel   string
	Detail    string
}

// ImportDeployEvents records events not recorded yet (by id) and returns
// how many were new.
func (s *Store) ImportDeployEvents(ctx context.Context, events []DeployEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, e := range events {
			res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO deploy_events
				(id, name, at, action, reason, strategy, from_run, from_model, to_run, to_model, detail)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				e.ID, e.Name, ms(e.At), e.Action, e.Reason, e.Strategy, e.FromRun, e.FromModel, e.ToRun, e.ToModel, e.Detail)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("import deploy events: %w", err)
	}
	return n, nil
}

// DeployEvents lists a deployment's events, oldest first.
func (s *Store) DeployEvents(ctx context.Context, name string) ([]DeployEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, at, action, reason, strategy, from_run, from_model, to_run, to_model, detail
		FROM deploy_events WHERE name = ? ORDER BY at, rowid`, name)
	if err != nil {
		return nil, fmt.Errorf("deploy events of %s: %w", name, err)
	}
	defer rows.Close()
	var out []DeployEvent
	for rows.Next() {
		var e DeployEvent
		var at int64
		if err := rows.Scan(&e.ID, &e.Name, &at, &e.Action, &e.Reason, &e.Strategy, &e.FromRun, &e.FromModel, &e.ToRun, &e.ToModel, &e.Detail); err != nil {
			return nil, err
		}
		e.At = time.UnixMilli(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// DeploySample is the router's view of one backend of a deployment at one
// time. Requests and Errors are the router's counters since the backend
// joined the routing state; P95 is over the router's stats window.
type DeploySample struct {
	Name     string
	Backend  string
	RunID    string
	At       time.Time
	Requests int64
	Errors   int64
	P95      time.Duration
	Healthy  bool
}

// AddDeploySamples records samples (a sample of the same backend at the
// same millisecond replaces the older one).
func (s *Store) AddDeploySamples(ctx context.Context, samples []DeploySample) error {
	if len(samples) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, x := range samples {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO deploy_samples
				(name, backend, run_id, at, requests, errors, p95_ns, healthy) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				x.Name, x.Backend, x.RunID, ms(x.At), x.Requests, x.Errors, int64(x.P95), x.Healthy); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add deploy samples: %w", err)
	}
	return nil
}

// DeploySamples lists the samples of one run's backend in a deployment,
// oldest first.
func (s *Store) DeploySamples(ctx context.Context, name, runID string) ([]DeploySample, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, backend, run_id, at, requests, errors, p95_ns, healthy
		FROM deploy_samples WHERE name = ? AND run_id = ? ORDER BY at`, name, runID)
	if err != nil {
		return nil, fmt.Errorf("deploy samples of %s: %w", name, err)
	}
	defer rows.Close()
	var out []DeploySample
	for rows.Next() {
		var x DeploySample
		var at, p95 int64
		if err := rows.Scan(&x.Name, &x.Backend, &x.RunID, &at, &x.Requests, &x.Errors, &p95, &x.Healthy); err != nil {
			return nil, err
		}
		x.At, x.P95 = time.UnixMilli(at), time.Duration(p95)
		out = append(out, x)
	}
	return out, rows.Err()
}

// RunsByName lists the runs of the pipeline named name, newest first, at
// most limit (0: all).
func (s *Store) RunsByName(ctx context.Context, name string, limit int) ([]*Run, error) {
	q := runSelect + ` WHERE name = ? ORDER BY created_at DESC, id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.db.QueryContext(ctx, q, name)
	if err != nil {
		return nil, fmt.Errorf("runs named %q: %w", name, err)
	}
	runs, err := s.scanRuns(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("runs named %q: %w", name, err)
	}
	return runs, nil
}

// DeployingNames lists, sorted, the names of the pipelines that have a run
// with a deploy stage: the candidates for a deployment that `slurmtune
// sync` samples.
func (s *Store) DeployingNames(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT r.name FROM runs r JOIN stages s ON s.run_id = r.id
		WHERE s.name = 'deploy' ORDER BY r.name`)
	if err != nil {
		return nil, fmt.Errorf("deploying pipelines: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("deploying pipelines: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deploying pipelines: %w", err)
	}
	return out, nil
}
