package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// GPU telemetry of runs, as package nvml computes it: how far each samples
// file was read, per stage and GPU an aggregate (stored as the JSON nvml
// makes of it), what hosts said about NVML, every sample's utilization,
// memory and power (the dashboard's curves), and the GPUs each job was
// allocated. The offsets and what they produced are saved in one
// transaction, dropped when the offsets moved on meanwhile.

// GPUKey names one GPU (or MIG device) within one stage of a run.
type GPUKey struct {
	Stage, Host string
	GPU         int
	UUID, MIG   string
}

// GPUPoint is one GPU sample's utilization, memory and power over time.
type GPUPoint struct {
	GPUKey
	Time    time.Time `json:"time"`
	UtilPct *float64  `json:"util_pct"`
	MemUsed *uint64   `json:"mem_used_bytes"`
	PowerW  *float64  `json:"power_w"`
}

// GPUStat is one stage's aggregate of one GPU, opaque to the store.
type GPUStat struct {
	GPUKey
	Agg []byte
}

// GPUStatus is what a host's status lines said within one stage.
type GPUStatus struct {
	Stage, Host, NVML, Error string
	First, Last              time.Time
}

// GPUTelemetry is what the database holds of a run's GPU telemetry.
type GPUTelemetry struct {
	// Offsets is how far each samples file has been read.
	Offsets map[string]int64
	// DoneEndedAt is the run's end time (ms) when its files were last read
	// to the end after it ended; 0 when not.
	DoneEndedAt int64
	Stats       []GPUStat
	Statuses    []GPUStatus
}

// GPUTelemetryChange is what one load of a run's samples files read.
type GPUTelemetryChange struct {
	// Offsets are the offsets the load started from; Next how far it read
	// each file, with Bad lines it could not parse.
	Offsets  map[string]int64
	Next     map[string]int64
	Bad      map[string]int
	Stats    []GPUStat
	Statuses []GPUStatus
	Points   []GPUPoint
}

// GPUTelemetry loads a run's GPU telemetry.
func (s *Store) GPUTelemetry(ctx context.Context, runID string) (*GPUTelemetry, error) {
	t := &GPUTelemetry{}
	if err := t.load(ctx, s.db, runID); err != nil {
		return nil, fmt.Errorf("GPU telemetry of %s: %w", runID, err)
	}
	return t, nil
}

