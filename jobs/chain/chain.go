// Package chain submits a pipeline as a chain of Slurm jobs (prep -> train ->
// eval -> deploy, each after the previous with afterok), keeps the store in
// step with what Slurm says about them (one refresh across every cluster
// the runs were submitted to), follows a run and its logs, and cancels
// them; it also renders a run's scripts to a directory and works out the
// slurmtune binary the compute nodes run. The one-stage runs of `slurmtune
// sbatch` are submitted and tracked the same way (sbatch.go); every job goes
// through SubmitStage.
package chain

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// Service ties a cluster, its filesystem, the templates and the store.
type Service struct {
	Client slurm.Client
	// Inspector answers questions about the cluster (the partition's
	// time limit for train.chain_time_limit).
	Inspector PartitionLister
	FS        slurm.FileSystem
	Store     *store.Store
	Templates *templates.Set
	Log       *slog.Logger
	// Transport, Cluster and ClusterConfig (JSON of the pipeline's cluster
	// section) are recorded with every run.
	Transport, Cluster, ClusterConfig string
	// Slurmtune is the slurmtune binary as compute nodes see it.
	Slurmtune string
	// Now is the clock (tests may replace it).
	Now func() time.Time
	// LookupEnv reads the environment.secrets given by {env: VAR};
	// os.LookupEnv when nil.
	LookupEnv func(string) (string, bool)
}

