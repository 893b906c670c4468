package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/slurm"
)

func sbatchCommand() *cli.Command {
	return &cli.Command{
		Name:            "sbatch",
		Usage:           "sbatch drop-in for jobs that are not pipelines: submit, print the job id, track it, record its GPUs",
		ArgsUsage:       "[sbatch options] SCRIPT [ARGS] | [sbatch options] --wrap=CMD",
		SkipFlagParsing: true,
		Description: "Everything after `sbatch` goes to sbatch (global slurmtune flags such as --db go\n" +
			"before it). Prints the job id as `sbatch --parsable` does. The job is tracked as a\n" +
			"one-stage run (stage \"job\"): `slurmtune status`, `logs RUN job`, `cancel RUN` and\n" +
			"`gpu JOBID` work on it. The script runs with `slurmtune exporter` on every node\n" +
			"(set SLURMTUNE_GPU_EXPORTER=0 to skip it, SLURMTUNE_GPU_INTERVAL to change its 5s\n" +
			"interval). --wait is honoured by following the job; --array is not supported;\n" +
			"--help, --usage, --version and --test-only run sbatch as is.",
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return sbatchRun(c.Context, e, c.Args().Slice(), os.Stdin)
		},
	}
}

// sbatchRun is `slurmtune sbatch` (chain.LoadSbatchJob, Service.SubmitSbatch).
func sbatchRun(ctx context.Context, e *env, words []string, stdin io.Reader) error {
	j, err := chain.LoadSbatchJob(words, stdin)
	var ue chain.SbatchUsageError
	switch {
	case errors.As(err, &ue):
		return usagef("sbatch: %v", ue.Err)
	case errors.Is(err, chain.ErrNotBatchScript):
		return exitError{code: exitFailure, msg: err.Error()}
	case err != nil:
		return err
	}
	cl, err := connect(ctx, e, jobs.Cluster{Transport: "local"})
	if err != nil {
		return err
	}
	defer cl.close()
	if j.Passthrough() { // the local client runs sbatch itself on our stdin, stdout and stderr
		return commandExit(cl.SbatchAsIs(ctx, words, stdin, e.stdout, e.stderr))
	}
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	dbAbs, err := filepath.Abs(e.dbPath)
	if err != nil {
		return err
	}
	svc, err := e.service(st, cl)
	if err != nil {
		return err
	}
	sub, err := svc.SubmitSbatch(ctx, j, filepath.Join(filepath.Dir(dbAbs), "jobs"))
	if err != nil {
		return commandExit(err)
	}
	fmt.Fprintln(e.stdout, sub.JobID)
	if !j.Wait() {
		return nil
	}
	r, err := svc.Follow(ctx, sub.RunID, 2*time.Second, nil)
	if err != nil || r.Stages[0].State == string(slurm.StateCompleted) {
		return err
	}
	s := r.Stages[0]
	code := exitFailure
	if s.ExitCode != nil && *s.ExitCode != 0 {
		code = *s.ExitCode
	}
	return exitError{code: code, msg: fmt.Sprintf("slurmtune: job %s %s", sub.JobID, s.State)}
}
