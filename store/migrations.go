package store

// migrations are applied in order, forward only; a database records how
// many it has had in PRAGMA user_version. Never edit a released migration:
// add a new one.
var migrations = []string{
	// 1: runs, stages, jobs and state transitions.
	`CREATE TABLE runs (
		id            TEXT PRIMARY KEY,
		name          TEXT NOT NULL,
		pipeline_file TEXT NOT NULL,
		run_dir       TEXT NOT NULL,
		transport     TEXT NOT NULL,
		cluster       TEXT NOT NULL DEFAULT '',
		state         TEXT NOT NULL,
		cancelled     INTEGER NOT NULL DEFAULT 0,
		created_at    INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL,
		ended_at      INTEGER
	);
	CREATE INDEX runs_created ON runs(created_at);
	CREATE TABLE stages (
		run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		name       TEXT NOT NULL,
		position   INTEGER NOT NULL,
		job_id     TEXT NOT NULL DEFAULT '',
		attempt    INTEGER NOT NULL DEFAULT 0,
		state      TEXT NOT NULL,
		reason     TEXT NOT NULL DEFAULT '',
		exit_code  INTEGER,
		signal     INTEGER NOT NULL DEFAULT 0,
		restarts   INTEGER NOT NULL DEFAULT 0,
		nodes      TEXT NOT NULL DEFAULT '',
		elapsed_s  INTEGER NOT NULL DEFAULT 0,
		started_at INTEGER,
		ended_at   INTEGER,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (run_id, name)
	);
	CREATE TABLE jobs (
		job_id       TEXT NOT NULL,
		cluster      TEXT NOT NULL DEFAULT '',
		run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage        TEXT NOT NULL,
		attempt      INTEGER NOT NULL,
		state        TEXT NOT NULL,
		submitted_at INTEGER NOT NULL,
		PRIMARY KEY (cluster, job_id)
	);
	CREATE INDEX jobs_run ON jobs(run_id, stage);
	CREATE TABLE transitions (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		run_id     TEXT NOT NULL,
		stage      TEXT NOT NULL,
		job_id     TEXT NOT NULL,
		from_state TEXT NOT NULL,
		to_state   TEXT NOT NULL,
		reason     TEXT NOT NULL DEFAULT '',
		at         INTEGER NOT NULL
	);
	CREATE INDEX transitions_run ON transitions(run_id, at);`,
	// 2: metrics a run reports (eval metrics, GPU summaries).
	`CREATE TABLE metrics (
		run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage  TEXT NOT NULL,
		name   TEXT NOT NULL,
		value  REAL NOT NULL,
		at     INTEGER NOT NULL,
		PRIMARY KEY (run_id, stage, name)
	);`,
	// 3: crash safety and cron: how to reach a run's cluster again, the
	// inputs' fingerprint, who is submitting a run, and per-stage submit
	// intents recorded before each sbatch.
	`ALTER TABLE runs ADD COLUMN cluster_config TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN submission TEXT NOT NULL DEFAULT 'complete';
	ALTER TABLE runs ADD COLUMN submitter TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN reason TEXT NOT NULL DEFAULT '';
	ALTER TABLE stages ADD COLUMN intent_at INTEGER;
	CREATE INDEX runs_fingerprint ON runs(fingerprint);`,
}
