package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/slurmtune/slurmtune/slurm/cmdline"
)

// Stream runs argv on this host with the given stdin, stdout and stderr
// (cmdline.Streamer). A non-zero exit returns a *cmdline.ExitError.
func (Runner) Stream(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		return errors.New("run: empty command")
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return &cmdline.ExitError{Argv: argv, Code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}

var _ cmdline.Streamer = Runner{}
