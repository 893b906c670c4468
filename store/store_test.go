package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

var ctx = context.Background()

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawDB opens a database file with the driver alone, as an older slurmtune
// (or an outside tool) would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func userVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

var stages4 = []string{"prep", "train", "eval", "deploy"}

func TestOpenFresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "slurmtune", "slurmtune.db")
	s := open(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %q", s.Path())
	}
	if v := userVersion(t, s.db); v != SchemaVersion() || v != len(migrations) || v < 2 {
		t.Errorf("user_version = %d, want %d", v, SchemaVersion())
	}
	for _, table := range []string{"runs", "stages", "jobs", "transitions", "metrics"} {
		var n int
		if err := s.db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: %d, %v", table, n, err)
		}
	}
	var mode string
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("database directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	// Reopening an up-to-date database changes nothing.
	s2 := open(t, path)
	if v := userVersion(t, s2.db); v != SchemaVersion() {
		t.Errorf("reopened: user_version = %d", v)
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slurmtune.db")
	s := open(t, path)
	if err := s.CreateRun(ctx, Run{ID: "r1", Name: "n", PipelineFile: "/p.yaml", RunDir: "/r", Transport: "local"}, stages4); err != nil {
		t.Fatal(err)
	}
	// The database and the WAL files SQLite makes beside it are the user's only.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) && p != path {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

func TestOpenOddPath(t *testing.T) {
	// '?', '#' and '%' would end or change the path in the driver's URI.
	dir := filepath.Join(t.TempDir(), "my state?x=1#frag%20")
	path := filepath.Join(dir, "s.db")
	s := open(t, path)
	if err := s.CreateRun(ctx, Run{ID: "r1"}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 && !exists(path+"-wal") {
		t.Fatalf("database not at %q: %v", path, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("files made beside the database directory: %v", entries)
	}
	s2 := open(t, path)
	if _, err := s2.GetRun(ctx, "r1"); err != nil {
		t.Errorf("run not found on reopening: %v", err)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// seed inserts rows valid at schema version v (>= 1) with plain SQL.
func seed(t *testing.T, db *sql.DB, v int) {
	t.Helper()
	stmts := []string{
		`INSERT INTO runs (id, name, pipeline_file, run_dir, transport, cluster, state, created_at, updated_at)
			VALUES ('old-run', 'tiny', '/p/pipeline.yaml', '/scratch/old-run', 'local', '', 'RUNNING', 1000, 2000)`,
		`INSERT INTO stages (run_id, name, position, job_id, attempt, state, updated_at) VALUES ('old-run', 'prep', 0, '41', 1, 'COMPLETED', 2000)`,
		`INSERT INTO stages (run_id, name, position, job_id, attempt, state, updated_at) VALUES ('old-run', 'train', 1, '42', 1, 'RUNNING', 2000)`,
		`INSERT INTO jobs (job_id, cluster, run_id, stage, attempt, state, submitted_at) VALUES ('42', '', 'old-run', 'train', 1, 'RUNNING', 1500)`,
		`INSERT INTO transitions (run_id, stage, job_id, from_state, to_state, reason, at) VALUES ('old-run', 'train', '42', 'PENDING', 'RUNNING', '', 1800)`,
	}
	if v >= 2 {
		stmts = append(stmts, `INSERT INTO metrics (run_id, stage, name, value, at) VALUES ('old-run', 'eval', 'perplexity', 7.5, 1900)`)
	}
	if v >= metricsSchema {
		stmts = append(stmts, `INSERT INTO metric_series (id, run_id, stage, name) VALUES (1, 'old-run', 'train', 'loss')`,
			`INSERT INTO metric_segments (id, run_id, stage, job_id, attempt, restart) VALUES (1, 'old-run', 'train', '42', 1, 0)`,
			`INSERT INTO metric_points (series, off, step, value, at, segment) VALUES (1, 0, 1, 2.5, 1900, 1)`)
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// metricsSchema is the schema version that added training curves.
const metricsSchema = 7

func TestMigrateFromEveryVersion(t *testing.T) {
	for k := 0; k <= len(migrations); k++ {
		t.Run(fmt.Sprintf("from %d", k), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			db := rawDB(t, path)
			for i, m := range migrations[:k] {
				if _, err := db.Exec(m); err != nil {
					t.Fatalf("migration %d: %v", i+1, err)
				}
			}
			if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", k)); err != nil {
				t.Fatal(err)
			}
			if k >= 1 {
				seed(t, db, k)
			}
			db.Close()

			s := open(t, path)
			if v := userVersion(t, s.db); v != len(migrations) {
				t.Fatalf("user_version = %d after Open, want %d", v, len(migrations))
			}
			if k == 0 {
				if runs, err := s.ListRuns(ctx, 0); err != nil || len(runs) != 0 {
					t.Errorf("ListRuns = %v, %v", runs, err)
				}
				return
			}
			r, err := s.GetRun(ctx, "old-run")
			if err != nil {
				t.Fatalf("the old run is gone: %v", err)
			}
			if r.Name != "tiny" || r.State != RunRunning || len(r.Stages) != 2 || r.Stages[1].JobID != "42" || r.CreatedAt.UnixMilli() != 1000 {
				t.Errorf("old run = %+v", r)
			}
			tr, err := s.Transitions(ctx, "old-run")
			if err != nil || len(tr) != 1 || tr[0].To != "RUNNING" {
				t.Errorf("old transitions = %+v, %v", tr, err)
			}
			// What later migrations added works on the old rows.
			if err := s.SetMetric(ctx, "old-run", "eval", "accuracy", 0.5); err != nil {
				t.Fatal(err)
			}
			m, err := s.Metrics(ctx, "old-run")
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]map[string]float64{"eval": {"accuracy": 0.5}}
			if k >= 2 {
				want["eval"]["perplexity"] = 7.5
			}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("metrics = %v, want %v", m, want)
			}
			// Training curves work on the old run.
			if saved, err := s.SaveMetricLines(ctx, "old-run", MetricFile{Path: "/m/train.jsonl"}, MetricFile{Path: "/m/train.jsonl", Stage: "train", ReadTo: 40},
				[]MetricPoint{{Stage: "train", Name: "loss", Offset: 20, Value: 2.25, Time: time.UnixMilli(1950)}}); err != nil || !saved {
				t.Fatalf("SaveMetricLines = %v, %v", saved, err)
			}
			pts, err := s.MetricPoints(ctx, "old-run", MetricFilter{Name: "loss"})
			if want := map[bool]int{true: 2, false: 1}[k >= metricsSchema]; err != nil || len(pts) != want {
				t.Errorf("loss points = %+v, %v", pts, err)
			}
			// And the old run keeps being tracked.
			if _, err := s.UpdateJob(ctx, TrackedJob{RunID: "old-run", Stage: "train", JobID: "42"}, slurm.Job{ID: "42", State: slurm.StateCompleted}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db := rawDB(t, path)
	newer := len(migrations) + 1
	if _, err := db.Exec(fmt.Sprintf("CREATE TABLE future (x); PRAGMA user_version = %d", newer)); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database from a newer slurmtune")
	}
	want := fmt.Sprintf("database schema version %d is newer than this slurmtune knows (%d)", newer, len(migrations))
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to say %q", err, want)
	}
	if v := userVersion(t, db); v != newer {
		t.Errorf("user_version changed to %d", v)
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("SLURMTUNE_DB", "/x/y.db")
	if p, err := DefaultPath(); err != nil || p != "/x/y.db" {
		t.Errorf("with SLURMTUNE_DB: %q, %v", p, err)
	}
	t.Setenv("SLURMTUNE_DB", "")
	t.Setenv("XDG_STATE_HOME", "/state")
	if p, err := DefaultPath(); err != nil || p != "/state/slurmtune/slurmtune.db" {
		t.Errorf("with XDG_STATE_HOME: %q, %v", p, err)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if p, err := DefaultPath(); err != nil || p != "/home/u/.local/state/slurmtune/slurmtune.db" {
		t.Errorf("with HOME only: %q, %v", p, err)
	}
}

// TestConcurrentWriters is cron syncs and interactive commands at once: each
// opens its own Store on the same (new) file.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	const writers, rounds = 4, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s, err := Open(ctx, path, nil)
			if err != nil {
				errs <- fmt.Errorf("writer %d: Open: %w", w, err)
				return
			}
			defer s.Close()
			id := fmt.Sprintf("run-%d", w)
			if err := s.CreateRun(ctx, Run{ID: id, Name: "n", Transport: "local"}, stages4); err != nil {
				errs <- err
				return
			}
			if err := s.RecordSubmitted(ctx, id, "prep", "", fmt.Sprint(100+w)); err != nil {
				errs <- err
				return
			}
			tj := TrackedJob{RunID: id, Stage: "prep", JobID: fmt.Sprint(100 + w)}
			for i := 0; i < rounds; i++ {
				st := slurm.StateRunning
				if i%2 == 1 {
					st = slurm.StatePending
				}
				if _, err := s.UpdateJob(ctx, tj, slurm.Job{ID: tj.JobID, State: st}); err != nil {
					errs <- fmt.Errorf("writer %d round %d: %w", w, i, err)
				}
				if _, err := s.ListRuns(ctx, 10); err != nil {
					errs <- fmt.Errorf("writer %d round %d: %w", w, i, err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
			t.Errorf("SQLITE_BUSY reached the caller: %v", err)
		}
	}
	if n > 0 {
		t.Fatalf("%d errors", n)
	}
	s := open(t, path)
	runs, err := s.ListRuns(ctx, 0)
	if err != nil || len(runs) != writers {
		t.Fatalf("ListRuns = %d runs, %v", len(runs), err)
	}
	for w := 0; w < writers; w++ {
		tr, err := s.Transitions(ctx, fmt.Sprintf("run-%d", w))
		if err != nil || len(tr) != rounds+1 {
			t.Errorf("run-%d: %d transitions, %v; want %d", w, len(tr), err, rounds+1)
		}
	}
}

func TestRunLifecycle(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	run := Run{ID: "tiny-20260101-000000-abcd", Name: "tiny", PipelineFile: "/p/pipeline.yaml", RunDir: "/scratch/tiny-1", Transport: "ssh", Cluster: "c1"}
	if err := s.CreateRun(ctx, run, stages4); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(ctx, run, stages4); err == nil {
		t.Error("CreateRun of an existing id succeeded")
	}
	get := func() *Run {
		t.Helper()
		r, err := s.GetRun(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := get()
	if r.Name != "tiny" || r.PipelineFile != "/p/pipeline.yaml" || r.RunDir != "/scratch/tiny-1" || r.Transport != "ssh" || r.Cluster != "c1" ||
		r.State != RunPending || r.Cancelled || r.CreatedAt.IsZero() || !r.EndedAt.IsZero() {
		t.Errorf("new run = %+v", r)
	}
	for i, st := range r.Stages {
		if st.Name != stages4[i] || st.Position != i || st.State != StateNotSubmitted || st.JobID != "" || st.Attempt != 0 || st.ExitCode != nil {
			t.Errorf("new stage %d = %+v", i, st)
		}
	}
	if live, err := s.LiveJobs(ctx); err != nil || len(live) != 0 {
		t.Errorf("LiveJobs before any submit = %v, %v", live, err)
	}

	// Submit prep; it runs; a node fails and Slurm requeues it; it completes.
	if err := s.RecordSubmitted(ctx, run.ID, "prep", "c1", "101"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSubmitted(ctx, run.ID, "nope", "c1", "999"); err == nil {
		t.Error("RecordSubmitted of an unknown stage succeeded")
	}
	r = get()
	if st := r.Stages[0]; st.JobID != "101" || st.Attempt != 1 || st.State != "PENDING" || r.State != RunPending {
		t.Errorf("after submit: run %s, prep %+v", r.State, st)
	}
	prep := TrackedJob{RunID: run.ID, Stage: "prep", JobID: "101"}
	if live, err := s.LiveJobs(ctx); err != nil || !reflect.DeepEqual(live, []TrackedJob{prep}) {
		t.Errorf("LiveJobs = %v, %v; want prep", live, err)
	}
	start := time.UnixMilli(time.Now().UnixMilli())
	steps := []struct {
		job         slurm.Job
		wantChanged bool
		wantRun     string
	}{
		{slurm.Job{ID: "101", State: slurm.StateRunning, Nodes: "n1", Start: start, Elapsed: 5 * time.Second}, true, RunRunning},
		{slurm.Job{ID: "101", State: slurm.StateRunning, Nodes: "n1", Start: start, Elapsed: 9 * time.Second}, false, RunRunning},
		{slurm.Job{ID: "101", State: slurm.StatePending, Reason: "BeginTime", Restarts: 1}, true, RunPending},
		{slurm.Job{ID: "101", State: slurm.StateCompleted, Restarts: 1, Nodes: "n2", Start: start, End: start.Add(time.Minute), Elapsed: time.Minute}, true, RunRunning},
	}
	for i, step := range steps {
		changed, err := s.UpdateJob(ctx, prep, step.job)
		if err != nil {
			t.Fatal(err)
		}
		if changed != step.wantChanged {
			t.Errorf("step %d: changed = %v, want %v", i, changed, step.wantChanged)
		}
		if r := get(); r.State != step.wantRun {
			t.Errorf("step %d: run state %s, want %s", i, r.State, step.wantRun)
		}
	}
	r = get()
	st := r.Stages[0]
	if st.State != "COMPLETED" || st.ExitCode == nil || *st.ExitCode != 0 || st.Restarts != 1 || st.Nodes != "n2" || st.Elapsed != time.Minute ||
		!st.StartedAt.Equal(start) || !st.EndedAt.Equal(start.Add(time.Minute)) {
		t.Errorf("completed prep = %+v", st)
	}
	if live, err := s.LiveJobs(ctx); err != nil || len(live) != 0 {
		t.Errorf("LiveJobs after prep ended = %v, %v", live, err)
	}
	// A report about a job the stage no longer runs changes nothing.
	if changed, err := s.UpdateJob(ctx, TrackedJob{RunID: run.ID, Stage: "prep", JobID: "100"}, slurm.Job{ID: "100", State: slurm.StateFailed}); err != nil || changed {
		t.Errorf("stale job update: changed %v, %v", changed, err)
	}
	if get().Stages[0].State != "COMPLETED" {
		t.Error("a stale job update overwrote the stage")
	}

	// The rest of the chain completes.
	for i, stage := range stages4[1:] {
		id := fmt.Sprint(102 + i)
		if err := s.RecordSubmitted(ctx, run.ID, stage, "c1", id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateJob(ctx, TrackedJob{RunID: run.ID, Stage: stage, JobID: id}, slurm.Job{ID: id, State: slurm.StateCompleted}); err != nil {
			t.Fatal(err)
		}
	}
	r = get()
	if r.State != RunSucceeded || !r.Ended() || r.EndedAt.IsZero() {
		t.Errorf("finished run: state %s, ended %v at %v", r.State, r.Ended(), r.EndedAt)
	}

	tr, err := s.Transitions(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range tr {
		got = append(got, x.Stage+":"+x.JobID+":"+x.From+">"+x.To+":"+x.Reason)
		if x.At.IsZero() {
			t.Errorf("transition without time: %+v", x)
		}
	}
	want := []string{
		"prep:101:NOT_SUBMITTED>PENDING:submitted",
		"prep:101:PENDING>RUNNING:",
		"prep:101:RUNNING>PENDING:restart 1 BeginTime",
		"prep:101:PENDING>COMPLETED:",
		"train:102:NOT_SUBMITTED>PENDING:submitted",
		"train:102:PENDING>COMPLETED:",
		"eval:103:NOT_SUBMITTED>PENDING:submitted",
		"eval:103:PENDING>COMPLETED:",
		"deploy:104:NOT_SUBMITTED>PENDING:submitted",
		"deploy:104:PENDING>COMPLETED:",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("transitions:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestResubmitStage(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.CreateRun(ctx, Run{ID: "r"}, []string{"train"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSubmitted(ctx, "r", "train", "", "7"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateJob(ctx, TrackedJob{RunID: "r", Stage: "train", JobID: "7"}, slurm.Job{ID: "7", State: slurm.StateFailed, ExitCode: 3, Reason: "NonZeroExitCode"}); err != nil {
		t.Fatal(err)
	}
	r, _ := s.GetRun(ctx, "r")
	if r.State != RunFailed || r.Stages[0].ExitCode == nil || *r.Stages[0].ExitCode != 3 {
		t.Errorf("failed run = %s, %+v", r.State, r.Stages[0])
	}
	// A second attempt resets what the first one left.
	if err := s.RecordSubmitted(ctx, "r", "train", "", "8"); err != nil {
		t.Fatal(err)
	}
	r, _ = s.GetRun(ctx, "r")
	if st := r.Stages[0]; st.JobID != "8" || st.Attempt != 2 || st.State != "PENDING" || st.ExitCode != nil || st.Reason != "" || r.State != RunPending {
		t.Errorf("resubmitted: run %s, stage %+v", r.State, st)
	}
}

// Slurm reuses job ids (after MaxJobId wraps, or on a rebuilt cluster): a
// new run must be able to record a job id an old run had.
func TestJobIDReused(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	for _, id := range []string{"old", "new"} {
		if err := s.CreateRun(ctx, Run{ID: id}, []string{"prep"}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordSubmitted(ctx, id, "prep", "c1", "3"); err != nil {
			t.Fatalf("run %s: %v", id, err)
		}
	}
	var run string
	if err := s.db.QueryRow(`SELECT run_id FROM jobs WHERE cluster = 'c1' AND job_id = '3'`).Scan(&run); err != nil || run != "new" {
		t.Errorf("job 3 belongs to %q, %v; want the new run", run, err)
	}
}

func TestGetRunPrefix(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	for _, id := range []string{"tiny-20260101-000000-abcd", "tiny-20260101-000000-abce", "other-20260102-000000-0001", "a", "ab"} {
		if err := s.CreateRun(ctx, Run{ID: id, Name: id}, []string{"prep"}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		id, want, wantErr string
	}{
		{id: "tiny-20260101-000000-abcd", want: "tiny-20260101-000000-abcd"},
		{id: "oth", want: "other-20260102-000000-0001"},
		{id: "tiny-20260101-000000-abce", want: "tiny-20260101-000000-abce"},
		// An exact id wins over the longer ids it prefixes.
		{id: "a", want: "a"},
		{id: "tiny-", wantErr: "run tiny-: ambiguous prefix (matches tiny-20260101-000000-abcd and tiny-20260101-000000-abce)"},
		{id: "nope", wantErr: "run nope: not found"},
		// LIKE wildcards are taken literally.
		{id: "t%", wantErr: "run t%: not found"},
		{id: "tiny_", wantErr: "run tiny_: not found"},
		{id: `tiny\`, wantErr: `run tiny\: not found`},
	}
	for _, tt := range tests {
		r, err := s.GetRun(ctx, tt.id)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("GetRun(%q) = %v, %v; want error %s", tt.id, r, err, tt.wantErr)
			}
			if strings.Contains(tt.wantErr, "not found") && !IsNotFound(err) {
				t.Errorf("GetRun(%q): IsNotFound(%v) = false", tt.id, err)
			}
			continue
		}
		if err != nil || r.ID != tt.want || len(r.Stages) != 1 {
			t.Errorf("GetRun(%q) = %+v, %v; want %s", tt.id, r, err, tt.want)
		}
	}
}

func TestListRuns(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	for _, id := range []string{"r1", "r2", "r3"} {
		if err := s.CreateRun(ctx, Run{ID: id}, []string{"prep", "train"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct created_at
	}
	all, err := s.ListRuns(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range all {
		got = append(got, r.ID)
		if len(r.Stages) != 2 {
			t.Errorf("%s has %d stages", r.ID, len(r.Stages))
		}
	}
	if want := []string{"r3", "r2", "r1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ListRuns = %v, want newest first %v", got, want)
	}
	two, err := s.ListRuns(ctx, 2)
	if err != nil || len(two) != 2 || two[0].ID != "r3" {
		t.Errorf("ListRuns(2) = %d runs, %v", len(two), err)
	}
}

func TestMarkCancelled(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.CreateRun(ctx, Run{ID: "r"}, []string{"prep", "train"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSubmitted(ctx, "r", "prep", "", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateJob(ctx, TrackedJob{RunID: "r", Stage: "prep", JobID: "1"}, slurm.Job{ID: "1", State: slurm.StateRunning}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkCancelled(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	r, _ := s.GetRun(ctx, "r")
	if r.State != RunCancelled || !r.Cancelled || !r.EndedAt.IsZero() {
		t.Errorf("cancelled run = %s cancelled=%v ended=%v; want CANCELLED, not ended while prep runs", r.State, r.Cancelled, r.EndedAt)
	}
	// scancel's result arrives: the run stays CANCELLED (not FAILED) and ends.
	if _, err := s.UpdateJob(ctx, TrackedJob{RunID: "r", Stage: "prep", JobID: "1"}, slurm.Job{ID: "1", State: slurm.StateCancelled}); err != nil {
		t.Fatal(err)
	}
	r, _ = s.GetRun(ctx, "r")
	if r.State != RunCancelled || r.EndedAt.IsZero() {
		t.Errorf("after the job ended: %s, ended %v", r.State, r.EndedAt)
	}
	if err := s.MarkCancelled(ctx, "nope"); !IsNotFound(err) {
		t.Errorf("MarkCancelled(unknown) = %v, want not found", err)
	}
}

func TestMetrics(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.CreateRun(ctx, Run{ID: "r"}, []string{"eval"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		stage, name string
		v           float64
	}{{"eval", "perplexity", 9.5}, {"eval", "accuracy", 0.7}, {"train", "gpu_util", 0.93}, {"eval", "perplexity", 8.25}} {
		if err := s.SetMetric(ctx, "r", m.stage, m.name, m.v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Metrics(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]float64{"eval": {"perplexity": 8.25, "accuracy": 0.7}, "train": {"gpu_util": 0.93}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Metrics = %v, want %v", got, want)
	}
	if err := s.SetMetric(ctx, "nope", "eval", "x", 1); err == nil {
		t.Error("SetMetric on an unknown run succeeded (foreign keys off?)")
	}
	if got, err := s.Metrics(ctx, "nope"); err != nil || len(got) != 0 {
		t.Errorf("Metrics(unknown) = %v, %v", got, err)
	}
}

func TestDeriveState(t *testing.T) {
	stages := func(states ...string) []Stage {
		out := make([]Stage, len(states))
		for i, s := range states {
			out[i] = Stage{Name: fmt.Sprint(i), State: s}
		}
		return out
	}
	tests := []struct {
		name      string
		cancelled bool
		stages    []Stage
		want      string
	}{
		{"no stages", false, nil, RunPending},
		{"nothing submitted", false, stages(StateNotSubmitted, StateNotSubmitted), RunPending},
		{"first pending", false, stages("PENDING", StateNotSubmitted), RunPending},
		{"all pending", false, stages("PENDING", "PENDING", "PENDING", "PENDING"), RunPending},
		{"requeued", false, stages("REQUEUED", "PENDING"), RunPending},
		{"running", false, stages("RUNNING", "PENDING", "PENDING", "PENDING"), RunRunning},
		{"completing", false, stages("COMPLETING", "PENDING"), RunRunning},
		{"suspended", false, stages("SUSPENDED", "PENDING"), RunRunning},
		{"one done, next pending", false, stages("COMPLETED", "PENDING", "PENDING", "PENDING"), RunRunning},
		{"one done, next not submitted", false, stages("COMPLETED", StateNotSubmitted), RunRunning},
		{"all completed", false, stages("COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED"), RunSucceeded},
		{"one failed", false, stages("COMPLETED", "FAILED", "PENDING", "PENDING"), RunFailed},
		{"failed then cancelled dependency", false, stages("COMPLETED", "FAILED", "CANCELLED", "CANCELLED"), RunFailed},
		{"dependency cancelled by slurm", false, stages("COMPLETED", "COMPLETED", "CANCELLED", "PENDING"), RunFailed},
		{"timeout", false, stages("TIMEOUT", "PENDING"), RunFailed},
		{"oom", false, stages("OUT_OF_MEMORY"), RunFailed},
		{"node fail", false, stages("COMPLETED", "NODE_FAIL"), RunFailed},
		{"user cancelled while running", true, stages("COMPLETED", "RUNNING", "PENDING"), RunCancelled},
		{"user cancelled, jobs cancelled", true, stages("COMPLETED", "CANCELLED", "CANCELLED"), RunCancelled},
		{"user cancelled after success", true, stages("COMPLETED", "COMPLETED"), RunCancelled},
	}
	for _, tt := range tests {
		if got := DeriveState(tt.cancelled, tt.stages); got != tt.want {
			t.Errorf("%s: DeriveState = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRunEnded(t *testing.T) {
	tests := []struct {
		states []string
		want   bool
	}{
		{[]string{"COMPLETED", "COMPLETED"}, true},
		{[]string{"COMPLETED", "FAILED", StateNotSubmitted}, true},
		{[]string{"COMPLETED", "RUNNING"}, false},
		{[]string{"PENDING"}, false},
		{[]string{"COMPLETING"}, false},
	}
	for _, tt := range tests {
		r := Run{}
		for _, s := range tt.states {
			r.Stages = append(r.Stages, Stage{State: s})
		}
		if got := r.Ended(); got != tt.want {
			t.Errorf("Ended(%v) = %v, want %v", tt.states, got, tt.want)
		}
	}
}

func TestSweepTasksAndDeriveState(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "st.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stages := []string{"prep", "train[0]", "train[1]", "eval[0]", "eval[1]", "select", "deploy"}
	if err := s.CreateRun(ctx, Run{ID: "sw", Name: "sw", PipelineFile: "p", RunDir: "/r", Transport: "local"}, stages); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSweepTasks(ctx, "sw", SweepRun{Metric: "perplexity", Goal: "min"}, []SweepTask{{Task: 0, Settings: `{"lr":0.1}`}, {Task: 1, Settings: `{"lr":0.2}`}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordArraySubmitted(ctx, "sw", stages[1:3], "", []string{"7_0", "7_1"}); err != nil {
		t.Fatal(err)
	}
	// One task failing leaves the run running: select decides.
	if _, err := s.UpdateJob(ctx, TrackedJob{RunID: "sw", Stage: "train[1]", JobID: "7_1"}, slurm.Job{ID: "7_1", State: slurm.StateFailed, ExitCode: 1}); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetRun(ctx, "sw")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != RunRunning || r.Stages[2].JobID != "7_1" || r.Stages[2].State != "FAILED" || r.Stages[2].Attempt != 1 {
		t.Errorf("run %s, train[1] %+v", r.State, r.Stages[2])
	}
	m, yes := 3.5, true
	if err := s.SaveSweepSelection(ctx, "sw", []SweepTask{{Task: 0, Metric: &m, Passed: &yes, Winner: true}}); err != nil {
		t.Fatal(err)
	}
	ts, err := s.SweepTasks(ctx, "sw")
	if err != nil || len(ts) != 2 || !ts[0].Winner || *ts[0].Metric != 3.5 || ts[1].Passed != nil || ts[1].Settings != `{"lr":0.2}` {
		t.Errorf("%+v %v", ts, err)
	}
	if sr, err := s.GetSweepRun(ctx, "sw"); err != nil || *sr != (SweepRun{"perplexity", "min"}) {
		t.Errorf("sweep run %+v %v", sr, err)
	}
	if sr, err := s.GetSweepRun(ctx, "other"); sr != nil || err != nil {
		t.Errorf("not a sweep: %+v %v", sr, err)
	}
}
