// Package chain submits a pipeline as a chain of Slurm jobs (prep -> train ->
// eval -> deploy, each after the previous with afterok), keeps the store in
// step with what Slurm says about them, and cancels them.
package chain

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// Service ties a cluster, its filesystem, the templates and the store.
type Service struct {
	Client    slurm.Client
	FS        slurm.FileSystem
	Store     *store.Store
	Templates *templates.Set
	Log       *slog.Logger
	// Transport and Cluster are recorded with every run.
	Transport, Cluster string
	// Slurmtune is the slurmtune binary as compute nodes see it.
	Slurmtune string
	// Now is the clock (tests may replace it).
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

var idUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// NewRunID makes a run id: the pipeline name reduced to [a-z0-9-], the UTC
// time and 4 random hex digits, e.g. tiny-20261126-231500-3fa9.
func NewRunID(name string, now time.Time) string {
	n := strings.Trim(idUnsafe.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(n) > 24 {
		n = strings.Trim(n[:24], "-")
	}
	if n == "" {
		n = "run"
	}
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n + "-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Submitted is the result of Submit.
type Submitted struct {
	Run  *store.Run
	Jobs map[string]string // stage -> Slurm job id
}

// Prepared is a rendered run, not yet written anywhere.
type Prepared struct {
	ID      string
	Dir     string
	Scripts []templates.Script
	files   map[string][]byte
}

// Prepare renders every stage of p for a new run. Nothing is written.
func (s *Service) Prepare(p *jobs.Pipeline) (*Prepared, error) {
	id := NewRunID(p.Name, s.now())
	dir := filepath.Join(p.Workdir, id)
	scripts, err := s.Templates.Render(p, templates.Run{ID: id, Dir: dir, Slurmtune: s.Slurmtune})
	if err != nil {
		return nil, err
	}
	snap, err := p.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("snapshot pipeline: %w", err)
	}
	hp, err := templates.Hyperparameters(p)
	if err != nil {
		return nil, err
	}
	l := templates.LayoutOf(dir)
	files := map[string][]byte{l.Pipeline: snap, l.Hparams: hp}
	for _, sc := range scripts {
		files[filepath.Join(dir, sc.Stage+".sbatch")] = sc.Body
	}
	return &Prepared{ID: id, Dir: dir, Scripts: scripts, files: files}, nil
}

// Submit renders p, writes the run directory, records the run and submits
// its stages as one dependency chain. If a submission fails part-way, the
// jobs already submitted are cancelled and the error says so.
func (s *Service) Submit(ctx context.Context, p *jobs.Pipeline) (*Submitted, error) {
	prep, err := s.Prepare(p)
	if err != nil {
		return nil, err
	}
	l := templates.LayoutOf(prep.Dir)
	for _, d := range []string{l.Dir, l.Logs} {
		if err := s.FS.MkdirAll(ctx, d, 0o755); err != nil {
			return nil, fmt.Errorf("create run directory: %w", err)
		}
	}
	for path, data := range prep.files {
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(path, ".sbatch") {
			mode = fs.FileMode(0o755)
		}
		if err := s.FS.WriteFile(ctx, path, data, mode); err != nil {
			return nil, fmt.Errorf("write run directory: %w", err)
		}
	}
	run := store.Run{ID: prep.ID, Name: p.Name, PipelineFile: p.File, RunDir: prep.Dir, Transport: s.Transport, Cluster: s.Cluster}
	if err := s.Store.CreateRun(ctx, run, p.Stages()); err != nil {
		return nil, err
	}
	out := &Submitted{Jobs: map[string]string{}}
	var prev []string
	var submitted []string
	for _, sc := range prep.Scripts {
		req := slurm.SubmitRequest{
			Script:     sc.Body,
			ScriptPath: filepath.Join(prep.Dir, sc.Stage+".sbatch"),
			WorkDir:    prep.Dir,
			AfterOK:    prev,
			Comment:    templates.Comment(prep.ID, sc.Stage),
			ExtraArgs:  []string{"--output=" + sc.Log},
		}
		id, err := s.Client.Submit(ctx, req)
		if err != nil {
			err = fmt.Errorf("submit %s stage: %w", sc.Stage, err)
			if len(submitted) > 0 {
				// Leave nothing half-done: the chain cannot finish without this stage.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				cerr := s.Client.Cancel(cctx, submitted)
				cancel()
				if cerr != nil {
					return nil, fmt.Errorf("%w; cancelling the jobs already submitted (%s) also failed: %v", err, strings.Join(submitted, ","), cerr)
				}
				s.Log.Warn("cancelled the jobs already submitted for this run", "run", prep.ID, "jobs", strings.Join(submitted, ","))
			}
			return nil, err
		}
		if err := s.Store.RecordSubmitted(ctx, prep.ID, sc.Stage, s.Cluster, id); err != nil {
			return nil, err
		}
		s.Log.Info("submitted", "run", prep.ID, "stage", sc.Stage, "job", id)
		out.Jobs[sc.Stage] = id
		submitted = append(submitted, id)
		prev = []string{id}
	}
	r, err := s.Store.GetRun(ctx, prep.ID)
	if err != nil {
		return nil, err
	}
	out.Run = r
	return out, nil
}

// SyncResult says what one refresh did.
type SyncResult struct {
	Tracked int // live jobs asked about
	Changed int // stages whose record changed
	Missing int // jobs Slurm no longer knows
}

// Sync asks Slurm about every tracked live job at once and records what
// changed.
func (s *Service) Sync(ctx context.Context) (SyncResult, error) {
	live, err := s.Store.LiveJobs(ctx)
	if err != nil {
		return SyncResult{}, err
	}
	res := SyncResult{Tracked: len(live)}
	if len(live) == 0 {
		return res, nil
	}
	ids := make([]string, len(live))
	for i, t := range live {
		ids[i] = t.JobID
	}
	got, err := s.Client.Jobs(ctx, dedupe(ids))
	if err != nil {
		return res, fmt.Errorf("sync: %w", err)
	}
	byID := make(map[string]slurm.Job, len(got))
	for _, j := range got {
		byID[j.ID] = j
	}
	for _, t := range live {
		j, ok := byID[t.JobID]
		if !ok {
			res.Missing++
			s.Log.Warn("job no longer known to Slurm (purged from the controller and not in accounting)", "run", t.RunID, "stage", t.Stage, "job", t.JobID)
			continue
		}
		j.Reason = slurm.EffectiveReason(j)
		changed, err := s.Store.UpdateJob(ctx, t, j)
		if err != nil {
			return res, err
		}
		if changed {
			res.Changed++
			s.Log.Info("stage", "run", t.RunID, "stage", t.Stage, "job", t.JobID, "state", j.State, "reason", j.Reason)
		}
	}
	return res, nil
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Cancel cancels every job of a run that has not ended and marks the run
// cancelled.
func (s *Service) Cancel(ctx context.Context, runID string) (*store.Run, error) {
	r, err := s.Store.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, st := range r.Stages {
		if st.JobID != "" && !st.Terminal() {
			ids = append(ids, st.JobID)
		}
	}
	if err := s.Client.Cancel(ctx, ids); err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", r.ID, err)
	}
	if err := s.Store.MarkCancelled(ctx, r.ID); err != nil {
		return nil, err
	}
	if _, err := s.Sync(ctx); err != nil {
		s.Log.Warn("sync after cancel", "err", err)
	}
	return s.Store.GetRun(ctx, r.ID)
}

// Follow syncs every interval until the run has ended, calling progress
// after each refresh. Transient cluster errors are retried.
func (s *Service) Follow(ctx context.Context, runID string, interval time.Duration, progress func(*store.Run)) (*store.Run, error) {
	backoff := interval
	for {
		_, err := s.Sync(ctx)
		switch {
		case err == nil:
			backoff = interval
		case errors.Is(err, slurm.ErrUnavailable) && ctx.Err() == nil:
			s.Log.Warn("cluster unavailable, retrying", "err", err, "in", backoff)
			backoff = min(backoff*2, time.Minute)
		default:
			return nil, err
		}
		r, err := s.Store.GetRun(ctx, runID)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(r)
		}
		if r.Ended() {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(backoff):
		}
	}
}
