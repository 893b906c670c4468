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
	"syscall"

	"github.com/slurmtune/slurmtune/jobs"
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
	var err error
	if !completing(args) {
		args, err = reorderArgs(app, args)
	}
	if err == nil {
		err = app.RunContext(ctx, args)
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
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "slurmtune: %v\n", err)
		return exitInvalid
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "slurmtune: interrupted")
		return exitFailure
	}
	fmt.Fprintf(stderr, "slurmtune: %v\n", err)
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
