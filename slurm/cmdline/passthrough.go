package cmdline

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/slurmtune/slurmtune/slurm"
)

// Streamer is a Runner that can also run a command on the caller's own
// stdin, stdout and stderr (the local runner can).
type Streamer interface {
	Stream(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// SbatchAsIs runs sbatch with args exactly as given on the caller's stdin,
// stdout and stderr: what `slurmtune sbatch` does with --help, --version,
// --test-only... A non-zero exit returns an *ExitError (its Stderr empty:
// sbatch wrote to stderr itself).
func (c *Client) SbatchAsIs(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	s, ok := c.run.(Streamer)
	if !ok {
		return errors.New("sbatch: this transport cannot run sbatch as is (only the local one can)")
	}
	return s.Stream(ctx, append([]string{"sbatch"}, args...), stdin, stdout, stderr)
}

// ExitStatus is the command's exit code and what it wrote to stderr, for
// callers outside slurm/ that pass a refused command's answer on.
func (e *ExitError) ExitStatus() (int, string) { return e.Code, e.Stderr }

// submitError classifies a failed sbatch. One that ended by a signal (its
// code is negative) or was stopped because the caller gave up (its context
// ended) may have queued the job without printing its id: that is an
// uncertain submit, for the caller to look the job up by its tag.
func submitError(err error) error {
	var ee *ExitError
	switch {
	case errors.As(err, &ee) && ee.Code < 0:
		return fmt.Errorf("%w: sbatch was killed before it answered: %w", slurm.ErrSubmitUncertain, err)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		if errors.Is(err, slurm.ErrSubmitUncertain) {
			return err
		}
		return fmt.Errorf("%w: sbatch was interrupted: %w", slurm.ErrSubmitUncertain, err)
	}
	return classify(err)
}