// secretEnv returns the values of p's environment.secrets given by
// {env: VAR}. They go to Slurm with the job's environment, never into the
// run directory.
func (s *Service) secretEnv(p *jobs.Pipeline) (map[string]string, error) {
	lookup := s.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var out map[string]string
	names := make([]string, 0, len(p.Environment.Secrets))
	for name := range p.Environment.Secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sec := p.Environment.Secrets[name]
		if sec.Env == "" {
			continue
		}
		v, ok := lookup(sec.Env)
		if !ok || v == "" {
			return nil, fmt.Errorf("environment.secrets.%s: $%s is not set in slurmtune's environment", name, sec.Env)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out, nil
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
	// Skipped is the existing run with the same inputs when an IfChanged
	// submission was skipped.
	Skipped *store.Run
}

// Prepared is a rendered run, not yet written anywhere.
type Prepared struct {
	ID      string
	Dir     string
	Scripts []templates.Script
	files   map[string][]byte
	modes   jobs.Modes
	// tasks is a sweep's number of tasks (0: not a sweep).
	tasks int
	// maxTime is the train partition's MaxTime Prepare found (see
	// templates.Run.MaxTime).
	maxTime time.Duration
}

// Prepare renders every stage of p for a new run. Nothing is written.
// With train.chain_time_limit it asks the Inspector for the partition's
// MaxTime: the train job asks for at most that and requeues itself at the
// limit.
func (s *Service) Prepare(ctx context.Context, p *jobs.Pipeline) (*Prepared, error) {
	id := NewRunID(p.Name, s.now())
	dir := filepath.Join(p.Workdir, id)
	run := templates.Run{ID: id, Dir: dir, Slurmtune: s.Slurmtune}
	if p.StageOn(jobs.StageTrain) && p.Train.ChainTimeLimit {
		max, err := s.partitionMaxTime(ctx, p.Cluster.Partition)
		if err != nil {
			return nil, fmt.Errorf("train.chain_time_limit: partition time limit: %w", err)
		}
		run.MaxTime = max
	}
	scripts, err := s.Templates.Render(p, run)
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
	if p.StageOn(jobs.StageTrain) {
		ds, err := p.Train.DeepSpeedConfig()
		if err != nil {
			return nil, err
		}
		if ds != nil {
			files[filepath.Join(dir, jobs.DSConfigName)] = ds
		}
	}
	return &Prepared{ID: id, Dir: dir, Scripts: scripts, files: files, modes: p.Modes(), maxTime: run.MaxTime}, nil
}

// PartitionLister is what Prepare asks of a slurm.Inspector.
type PartitionLister interface {
	Partitions(ctx context.Context) ([]slurm.Partition, error)
}

// partitionMaxTime is the MaxTime of the named partition (the default one
// when name is ""); 0 when it has none.
func (s *Service) partitionMaxTime(ctx context.Context, name string) (time.Duration, error) {
	if s.Inspector == nil {
		return 0, errors.New("no connection to the cluster to ask")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	parts, err := s.Inspector.Partitions(ctx)
	if err != nil {
		return 0, err
	}
	var max time.Duration
	for _, pt := range parts {
		if pt.Name == name || name == "" && pt.Default {
			max = pt.MaxTime
		}
	}
	return max, nil
}

// stageRequest is how a prepared stage is submitted, after the jobs in
// afterOK.
func stageRequest(prep *Prepared, sc templates.Script, afterOK []string) slurm.SubmitRequest {
	return slurm.SubmitRequest{
		Script:     sc.Body,
		ScriptPath: filepath.Join(prep.Dir, sc.Stage+".sbatch"),
		WorkDir:    prep.Dir,
		AfterOK:    afterOK,
		Comment:    templates.Comment(prep.ID, sc.Stage),
		ExtraArgs:  []string{"--output=" + sc.Log},
	}
}

// submitChecker is a transport that can tell, without the cluster, whether
// it can send a request at all (REST: every #SBATCH option must map).
type submitChecker interface {
	CheckSubmit(req slurm.SubmitRequest) error
}

// CheckSubmits asks the transport whether it can send every stage of prep,
// so that a stage it cannot send is refused before any is queued.
func (s *Service) CheckSubmits(prep *Prepared) error {
	c, ok := s.Client.(submitChecker)
	if !ok {
		return nil
	}
	for _, sc := range prep.Scripts {
		if err := c.CheckSubmit(stageRequest(prep, sc, []string{"1"})); err != nil {
			return fmt.Errorf("%s stage: %w", sc.Stage, err)
		}
	}
	return nil
}

// SubmitOptions changes how Submit treats a run.
type SubmitOptions struct {
	// IfChanged skips the submission when a run with the same fingerprint
	// is in flight or succeeded.
	IfChanged bool
	// Fingerprint identifies the inputs (see Fingerprint).
	Fingerprint string
	// Tasks are a sweep's resolved tasks (package jobs/sweep); a pipeline
	// with a sweep section is submitted as one (see SubmitSweep).
	Tasks []sweep.Task
}

// Submit renders p, records the run, writes the run directory and submits
// its stages as one dependency chain. Before each sbatch the intent is
// recorded, so a crash at any point is reconciled by the next command. If a
// submission fails part-way, the jobs already submitted are cancelled and
// the run is marked interrupted. With IfChanged, Submitted.Skipped is the
// existing run and nothing is submitted.
func (s *Service) Submit(ctx context.Context, p *jobs.Pipeline, opts SubmitOptions) (*Submitted, error) {
	// The secrets given by {env: VAR} must all be there before anything
	// is recorded or written.
	if p.Sweep != nil {
		return s.SubmitSweep(ctx, p, opts.Tasks, opts)
	}
	secrets, err := s.secretEnv(p)
	if err != nil {
		return nil, err
	}
	prep, err := s.Prepare(ctx, p)
	if err != nil {
		return nil, err
	}
	if existing, err := s.recordRun(ctx, p, prep, p.Stages(), opts); err != nil {
		return nil, err
	} else if existing != nil {
		return &Submitted{Skipped: existing}, nil
	}
	if p.Notify.Webhook != "" {
		cfg, err := json.Marshal(p.Notify)
		if err == nil {
			err = s.Store.SetRunNotify(ctx, prep.ID, string(cfg))
		}
		if err != nil {
			return nil, s.interrupted(ctx, prep.ID, nil, err)
		}
	}
	if err := s.writeRunDir(ctx, prep); err != nil {
		return nil, s.interrupted(ctx, prep.ID, nil, err)
	}
	out := &Submitted{Jobs: map[string]string{}}
	var prev, submitted []string
	for _, sc := range prep.Scripts {
		req := stageRequest(prep, sc, prev)
		req.Secrets = secrets
		id, err := s.SubmitStage(ctx, prep.ID, sc.Stage, req)
		if err != nil {
			return nil, s.submitFailed(ctx, prep.ID, sc.Stage, submitted, err)
		}
		out.Jobs[sc.Stage] = id
		submitted = append(submitted, id)
		prev = []string{id}
	}
	return s.finish(ctx, prep.ID, out)
}

// submitFailed is what a failed stage submit leaves: when the job may be in
// Slurm and could not be looked up now (the connection is gone), the run
// stays submitting with the intent open, for the next command to adopt or
// clear it; otherwise what was submitted is cancelled and the run
// interrupted.
func (s *Service) submitFailed(ctx context.Context, runID, stage string, submitted []string, err error) error {
	if errors.Is(err, slurm.ErrSubmitUncertain) {
		return fmt.Errorf("submit %s stage of run %s: %w; the next slurmtune command (e.g. sync) reconciles it", stage, runID, err)
	}
	return s.interrupted(ctx, runID, submitted, fmt.Errorf("submit %s stage: %w", stage, err))
}

// recordRun checks that the transport can send every stage of prep and
// records the run with its stages, none submitted yet; with IfChanged, a run
// with the same inputs in flight or succeeded is returned instead.
func (s *Service) recordRun(ctx context.Context, p *jobs.Pipeline, prep *Prepared, stages []string, opts SubmitOptions) (*store.Run, error) {
	if err := s.CheckSubmits(prep); err != nil {
		return nil, err
	}
	run := store.Run{ID: prep.ID, Name: p.Name, PipelineFile: p.File, RunDir: prep.Dir, Transport: s.Transport, Cluster: s.Cluster,
		ClusterConfig: s.ClusterConfig, Fingerprint: opts.Fingerprint, Submitter: Submitter()}
	if opts.IfChanged {
		return s.Store.ClaimRun(ctx, run, stages)
	}
	return nil, s.Store.CreateRun(ctx, run, stages)
}

// finish marks a submission complete and returns it with the run.
func (s *Service) finish(ctx context.Context, runID string, out *Submitted) (*Submitted, error) {
	if err := s.Store.FinishSubmission(ctx, runID, store.SubmissionComplete, ""); err != nil {
		return nil, err
	}
	r, err := s.Store.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	out.Run = r
	return out, nil
}

func (s *Service) writeRunDir(ctx context.Context, prep *Prepared) error {
	l := templates.LayoutOf(prep.Dir)
	for _, d := range []string{l.Dir, l.Logs} {
		if err := s.FS.MkdirAll(ctx, d, prep.modes.Dir); err != nil {
			return fmt.Errorf("create run directory: %w", err)
		}
	}
	paths := make([]string, 0, len(prep.files))
	for path := range prep.files {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		mode := prep.modes.File
		if strings.HasSuffix(path, ".sbatch") {
			mode = prep.modes.Script
		}
		if err := s.FS.WriteFile(ctx, path, prep.files[path], mode); err != nil {
			return fmt.Errorf("write run directory: %w", err)
		}
	}
	return nil
}

// interrupted cancels what a failed submission already submitted and marks
// the run interrupted, so it is FAILED rather than stuck.
func (s *Service) interrupted(ctx context.Context, runID string, submitted []string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	if len(submitted) > 0 {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		cerr := s.Client.Cancel(cctx, submitted)
		cancel()
		if cerr != nil {
			cause = fmt.Errorf("%w; cancelling the jobs already submitted (%s) also failed: %v", cause, strings.Join(submitted, ","), cerr)
		} else {
			s.Log.Warn("cancelled the jobs already submitted for this run", "run", runID, "jobs", strings.Join(submitted, ","))
		}
	}
	if err := s.Store.FinishSubmission(ctx, runID, store.SubmissionInterrupted, oneLine(cause.Error())); err != nil {
		s.Log.Warn("record interrupted submission", "run", runID, "err", err)
	}
	return cause
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// SyncResult says what one refresh did.
type SyncResult struct {
	Tracked int `json:"tracked"` // live jobs asked about
	Changed int `json:"changed"` // stages whose record changed
	Missing int `json:"missing"` // jobs Slurm no longer knows
}

// SyncJobs asks Slurm about the given tracked jobs with one refresh and
// records what changed.
func (s *Service) SyncJobs(ctx context.Context, live []store.TrackedJob) (SyncResult, error) {
	res := SyncResult{Tracked: len(live)}
	var retryAt []store.TrackedJob
	defer func() {
		// After the records are up to date: resubmit stages whose retry
		// policy covers how their job ended.
		for _, t := range retryAt {
			if err := s.autoRetry(ctx, t); err != nil {
				s.Log.Warn("automatic retry failed", "run", t.RunID, "stage", t.Stage, "err", err)
			}
		}
	}()
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
		if changed && j.State.Terminal() && retryableEnd(j.State) {
			retryAt = append(retryAt, t)
		}
		if changed && failed(j) {
			s.recordFailure(ctx, t)
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
	submitted := false
	for _, st := range r.Stages {
		submitted = submitted || st.JobID != ""
		if st.JobID != "" && !st.Terminal() {
			ids = append(ids, st.JobID)
		}
	}
	if submitted && len(ids) == 0 && r.Ended() {
		// Nothing left to cancel: a run that ended keeps its state.
		return r, nil
	}
	if err := s.Client.Cancel(ctx, ids); err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", r.ID, err)
	}
	if err := s.Store.MarkCancelled(ctx, r.ID); err != nil {
		return nil, err
	}
	if _, err := s.SyncJobs(ctx, liveJobsOf(r)); err != nil {
		s.Log.Warn("sync after cancel", "err", err)
	}
	return s.Store.GetRun(ctx, r.ID)
}

// liveJobsOf lists a run's stage jobs that have not ended.
func liveJobsOf(r *store.Run) []store.TrackedJob {
	var tracked []store.TrackedJob
	for _, st := range r.Stages {
		if st.JobID != "" && !st.Terminal() {
			tracked = append(tracked, store.TrackedJob{RunID: r.ID, Stage: st.Name, JobID: st.JobID})
		}
	}
	return tracked
}

// Follow refreshes the run's live jobs every interval until the run has
// ended, calling progress after each refresh. Only this run's jobs are
// asked about: other runs may be on other clusters. Transient cluster
// errors are retried.
func (s *Service) Follow(ctx context.Context, runID string, interval time.Duration, progress func(*store.Run)) (*store.Run, error) {
	backoff := interval
	for {
		r, err := s.Store.GetRun(ctx, runID)
		if err != nil {
			return nil, err
		}
		_, err = s.SyncJobs(ctx, liveJobsOf(r))
		switch {
		case err == nil:
			backoff = interval
		case errors.Is(err, slurm.ErrUnavailable) && ctx.Err() == nil:
			s.Log.Warn("cluster unavailable, retrying", "err", err, "in", backoff)
			backoff = min(backoff*2, time.Minute)
		default:
			return nil, err
		}
		r, err = s.Store.GetRun(ctx, runID)
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
