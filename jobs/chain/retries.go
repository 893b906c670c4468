package chain

import (
	"context"
	"fmt"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// retryableEnd reports whether a job that ended in st could be retried by a
// stage's retries block.
func retryableEnd(st slurm.State) bool {
	for _, s := range jobs.RetryableStates {
		if string(st) == s {
			return true
		}
	}
	return false
}

// autoRetry applies a stage's retries block after its job ended in a
// retryable state: the stage's dependants (which Slurm cancels, or is about
// to, since their dependency failed) are cancelled, and the stage and every
// stage after it are resubmitted as new attempts, the dependants now
// waiting on the new job. The policy comes from the run's pipeline
// snapshot, so it is the one the run was submitted with.
func (s *Service) autoRetry(ctx context.Context, t store.TrackedJob) error {
	r, err := s.Store.GetRun(ctx, t.RunID)
	if err != nil {
		return err
	}
	if r.Cancelled {
		return nil
	}
	var stage *store.Stage
	for i := range r.Stages {
		if r.Stages[i].Name == t.Stage {
			stage = &r.Stages[i]
		}
	}
	if stage == nil || stage.JobID != t.JobID {
		return nil // moved on meanwhile
	}
	path := templates.LayoutOf(r.RunDir).Pipeline
	snap, err := s.FS.ReadFile(ctx, path)
	if err != nil {
		return fmt.Errorf("read the run's pipeline: %w", err)
	}
	p, err := jobs.Parse(path, path, snap, jobs.LoadOptions{})
	if err != nil {
		return fmt.Errorf("read the run's pipeline: %w", err)
	}
	base, _, _ := jobs.ParseTaskStage(t.Stage) // a sweep task's stage has its stage's policy
	policy := p.RetriesOf(base)
	if !policy.Allows(stage.State, stage.Attempt) {
		if contains(policy.On, stage.State) {
			s.Log.Warn("stage ended and its retries are used up", "run", r.ID, "stage", t.Stage, "state", stage.State,
				"attempts", stage.Attempt, "retries.max", policy.Max)
		}
		return nil
	}
	var doomed []store.TrackedJob
	var ids []string
	_, task, isTask := jobs.ParseTaskStage(t.Stage)
	for _, st := range r.Stages {
		if isTask && st.Name != jobs.TaskStage(jobs.StageEval, task) {
			continue // a sweep task's dependant is its own eval (RetryTask redoes select and deploy)
		}
		if st.Position > stage.Position && st.JobID != "" && !st.Terminal() {
			doomed = append(doomed, store.TrackedJob{RunID: r.ID, Stage: st.Name, JobID: st.JobID})
			ids = append(ids, st.JobID)
		}
	}
	if len(ids) > 0 {
		if err := s.Client.Cancel(ctx, ids); err != nil {
			return fmt.Errorf("cancel the dependants: %w", err)
		}
		if _, err := s.SyncJobs(ctx, doomed); err != nil {
			return err
		}
	}
	s.Log.Warn("retrying stage", "run", r.ID, "stage", t.Stage, "after", stage.State,
		"retry", stage.Attempt, "of", policy.Max)
	res, err := s.Retry(ctx, r.ID, t.Stage)
	if err != nil {
		return err
	}
	s.Log.Info("resubmitted", "run", r.ID, "jobs", fmt.Sprint(res.Jobs))
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
