// Command slurmtune takes an LLM fine-tuning project from raw data to a
// served model on a Slurm cluster: it renders and submits a pipeline's stages
// as one chain of Slurm jobs and tracks them in SQLite.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/cmd/slurmtune/internal/clix"
	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2
	exitGate    = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the CLI and turns its error into an exit code: the one place
// where that happens.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	// urfave/cli carries on without an error after an unknown command.
	var notFound error
	app.CommandNotFound = func(_ *cli.Context, name string) {
		notFound = usagef("no command %q (see slurmtune --help)", name)
	}
	args, err := clix.ReorderArgs(app, args)
	if err != nil {
		return report(usageError{err}, stderr)
	}
	if err = app.RunContext(ctx, args); err == nil {
		err = notFound
	}
	return report(err, stderr)
}

func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ex exitError
	if errors.As(err, &ex) {
		if ex.msg != "" {
			fmt.Fprintln(stderr, ex.msg)
		}
		return ex.code
	}
	var perrs jobs.Errors
	if errors.As(err, &perrs) {
		for _, e := range perrs {
			fmt.Fprintln(stderr, e.Error())
		}
		return exitInvalid
	}
	var ue usageError
	if !errors.As(err, &ue) && errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "slurmtune: interrupted")
		return exitFailure
	}
	fmt.Fprintf(stderr, "slurmtune: %v\n", err)
	if errors.As(err, &ue) {
		return exitInvalid
	}
	return exitFailure
}

// usageError is bad usage or invalid input: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries a specific exit code (with an optional message already
// meant for the user).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

// commandExit passes on the answer of a Slurm command that refused: its
// stderr, and its exit code (at least 1). Other errors (a submit whose
// answer was lost among them) are returned as they are.
func commandExit(err error) error {
	var ce interface{ ExitStatus() (int, string) }
	if !errors.Is(err, slurm.ErrSubmitUncertain) && errors.As(err, &ce) {
		code, stderr := ce.ExitStatus()
		return exitError{code: max(code, 1), msg: strings.TrimRight(stderr, "\n")}
	}
	return err
}
