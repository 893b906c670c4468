package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"
)

// Notification is one webhook event in the outbox.
type Notification struct {
	// Key identifies the event (run, event, detail): an event with a key
	// already in the outbox is never added again.
	Key       string
	RunID     string
	Event     string
	URL       string
	Payload   []byte
	Attempts  int
	NextAt    time.Time
	LastError string
	CreatedAt time.Time
}

// SetRunNotify records a run's notify section (JSON), read when its
// events are looked for.
func (s *Store) SetRunNotify(ctx context.Context, runID, config string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO run_notify (run_id, config) VALUES (?, ?)
		ON CONFLICT (run_id) DO UPDATE SET config = excluded.config`, runID, config)
	if err != nil {
		return fmt.Errorf("record notify of run %s: %w", runID, err)
	}
	return nil
}

// NotifyRun is a run whose notify section is set and that changed since
// its events were last looked for.
type NotifyRun struct {
	Run    *Run
	Config string
}

// ChangedNotifyRuns lists the runs with a notify section that changed
// since MarkNotifyScanned last saw them.
func (s *Store) ChangedNotifyRuns(ctx context.Context) ([]NotifyRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT n.run_id, n.config FROM run_notify n JOIN runs r ON r.id = n.run_id
		WHERE r.updated_at >= n.scanned_at ORDER BY n.run_id`)
	if err != nil {
		return nil, fmt.Errorf("notify runs: %w", err)
	}
	var ids, configs []string
	for rows.Next() {
		var id, cfg string
		if err := rows.Scan(&id, &cfg); err != nil {
			rows.Close()
			return nil, fmt.Errorf("notify runs: %w", err)
		}
		ids, configs = append(ids, id), append(configs, cfg)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("notify runs: %w", err)
	}
	out := make([]NotifyRun, 0, len(ids))
	for i, id := range ids {
		r, err := s.GetRun(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, NotifyRun{Run: r, Config: configs[i]})
	}
	return out, nil
}

// MarkNotifyScanned records that a run's events were looked for at t.
func (s *Store) MarkNotifyScanned(ctx context.Context, runID string, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE run_notify SET scanned_at = ? WHERE run_id = ?`, ms(t), runID)
	return err
}

// EnqueueNotification adds n to the outbox unless its key is there
// already; it reports whether it was added.
func (s *Store) EnqueueNotification(ctx context.Context, n Notification) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO notifications (key, run_id, event, url, payload, next_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		n.Key, n.RunID, n.Event, n.URL, string(n.Payload), ms(n.NextAt), ms(n.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("enqueue notification %s: %w", n.Key, err)
	}
	added, _ := res.RowsAffected()
	return added == 1, nil
}

// DueNotifications lists undelivered notifications due at now, oldest
// first, at most limit.
func (s *Store) DueNotifications(ctx context.Context, now time.Time, limit int) ([]Notification, error) {
	rows, err := s.db.QueryContext(ctx, notificationSelect+` WHERE delivered_at IS NULL AND next_at <= ?
		ORDER BY created_at, key LIMIT ?`, ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("due notifications: %w", err)
	}
	return scanNotifications(rows)
}

const notificationSelect = `SELECT key, run_id, event, url, payload, attempts, next_at, last_error, created_at FROM notifications`

func scanNotifications(rows *sql.Rows) ([]Notification, error) {
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		var n Notification
		var payload string
		var next, created int64
		if err := rows.Scan(&n.Key, &n.RunID, &n.Event, &n.URL, &payload, &n.Attempts, &next, &n.LastError, &created); err != nil {
			return nil, fmt.Errorf("notifications: %w", err)
		}
		n.Payload, n.NextAt, n.CreatedAt = []byte(payload), time.UnixMilli(next), time.UnixMilli(created)
		out = append(out, n)
	}
	return out, rows.Err()
}

// NotificationDelivered marks a notification delivered at t.
func (s *Store) NotificationDelivered(ctx context.Context, key string, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE notifications SET delivered_at = ?, attempts = attempts + 1, last_error = ''
		WHERE key = ?`, ms(t), key)
	return err
}

// NotificationFailed records a failed attempt and when to try again; a
// zero next gives up (the row stays, undelivered, with its error).
func (s *Store) NotificationFailed(ctx context.Context, key, errText string, next time.Time) error {
	nextAt := int64(math.MaxInt64) // never due again
	if !next.IsZero() {
		nextAt = ms(next)
	}
	_, err := s.db.ExecContext(ctx, `UPDATE notifications SET attempts = attempts + 1, last_error = ?, next_at = ?
		WHERE key = ?`, errText, nextAt, key)
	return err
}

// Notifications lists a run's notifications (delivered or not), oldest
// first.
func (s *Store) Notifications(ctx context.Context, runID string) ([]Notification, error) {
	rows, err := s.db.QueryContext(ctx, notificationSelect+` WHERE run_id = ? ORDER BY created_at, key`, runID)
	if err != nil {
		return nil, fmt.Errorf("notifications of %s: %w", runID, err)
	}
	return scanNotifications(rows)
}
