package preflight

import (
	"context"
	"errors"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/templates"
)

// CheckFiles looks up the files the jobs will read on fsys, where they
// will see them (where names it in messages); missing ones come back as
// jobs.Errors, problems of the pipeline file.
func CheckFiles(ctx context.Context, fsys slurm.FileSystem, where string, p *jobs.Pipeline, file string) error {
	st, ok := fsys.(chain.Stater)
	if !ok {
		return nil
	}
	errs, err := chain.CheckFiles(ctx, p, file, where, st)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Target is what Validate checks a pipeline against: the connection's
// client (can the transport send every stage?), its inspector, its files,
// and the slurmtune the scripts call there.
type Target struct {
	Client    slurm.Client
	Inspector slurm.Inspector
	FS        slurm.FileSystem
	Where     string
	Slurmtune string
}

// Validate checks a valid pipeline against the cluster (validate
// --cluster): the files the jobs read, that the transport can send every
// stage, and Check on the scripts as they would be submitted. Problems
// come back as jobs.Errors; warnings are what could not be checked; an
// error means the cluster could not be asked.
func Validate(ctx context.Context, t Target, p *jobs.Pipeline, file string) (jobs.Errors, []string, error) {
	var problems jobs.Errors
	if err := CheckFiles(ctx, t.FS, t.Where, p, file); err != nil {
		var files jobs.Errors
		if !errors.As(err, &files) {
			return nil, nil, err
		}
		problems = append(problems, files...)
	}
	ts, err := templates.New()
	if err != nil {
		return nil, nil, err
	}
	svc := &chain.Service{Client: t.Client, Inspector: t.Inspector, Templates: ts, Slurmtune: t.Slurmtune}
	prep, err := svc.Prepare(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	if err := svc.CheckSubmits(prep); err != nil {
		// A stage the transport cannot send (REST: an option it does not map).
		problems = append(problems, &jobs.FieldError{File: file, Msg: err.Error()})
	}
	errs, warnings, err := Check(ctx, t.Inspector, p, file, prep.Scripts)
	if err != nil {
		return nil, nil, err
	}
	return append(problems, errs...), warnings, nil
}
