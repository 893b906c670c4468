package chain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
)

// SubmitStage is the one way a job is submitted for a run's stage
// (pipelines, retries and `slurmtune sbatch`; a sweep's arrays through
// submitArray, the same path): it records the intent, submits, looks the job
// up by its comment tag when the answer was lost, and records the job. A
// stage is never submitted twice: a submit whose outcome stays unknown leaves
// the intent open for the next command to reconcile. A request without a tag
// (req.Comment "") cannot be looked up.
func (s *Service) SubmitStage(ctx context.Context, runID, stage string, req slurm.SubmitRequest) (string, error) {
	return s.submit(ctx, runID, []string{stage}, req, nil)
}

// submitArray is SubmitStage for an array of the given tasks: the intent
// is recorded for every task's stage, the array is submitted once, and task
// K is recorded as job ARRAY_K.
func (s *Service) submitArray(ctx context.Context, runID, stage string, tasks []int, req slurm.SubmitRequest) (string, error) {
	names := make([]string, len(tasks))
	for i, k := range tasks {
		names[i] = jobs.TaskStage(stage, k)
	}
	return s.submit(ctx, runID, names, req, func(id string) []string {
		ids := make([]string, len(tasks))
		for i, k := range tasks {
			ids[i] = fmt.Sprintf("%s_%d", id, k)
		}
		return ids
	})
}

// submit records the intent of stages, submits req once and records the
// job: one job for one stage (taskIDs nil), or an array whose stage i is
// job taskIDs(id)[i].
func (s *Service) submit(ctx context.Context, runID string, stages []string, req slurm.SubmitRequest, taskIDs func(id string) []string) (string, error) {
	if err := s.Store.RecordIntents(ctx, runID, stages); err != nil {
		return "", err
	}
	id, err := s.Client.Submit(ctx, req)
	if errors.Is(err, slurm.ErrSubmitUncertain) && req.Comment != "" {
		s.Log.Warn("submit outcome unknown; looking the job up by its tag", "run", runID, "stage", stages[0], "tag", req.Comment)
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		found, lerr := s.findTagged(lctx, req.Comment)
		cancel()
		switch {
		case lerr != nil:
			return "", fmt.Errorf("%w; looking it up by tag %s also failed (the next command reconciles): %v", err, req.Comment, lerr)
		case found != "":
			// An array's tasks are found as ARRAY_TASK: the array is ARRAY.
			id, err = strings.SplitN(found, "_", 2)[0], nil
		}
	}
	if err != nil {
		if errors.Is(err, slurm.ErrSubmitUncertain) {
			return "", err
		}
		// sbatch answered: nothing reached Slurm.
		for _, st := range stages {
			if cerr := s.Store.ClearIntent(context.WithoutCancel(ctx), runID, st); cerr != nil {
				s.Log.Warn("clear intent", "err", cerr)
			}
		}
		return "", refusedError{err}
	}
	// The job is in Slurm: record it even when the caller is giving up.
	bg := context.WithoutCancel(ctx)
	if taskIDs == nil {
		if err := s.Store.RecordSubmitted(bg, runID, stages[0], s.Cluster, id); err != nil {
			return "", err
		}
		s.Log.Info("submitted", "run", runID, "stage", stages[0], "job", id)
		return id, nil
	}
	if err := s.Store.RecordArraySubmitted(bg, runID, stages, s.Cluster, taskIDs(id)); err != nil {
		return "", err
	}
	s.Log.Info("submitted array", "run", runID, "stage", stages[0], "job", id, "tasks", len(stages))
	return id, nil
}

// refusedError is a submit the cluster refused: nothing reached Slurm. It
// reads as the refusal itself.
type refusedError struct{ error }

func (e refusedError) Unwrap() error { return e.error }

// findTagged returns the id of the job carrying exactly this comment tag.
func (s *Service) findTagged(ctx context.Context, tag string) (string, error) {
	js, err := s.Client.JobsByComment(ctx, tag)
	if err != nil {
		return "", err
	}
	for _, j := range js {
		if j.Comment == tag {
			return j.ID, nil
		}
	}
	return "", nil
}
