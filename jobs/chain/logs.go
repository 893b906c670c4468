package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// ErrNoLog is a log that does not exist yet: the job has not started.
var ErrNoLog = errors.New("no log yet")

// LogFollow says how CopyLog reads a stage's log.
type LogFollow struct {
	// Follow keeps reading as the log grows until Ended reports true;
	// Interval is the wait between looks.
	Follow   bool
	Interval time.Duration
	// Ended reports whether the stage has ended (after a refresh from
	// Slurm); once it has, the log is read one last time.
	Ended func(context.Context) (bool, error)
}

const logChunk = 1 << 20

// CopyLog copies the log at path on fsys to w, in chunks; with Follow it
// keeps copying what is appended until the stage ends. Without Follow, a
// log that does not exist is ErrNoLog.
func CopyLog(ctx context.Context, fsys slurm.FileSystem, path string, w io.Writer, f LogFollow) error {
	var off int64
	for {
		for {
			b, err := fsys.ReadAt(ctx, path, off, logChunk)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					if !f.Follow {
						return ErrNoLog
					}
					break
				}
				return fmt.Errorf("read log: %w", err)
			}
			if len(b) == 0 {
				break
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			off += int64(len(b))
		}
		if !f.Follow {
			return nil
		}
		done, err := f.Ended(ctx)
		if err != nil {
			return err
		}
		if done {
			// One last read for what was written before the end.
			b, err := fsys.ReadAt(ctx, path, off, logChunk)
			for err == nil && len(b) > 0 {
				if _, err := w.Write(b); err != nil {
					return err
				}
				off += int64(len(b))
				b, err = fsys.ReadAt(ctx, path, off, logChunk)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.Interval):
		}
	}
}

// LogExists reports whether the log at path exists on fsys.
func LogExists(ctx context.Context, fsys slurm.FileSystem, path string) (bool, error) {
	_, err := fsys.ReadAt(ctx, path, 0, 1)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read log: %w", err)
	}
	return err == nil, nil
}

// StageLog is where a stage's log is and what its job is doing (logs
// --json).
type StageLog struct {
	Run      string `json:"run"`
	Stage    string `json:"stage"`
	JobID    string `json:"job_id"`
	State    string `json:"state"`
	Attempt  int    `json:"attempt"`
	Restarts int    `json:"restarts"`
	Nodes    string `json:"nodes"`
	Log      string `json:"log"`
	Exists   bool   `json:"exists"`
}

// UnknownStageError is a stage the run does not have.
type UnknownStageError struct {
	Run, Stage string
	Stages     []string
}

func (e *UnknownStageError) Error() string {
	return fmt.Sprintf("run %s has no stage %q (stages: %v)", e.Run, e.Stage, e.Stages)
}

// StageLogOf is the named stage's log in r (Exists left false); a stage r
// does not have is an *UnknownStageError.
func StageLogOf(r *store.Run, stage string) (*StageLog, error) {
	names := make([]string, len(r.Stages))
	for i, s := range r.Stages {
		names[i] = s.Name
		if s.Name == stage {
			return &StageLog{Run: r.ID, Stage: s.Name, JobID: s.JobID, State: s.State, Attempt: s.Attempt,
				Restarts: s.Restarts, Nodes: s.Nodes, Log: templates.LayoutOf(r.RunDir).StageLogPath(stage)}, nil
		}
	}
	return nil, &UnknownStageError{Run: r.ID, Stage: stage, Stages: names}
}

// StageEnded reports whether the run's stage has ended (or will never be
// submitted), as the store has it now.
func StageEnded(ctx context.Context, st *store.Store, runID, stage string) (bool, error) {
	r, err := st.GetRun(ctx, runID)
	if err != nil {
		return false, err
	}
	for _, s := range r.Stages {
		if s.Name == stage && (s.Terminal() || s.State == store.StateNotSubmitted) {
			return true, nil
		}
	}
	return false, nil
}
