package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
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
				w.Write(b)
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