type queryRower interface {
	querier
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// gpuOffsets reads how far each samples file of a run has been loaded.
func gpuOffsets(ctx context.Context, q querier, runID string) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT path, read_to FROM gpu_files WHERE run_id = ?`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var p string
		var o int64
		if err := rows.Scan(&p, &o); err != nil {
			return nil, err
		}
		out[p] = o
	}
	return out, rows.Err()
}

func (g *GPUTelemetry) load(ctx context.Context, q queryRower, runID string) error {
	offsets, err := gpuOffsets(ctx, q, runID)
	if err != nil {
		return err
	}
	g.Offsets = offsets
	rows, err := q.QueryContext(ctx, `SELECT stage, host, gpu, uuid, mig, agg FROM gpu_stats WHERE run_id = ?`, runID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k GPUKey
		var blob string
		if err := rows.Scan(&k.Stage, &k.Host, &k.GPU, &k.UUID, &k.MIG, &blob); err != nil {
			rows.Close()
			return err
		}
		g.Stats = append(g.Stats, GPUStat{GPUKey: k, Agg: []byte(blob)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = q.QueryContext(ctx, `SELECT stage, host, nvml, error, first_at, last_at FROM gpu_nvml_status WHERE run_id = ?`, runID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var st GPUStatus
		var first, last int64
		if err := rows.Scan(&st.Stage, &st.Host, &st.NVML, &st.Error, &first, &last); err != nil {
			rows.Close()
			return err
		}
		st.First, st.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
		g.Statuses = append(g.Statuses, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	err = q.QueryRowContext(ctx, `SELECT ended_at FROM gpu_done WHERE run_id = ?`, runID).Scan(&g.DoneEndedAt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return nil
}

// SaveGPUTelemetry saves what one load read, in one transaction, unless
// another process has moved any of the run's file offsets since c.Offsets
// (then it read the same lines: nothing is saved and saved is false).
func (s *Store) SaveGPUTelemetry(ctx context.Context, runID string, c GPUTelemetryChange) (saved bool, err error) {
	now := ms(time.Now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := gpuOffsets(ctx, tx, runID)
		if err != nil {
			return err
		}
		for p, o := range cur {
			if c.Offsets[p] != o {
				return nil // someone else loaded these lines
			}
		}
		for p := range c.Offsets {
			if _, ok := cur[p]; !ok {
				return nil
			}
		}
		for p, o := range c.Next {
			if _, err := tx.ExecContext(ctx, `INSERT INTO gpu_files (run_id, path, read_to, bad_lines, updated_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (run_id, path) DO UPDATE SET read_to = excluded.read_to, bad_lines = bad_lines + excluded.bad_lines,
				updated_at = excluded.updated_at`, runID, p, o, c.Bad[p], now); err != nil {
				return err
			}
		}
		for _, st := range c.Stats {
			k := st.GPUKey
			if _, err := tx.ExecContext(ctx, `INSERT INTO gpu_stats (run_id, stage, host, gpu, uuid, mig, agg, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (run_id, stage, host, gpu, uuid, mig) DO UPDATE SET agg = excluded.agg, updated_at = excluded.updated_at`,
				runID, k.Stage, k.Host, k.GPU, k.UUID, k.MIG, string(st.Agg), now); err != nil {
				return err
			}
		}
		if err := insertGPUPoints(ctx, tx, runID, c.Points); err != nil {
			return err
		}
		for _, st := range c.Statuses {
			if _, err := tx.ExecContext(ctx, `INSERT INTO gpu_nvml_status (run_id, stage, host, nvml, error, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (run_id, stage, host, nvml) DO UPDATE SET error = excluded.error, first_at = excluded.first_at, last_at = excluded.last_at`,
				runID, st.Stage, st.Host, st.NVML, st.Error, ms(st.First), ms(st.Last)); err != nil {
				return err
			}
		}
		saved = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save GPU telemetry of %s: %w", runID, err)
	}
	return saved, nil
}

func insertGPUPoints(ctx context.Context, tx *sql.Tx, runID string, pts []GPUPoint) error {
	if len(pts) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO gpu_points (run_id, stage, host, gpu, uuid, mig, at, util, mem_used, power_w)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, p := range pts {
		var mem sql.NullInt64
		if p.MemUsed != nil && *p.MemUsed <= math.MaxInt64 {
			mem = sql.NullInt64{Int64: int64(*p.MemUsed), Valid: true}
		}
		if _, err := stmt.ExecContext(ctx, runID, p.Stage, p.Host, p.GPU, p.UUID, p.MIG, ms(p.Time), nullFloat(p.UtilPct), mem, nullFloat(p.PowerW)); err != nil {
			return err
		}
	}
	return nil
}

func nullFloat(v *float64) sql.NullFloat64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return sql.NullFloat64{}
	}
	return sql.NullFloat64{Float64: *v, Valid: true}
}

// GPUPoints lists a run's GPU samples, by GPU and time.
func (s *Store) GPUPoints(ctx context.Context, runID string) ([]GPUPoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stage, host, gpu, uuid, mig, at, util, mem_used, power_w FROM gpu_points
		WHERE run_id = ? ORDER BY host, gpu, uuid, mig, at`, runID)
	if err != nil {
		return nil, fmt.Errorf("GPU samples of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []GPUPoint
	for rows.Next() {
		var p GPUPoint
		var at int64
		var util, power sql.NullFloat64
		var mem sql.NullInt64
		if err := rows.Scan(&p.Stage, &p.Host, &p.GPU, &p.UUID, &p.MIG, &at, &util, &mem, &power); err != nil {
			return nil, err
		}
		p.Time = time.UnixMilli(at).UTC()
		if util.Valid {
			p.UtilPct = &util.Float64
		}
		if power.Valid {
			p.PowerW = &power.Float64
		}
		if mem.Valid {
			m := uint64(mem.Int64)
			p.MemUsed = &m
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// MarkGPUDone records that a run's samples files were read to the end after
// the run ended at endedAt: they are not read again unless the run ends
// again at another time (a retry).
func (s *Store) MarkGPUDone(ctx context.Context, runID string, endedAt time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO gpu_done (run_id, ended_at) VALUES (?, ?)
			ON CONFLICT (run_id) DO UPDATE SET ended_at = excluded.ended_at`, runID, ms(endedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("mark GPU telemetry of %s read: %w", runID, err)
	}
	return nil
}

// GPUAlloc is the GPUs one job was allocated and for how long.
type GPUAlloc struct {
	RunID, Stage, JobID string
	GPUs                int
	Elapsed             time.Duration
	// Source is "sacct" (Slurm accounting's AllocTRES gres/gpu and
	// ElapsedRaw) or "pipeline" (nodes x gpus_per_node, elapsed as tracked).
	Source string
	// Final is set once the job has ended: the figures do not change.
	Final bool
}

// GPUHours is GPUs x elapsed, in hours.
func (a GPUAlloc) GPUHours() float64 { return float64(a.GPUs) * a.Elapsed.Hours() }

// SetGPUAlloc records a job's GPU allocation.
func (s *Store) SetGPUAlloc(ctx context.Context, a GPUAlloc) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO gpu_alloc (run_id, stage, job_id, gpus, elapsed_s, source, final, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, stage, job_id) DO UPDATE SET gpus = excluded.gpus, elapsed_s = excluded.elapsed_s, source = excluded.source,
			final = excluded.final, updated_at = excluded.updated_at`,
			a.RunID, a.Stage, a.JobID, a.GPUs, int64(a.Elapsed/time.Second), a.Source, a.Final, ms(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("record GPU allocation of job %s: %w", a.JobID, err)
	}
	return nil
}

// GPUAllocs lists the recorded GPU allocations of a run's jobs.
func (s *Store) GPUAllocs(ctx context.Context, runID string) ([]GPUAlloc, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stage, job_id, gpus, elapsed_s, source, final FROM gpu_alloc WHERE run_id = ? ORDER BY stage, job_id`, runID)
	if err != nil {
		return nil, fmt.Errorf("GPU allocations of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []GPUAlloc
	for rows.Next() {
		a := GPUAlloc{RunID: runID}
		var el int64
		if err := rows.Scan(&a.Stage, &a.JobID, &a.GPUs, &el, &a.Source, &a.Final); err != nil {
			return nil, err
		}
		a.Elapsed = time.Duration(el) * time.Second
		out = append(out, a)
	}
	return out, rows.Err()
}

// JobRecord is one Slurm job submitted for a stage (every attempt).
type JobRecord struct {
	JobID, Cluster, Stage string
	Attempt               int
	State                 string
	SubmittedAt           time.Time
}

// RunJobs lists every job submitted for a run, oldest first.
func (s *Store) RunJobs(ctx context.Context, runID string) ([]JobRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT job_id, cluster, stage, attempt, state, submitted_at FROM jobs WHERE run_id = ? ORDER BY submitted_at, stage`, runID)
	if err != nil {
		return nil, fmt.Errorf("jobs of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []JobRecord
	for rows.Next() {
		var j JobRecord
		var at int64
		if err := rows.Scan(&j.JobID, &j.Cluster, &j.Stage, &j.Attempt, &j.State, &at); err != nil {
			return nil, err
		}
		j.SubmittedAt = time.UnixMilli(at)
		out = append(out, j)
	}
	return out, rows.Err()
}

// RunOfJob finds the run and stage a Slurm job id was submitted for (the
// newest submission when the id was reused). It returns an error wrapping
// ErrNotFound when no run has it.
func (s *Store) RunOfJob(ctx context.Context, jobID string) (runID, stage string, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT run_id, stage FROM jobs WHERE job_id = ? ORDER BY submitted_at DESC LIMIT 1`, jobID).Scan(&runID, &stage)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("job %s: %w", jobID, err)
	}
	return runID, stage, nil
}

// RunOrJob finds a run by id (or unique prefix) or by the Slurm job
// id of one of its stages; stage is set in the second case. An all-digit
// argument is taken for a job id first.
func (s *Store) RunOrJob(ctx context.Context, arg string) (r *Run, stage string, err error) {
	if isJobIDArg(arg) {
		runID, stg, jerr := s.RunOfJob(ctx, arg)
		if jerr == nil {
			r, err = s.GetRun(ctx, runID)
			return r, stg, err
		}
		if !IsNotFound(jerr) {
			return nil, "", jerr
		}
	}
	r, err = s.GetRun(ctx, arg)
	if err != nil && IsNotFound(err) && isJobIDArg(arg) {
		return nil, "", fmt.Errorf("no run and no tracked job %s (only jobs submitted with `slurmtune submit` or `slurmtune sbatch` are tracked): %w", arg, ErrNotFound)
	}
	return r, "", err
}

func isJobIDArg(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// SbatchJob is how a job submitted with `slurmtune sbatch` was submitted.
type SbatchJob struct {
	RunID string
	// Script is the user's script (a copy of it lives in the run directory);
	// Args are its arguments and Options the sbatch options given.
	Script  string
	Args    []string
	Options []string
	// Output is the job's output path as sbatch was told it (the user's
	// --output, or the run directory's log).
	Output string
	// OutputResolved is Output with the job id (and name, user) filled in;
	// empty when it holds patterns known only on the node.
	OutputResolved string
}

// SetSbatchJob records how a job was submitted.
func (s *Store) SetSbatchJob(ctx context.Context, j SbatchJob) error {
	args, _ := json.Marshal(nonNil(j.Args))
	opts, _ := json.Marshal(nonNil(j.Options))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sbatch_jobs (run_id, script, args, options, output, output_resolved) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id) DO UPDATE SET script = excluded.script, args = excluded.args, options = excluded.options,
			output = excluded.output, output_resolved = excluded.output_resolved`,
			j.RunID, j.Script, string(args), string(opts), j.Output, j.OutputResolved)
		return err
	})
	if err != nil {
		return fmt.Errorf("record sbatch job of %s: %w", j.RunID, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetSbatchJob returns how a run's job was submitted with `slurmtune
// sbatch`; an error wrapping ErrNotFound when it was not.
func (s *Store) GetSbatchJob(ctx context.Context, runID string) (*SbatchJob, error) {
	j := &SbatchJob{RunID: runID}
	var args, opts string
	err := s.db.QueryRowContext(ctx, `SELECT script, args, options, output, output_resolved FROM sbatch_jobs WHERE run_id = ?`, runID).
		Scan(&j.Script, &args, &opts, &j.Output, &j.OutputResolved)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sbatch job of %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sbatch job of %s: %w", runID, err)
	}
	if err := json.Unmarshal([]byte(args), &j.Args); err != nil {
		return nil, fmt.Errorf("sbatch job of %s: %w", runID, err)
	}
	if err := json.Unmarshal([]byte(opts), &j.Options); err != nil {
		return nil, fmt.Errorf("sbatch job of %s: %w", runID, err)
	}
	return j, nil
}

// DeleteUnsubmittedRun removes a run none of whose stages ever got a job
// (its sbatch was refused): there is nothing in Slurm to track.
func (s *Store) DeleteUnsubmittedRun(ctx context.Context, runID string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE run_id = ?`, runID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("it has %d job(s)", n)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM transitions WHERE run_id = ?`, runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE id = ?`, runID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete unsubmitted run %s: %w", runID, err)
	}
	return nil
}
