package chain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

// SubmitStage is the one way a job is submitted for a run's stage
// (pipelines, retries and `slurmtune sbatch`): it records the intent,
// submits, looks the job up by its comment tag when the answer was lost,
// and records the job. A stage is never submitted twice: a submit whose
// outcome stays unknown leaves the intent open for the next command to
// reconcile. A request without a tag (req.Comment "") cannot be looked up.
func (s *Service) SubmitStage(ctx context.Context, runID, stage string, req slurm.SubmitRequest) (string, error) {
	if err := s.Store.RecordIntent(ctx, runID, stage); err != nil {
		return "", err
	}
	id, err := s.Client.Submit(ctx, req)
	if errors.Is(err, slurm.ErrSubmitUncertain) && req.Comment != "" {
		s.Log.Warn("submit outcome unknown; looking the job up by its tag", "run", runID, "stage", stage, "tag", req.Comment)
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		found, lerr := s.findTagged(lctx, req.Comment)
		cancel()
		switch {
		case lerr != nil:
			return "", fmt.Errorf("%w; looking it up by tag %s also failed (the next command reconciles): %v", err, req.Comment, lerr)
		case found != "":
			id, err = found, nil
		}
	}
	if err != nil {
		if errors.Is(err, slurm.ErrSubmitUncertain) {
			return "", err
		}
		// sbatch answered: nothing reached Slurm.
		if cerr := s.Store.ClearIntent(context.WithoutCancel(ctx), runID, stage); cerr != nil {
			s.Log.Warn("clear intent", "err", cerr)
		}
		return "", refusedError{err}
	}
	// The job is in Slurm: record it even when the caller is giving up.
	if err := s.Store.RecordSubmitted(context.WithoutCancel(ctx), runID, stage, s.Cluster, id); err != nil {
		return "", err
	}
	s.Log.Info("submitted", "run", runID, "stage", stage, "job", id)
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
