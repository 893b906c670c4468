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
	// 4: deployments: every traffic switch of a deployment (imported from
	// the history file the deploy stage writes next to the router state,
	// idempotently by event id) and samples of the router's per-backend
	// stats for performance drift.
	`CREATE TABLE deploy_events (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL,
		at         INTEGER NOT NULL,
		action     TEXT NOT NULL,
		reason     TEXT NOT NULL DEFAULT '',
		strategy   TEXT NOT NULL DEFAULT '',
		from_run   TEXT NOT NULL DEFAULT '',
		from_model TEXT NOT NULL DEFAULT '',
		to_run     TEXT NOT NULL DEFAULT '',
		to_model   TEXT NOT NULL DEFAULT '',
		detail     TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX deploy_events_name ON deploy_events(name, at);
	CREATE TABLE deploy_samples (
		name        TEXT NOT NULL,
		backend     TEXT NOT NULL,
		run_id      TEXT NOT NULL,
		at          INTEGER NOT NULL,
		requests    INTEGER NOT NULL,
		errors      INTEGER NOT NULL,
		p95_ns      INTEGER NOT NULL,
		healthy     INTEGER NOT NULL,
		PRIMARY KEY (name, backend, at)
	);
	CREATE INDEX deploy_samples_run ON deploy_samples(name, run_id, at);`,
	// GPU telemetry (store/gpu.go): how far each run's samples files were
	// read, per-stage per-GPU running aggregates, NVML status lines, the
	// runs whose files were read to the end, GPU allocations from
	// accounting, and how `slurmtune sbatch` submitted a job.
	`CREATE TABLE gpu_files (
		run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		path       TEXT NOT NULL,
		read_to    INTEGER NOT NULL,
		bad_lines  INTEGER NOT NULL DEFAULT 0,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (run_id, path)
	);
	CREATE TABLE gpu_stats (
		run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage      TEXT NOT NULL,
		host       TEXT NOT NULL,
		gpu        INTEGER NOT NULL,
		uuid       TEXT NOT NULL,
		mig        TEXT NOT NULL,
		agg        TEXT NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (run_id, stage, host, gpu, uuid, mig)
	);
	CREATE TABLE gpu_nvml_status (
		run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage    TEXT NOT NULL,
		host     TEXT NOT NULL,
		nvml     TEXT NOT NULL,
		error    TEXT NOT NULL DEFAULT '',
		first_at INTEGER NOT NULL,
		last_at  INTEGER NOT NULL,
		PRIMARY KEY (run_id, stage, host, nvml)
	);
	CREATE TABLE gpu_done (
		run_id   TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		ended_at INTEGER NOT NULL
	);
	CREATE TABLE gpu_alloc (
		run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage      TEXT NOT NULL,
		job_id     TEXT NOT NULL,
		gpus       INTEGER NOT NULL,
		elapsed_s  INTEGER NOT NULL,
		source     TEXT NOT NULL,
		final      INTEGER NOT NULL DEFAULT 0,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (run_id, stage, job_id)
	);
	CREATE TABLE sbatch_jobs (
		run_id          TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		script          TEXT NOT NULL,
		args            TEXT NOT NULL,
		options         TEXT NOT NULL,
		output          TEXT NOT NULL,
		output_resolved TEXT NOT NULL DEFAULT ''
	);`,
	// Webhook notifications: each run's notify section, and an outbox of
	// events (one row per event, ever: the key deduplicates) with their
	// delivery attempts.
	`CREATE TABLE run_notify (
		run_id     TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		config     TEXT NOT NULL,
		scanned_at INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE notifications (
		key          TEXT PRIMARY KEY,
		run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		event        TEXT NOT NULL,
		url          TEXT NOT NULL,
		payload      TEXT NOT NULL,
		attempts     INTEGER NOT NULL DEFAULT 0,
		next_at      INTEGER NOT NULL,
		delivered_at INTEGER,
		last_error   TEXT NOT NULL DEFAULT '',
		created_at   INTEGER NOT NULL
	);
	CREATE INDEX notifications_due ON notifications(next_at) WHERE delivered_at IS NULL;`,
	// 7: training curves and eval results (store/metrics.go): every point
	// of every metric a stage's payload appended to its metrics file (keyed
	// by its series and the byte offset of its line, so reading a line twice
	// stores it once), with the segment (Slurm job, retry attempt and
	// restart) it came from; how
	// far each metrics file was read and which job's segment it was in; the
	// run's hyperparameters; the eval report's gates; and every GPU sample's
	// utilization, memory and power (the dashboard's GPU curves).
	`CREATE TABLE metric_series (
		id     INTEGER PRIMARY KEY,
		run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage  TEXT NOT NULL,
		name   TEXT NOT NULL,
		UNIQUE (run_id, stage, name)
	);
	CREATE TABLE metric_segments (
		id      INTEGER PRIMARY KEY,
		run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage   TEXT NOT NULL,
		job_id  TEXT NOT NULL,
		attempt INTEGER NOT NULL,
		restart INTEGER NOT NULL,
		UNIQUE (run_id, stage, job_id, attempt, restart)
	);
	CREATE TABLE metric_points (
		series  INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
		off     INTEGER NOT NULL,
		step    INTEGER,
		value   REAL NOT NULL,
		at      INTEGER NOT NULL,
		segment INTEGER NOT NULL,
		PRIMARY KEY (series, off)
	) WITHOUT ROWID;
	CREATE TABLE metric_files (
		run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		path       TEXT NOT NULL,
		stage      TEXT NOT NULL,
		read_to    INTEGER NOT NULL,
		bad_lines  INTEGER NOT NULL DEFAULT 0,
		job_id     TEXT NOT NULL DEFAULT '',
		restart    INTEGER NOT NULL DEFAULT 0,
		done_at    INTEGER,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (run_id, path)
	);
	CREATE TABLE run_params (
		run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		params TEXT NOT NULL
	);
	CREATE TABLE eval_reports (
		run_id   TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		job_id   TEXT NOT NULL,
		passed   INTEGER NOT NULL,
		read_at  INTEGER NOT NULL
	);
	CREATE TABLE eval_gates (
		run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		position  INTEGER NOT NULL,
		metric    TEXT NOT NULL,
		op        TEXT NOT NULL,
		threshold REAL NOT NULL,
		value     REAL,
		passed    INTEGER NOT NULL,
		reason    TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (run_id, position)
	);
	CREATE TABLE gpu_points (
		run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage    TEXT NOT NULL,
		host     TEXT NOT NULL,
		gpu      INTEGER NOT NULL,
		uuid     TEXT NOT NULL,
		mig      TEXT NOT NULL,
		at       INTEGER NOT NULL,
		util     REAL,
		mem_used INTEGER,
		power_w  REAL,
		PRIMARY KEY (run_id, host, gpu, uuid, mig, at)
	) WITHOUT ROWID;`,
	// The line a failed stage's log ends with (the payload's own error),
	// for status.
	`ALTER TABLE stages ADD COLUMN error TEXT NOT NULL DEFAULT '';`,
	// A sweep's tasks: the settings each one runs with, and once the
	// select job has run, its metric, gate verdict and the winner. Each
	// task's train and eval are stages of their own (train[K], eval[K]).
	`CREATE TABLE sweep_runs (
		run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		metric TEXT NOT NULL,
		goal   TEXT NOT NULL
	);
	CREATE TABLE sweep_tasks (
		run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		task     INTEGER NOT NULL,
		settings TEXT NOT NULL,
		metric   REAL,
		passed   INTEGER,
		reason   TEXT NOT NULL DEFAULT '',
		winner   INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (run_id, task)
	);`,
}
