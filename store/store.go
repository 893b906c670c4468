// Package store keeps slurmtune's record of runs, stages, Slurm jobs, state
// transitions and metrics in one SQLite file, with forward-only migrations.
// Every write is a short transaction so cron syncs and interactive commands
// can share the file.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-sqlite3" // registers the sqlite3 driver
)

// Store is an open slurmtune database.
type Store struct {
	db   *sql.DB
	path string
}

// DefaultPath is $SLURMTUNE_DB, else $XDG_STATE_HOME/slurmtune/slurmtune.db,
// else ~/.local/state/slurmtune/slurmtune.db.
func DefaultPath() (string, error) {
	if p := os.Getenv("SLURMTUNE_DB"); p != "" {
		return p, nil
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("database path: %w", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "slurmtune", "slurmtune.db"), nil
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// Create the file ourselves so it is 0600 from the first byte.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	f.Close()
	journal := "WAL"
	if fs, ok := networkFilesystem(filepath.Dir(path)); ok {
		journal = "DELETE"
		log.Warn("database is on a network filesystem: not using WAL, whose shared memory does not work across hosts", "fs", fs, "path", path)
	}
	dsn := fmt.Sprintf("file:%s?_busy_timeout=15000&_foreign_keys=on&_journal_mode=%s&_synchronous=NORMAL&_txlock=immediate", escapePath(path), journal)
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(4)
	// Connecting runs PRAGMA journal_mode, which SQLite fails at once, without
	// waiting on busy_timeout, when two processes switch a new database to
	// WAL together: the loser tries again.
	for deadline := time.Now().Add(15 * time.Second); ; {
		err := db.PingContext(ctx)
		if err == nil {
			break
		}
		var se sqlite3.Error
		if !errors.As(err, &se) || se.Code != sqlite3.ErrBusy || time.Now().After(deadline) {
			db.Close()
			return nil, fmt.Errorf("open database: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := &Store{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenReadOnly opens an existing database for reading only (the web
// dashboard): nothing is created, migrated or written, and the database
// must already be at this build's schema version.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database read-only: %w", err)
	}
	dsn := fmt.Sprintf("file:%s?mode=ro&_busy_timeout=15000&_foreign_keys=on&_query_only=true", escapePath(path))
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database read-only: %w", err)
	}
	db.SetMaxOpenConns(4)
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database read-only: %w", err)
	}
	if v != len(migrations) {
		db.Close()
		return nil, fmt.Errorf("open database read-only: %s is at schema version %d, this slurmtune needs %d: run `slurmtune status --no-sync` once to migrate it", path, v, len(migrations))
	}
	return &Store{db: db, path: path}, nil
}

func escapePath(p string) string {
	// The sqlite3 driver reads the DSN as a URI: escape what would end the path.
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '?', '#', '%':
			out = append(out, fmt.Sprintf("%%%02X", c)...)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// SchemaVersion is the number of migrations this build knows.
func SchemaVersion() int { return len(migrations) }

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this slurmtune knows (%d): upgrade slurmtune", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			// Another process may have migrated since the version was read:
			// look again under the write lock.
			var cur int
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
				return err
			}
			if cur > i {
				return nil
			}
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to schema %d: %w", i+1, err)
		}
	}
	return nil
}

// tx runs fn in one short write transaction (BEGIN IMMEDIATE, so writers
// queue on busy_timeout instead of failing on upgrade).
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // fn's error is the one to report; database/sql drops a connection whose rollback failed
		return err
	}
	return tx.Commit()
}

// ErrNotFound is returned for a run or job the database does not have.
var ErrNotFound = errors.New("not found")

func ms(t time.Time) int64 { return t.UnixMilli() }

func nullMs(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMs(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMilli(n.Int64)
}
