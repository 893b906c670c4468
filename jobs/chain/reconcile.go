package chain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// Submitter names this process as host:pid, recorded on the runs it submits.
func Submitter() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}

// staleAfter is how long a submission by a process on another host may go
// quiet before it is taken for dead (its liveness cannot be checked).
const staleAfter = 10 * time.Minute

// submitterAlive reports whether the process that is submitting a run may
// still be at it.
func submitterAlive(submitter string, updated time.Time, now time.Time) bool {
	host, pidStr, ok := strings.Cut(submitter, ":")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil || pid <= 0 {
		return now.Sub(updated) < staleAfter
	}
	me, _ := os.Hostname()
	if host != me {
		return now.Sub(updated) < staleAfter
	}
	if pid == os.Getpid() {
		return true
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ReconcileResult says what Reconcile found.
type ReconcileResult struct {
	Adopted     int // jobs that reached Slurm but were not recorded
	Cleared     int // intents that never reached Slurm
	Interrupted int // runs whose submission was cut short
	Completed   int // runs whose submission had in fact finished
}

// Reconcile finishes what a killed submitter left: for every run still
// "submitting" whose submitter is gone, each stage with an open intent is
// looked up by its comment tag and adopted if Slurm has it, or cleared if
// not. A run with every stage submitted is complete; otherwise the jobs it
// has are cancelled and it is marked interrupted (FAILED, with the reason;
// `slurmtune retry` resubmits it). Nothing is ever submitted here.
func (s *Service) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	runs, err := s.Store.SubmittingRuns(ctx)
	if err != nil {
		return res, err
	}
	now := s.now()
	for _, r := range runs {
		if submitterAlive(r.Submitter, r.UpdatedAt, now) {
			continue
		}
		var live []string
		missing := ""
		for _, st := range r.Stages {
			if st.State == store.StateSubmitting {
				tag := StageTag(r.ID, st.Name, st.Attempt+1)
				base, task, isTask := jobs.ParseTaskStage(st.Name)
				if isTask && st.Attempt == 0 {
					tag = StageTag(r.ID, base, 1) // a sweep's first array carries its stage's tag
				}
				id, err := s.findTagged(ctx, tag)
				if err != nil {
					return res, fmt.Errorf("reconcile %s/%s: %w", r.ID, st.Name, err)
				}
				if id != "" && isTask {
					id = fmt.Sprintf("%s_%d", strings.SplitN(id, "_", 2)[0], task) // the array's task
				}
				if id != "" {
					if err := s.Store.RecordSubmitted(ctx, r.ID, st.Name, s.Cluster, id); err != nil {
						return res, err
					}
					s.Log.Warn("adopted a job that was submitted but not recorded", "run", r.ID, "stage", st.Name, "job", id)
					res.Adopted++
					st.JobID, st.State = id, "PENDING"
				} else {
					if err := s.Store.ClearIntent(ctx, r.ID, st.Name); err != nil {
						return res, err
					}
					s.Log.Warn("cleared a submit intent that never reached Slurm", "run", r.ID, "stage", st.Name)
					res.Cleared++
					st.JobID = ""
				}
			}
			if st.JobID == "" {
				if missing == "" {
					missing = st.Name
				}
			} else if !st.Terminal() {
				live = append(live, st.JobID)
			}
		}
		if missing == "" {
			if err := s.Store.FinishSubmission(ctx, r.ID, store.SubmissionComplete, ""); err != nil {
				return res, err
			}
			res.Completed++
			continue
		}
		if len(live) > 0 {
			if err := s.Client.Cancel(ctx, live); err != nil {
				return res, fmt.Errorf("reconcile %s: cancel the jobs of an interrupted submission: %w", r.ID, err)
			}
		}
		reason := fmt.Sprintf("submission interrupted before stage %s was submitted; `slurmtune retry %s` resubmits it", missing, r.ID)
		if err := s.Store.FinishSubmission(ctx, r.ID, store.SubmissionInterrupted, reason); err != nil {
			return res, err
		}
		s.Log.Warn("run's submission was interrupted", "run", r.ID, "reason", reason)
		res.Interrupted++
	}
	return res, nil
}

// StageTag is the comment of a stage's job: slurmtune:<run>:<stage> for the
// first attempt and slurmtune:<run>:<stage>:<attempt> for later ones.
func StageTag(runID, stage string, attempt int) string {
	if attempt <= 1 {
		return templates.Comment(runID, stage)
	}
	return fmt.Sprintf("%s:%d", templates.Comment(runID, stage), attempt)
}

// Retry resubmits a run's stages from the given one (or the first that did
// not complete) to the end, as new attempts: every earlier attempt stays in
// the history. The run must have ended.
func (s *Service) Retry(ctx context.Context, runID, from string) (*Submitted, error) {
	r, err := s.Store.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	if retry, err := s.sweepRetry(ctx, r, from); retry != nil || err != nil {
		return retry, err
	}
	for _, st := range r.Stages {
		if st.State == store.StateSubmitting || st.JobID != "" && !st.Terminal() {
			return nil, fmt.Errorf("run %s still has a live job (%s %s): cancel it first", r.ID, st.Name, st.JobID)
		}
	}
	start := -1
	for i, st := range r.Stages {
		if from != "" && st.Name == from || from == "" && st.State != "COMPLETED" {
			start = i
			break
		}
	}
	if start < 0 {
		if from != "" {
			return nil, fmt.Errorf("run %s has no stage %q", r.ID, from)
		}
		return nil, fmt.Errorf("run %s: every stage completed; nothing to retry (use --from STAGE to rerun one)", r.ID)
	}
	l := templates.LayoutOf(r.RunDir)
	// The secrets given by {env: VAR} are read again from this process's
	// environment: they were never written to the run directory.
	secrets, err := s.runSecrets(ctx, l.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("retry run %s: %w", r.ID, err)
	}
	if err := s.Store.ResetForRetry(ctx, r.ID, Submitter()); err != nil {
		return nil, err
	}
	out := &Submitted{Jobs: map[string]string{}}
	var prev, submitted []string
	for _, st := range r.Stages[start:] {
		path := l.Dir + "/" + st.Name + ".sbatch"
		script, err := s.FS.ReadFile(ctx, path)
		if err != nil {
			return nil, s.interrupted(ctx, r.ID, submitted, fmt.Errorf("retry %s stage: read its script: %w", st.Name, err))
		}
		sreq := slurm.SubmitRequest{Script: script, ScriptPath: path, WorkDir: r.RunDir, AfterOK: prev,
			Comment: StageTag(r.ID, st.Name, st.Attempt+1), ExtraArgs: []string{"--output=" + l.LogPath(st.Name)}, Secrets: secrets}
		id, err := s.SubmitStage(ctx, r.ID, st.Name, sreq)
		if err != nil {
			return nil, s.interrupted(ctx, r.ID, submitted, fmt.Errorf("retry %s stage: %w", st.Name, err))
		}
		out.Jobs[st.Name] = id
		submitted = append(submitted, id)
		prev = []string{id}
	}
	return s.finish(ctx, r.ID, out)
}

// runSecrets reads a run's pipeline snapshot and resolves its
// environment.secrets given by {env: VAR}.
func (s *Service) runSecrets(ctx context.Context, snapshot string) (map[string]string, error) {
	data, err := s.FS.ReadFile(ctx, snapshot)
	if err != nil {
		return nil, fmt.Errorf("read pipeline snapshot: %w", err)
	}
	if !bytes.Contains(data, []byte("secrets")) {
		return nil, nil
	}
	p, err := jobs.Parse(snapshot, snapshot, data, jobs.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("pipeline snapshot: %w", err)
	}
	return s.secretEnv(p)
}
