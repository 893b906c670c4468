package preflight

import (
	"context"
	"errors"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/slurm"
)

// Result is validate's verdict on a pipeline file.
type Result struct {
	File     string    `json:"file"`
	Valid    bool      `json:"valid"`
	Cluster  bool      `json:"cluster_checked"`
	Stages   []string  `json:"stages"`
	Errors   []Problem `json:"errors"`
	Warnings []string  `json:"warnings"`
	// Problems are the file's problems (Errors as FieldErrors).
	Problems jobs.Errors `json:"-"`
	// FileWarnings are the pipeline file's own (FILE:LINE:COL: warning:
	// ...); Warnings are what the cluster check could not check.
	FileWarnings []*jobs.FieldError `json:"-"`
}

// Problem is one problem of a pipeline file.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Set     string `json:"set,omitempty"`
	Message string `json:"message"`
	Text    string `json:"text"`
}

// Connect opens the cluster a pipeline names as a Target; done closes it.
type Connect func(ctx context.Context, c jobs.Cluster) (t Target, done func(), err error)

// ValidateFile is validate's use case: p and loadErr are what jobs.Load
// returned for file. A loaded pipeline on the local transport has the
// files its jobs read looked up on this host; with connect (validate
// --cluster) it is checked against its cluster instead (Validate).
// Problems of the file are in the result, not the error.
func ValidateFile(ctx context.Context, file string, opts jobs.LoadOptions, p *jobs.Pipeline, loadErr error, fsys slurm.FileSystem, connect Connect) (*Result, error) {
	res := &Result{File: file, Cluster: connect != nil, Stages: []string{}, Errors: []Problem{}, Warnings: []string{}}
	err := loadErr
	switch {
	case err != nil:
	case connect == nil:
		res.Stages, res.FileWarnings = p.Stages(), p.Warnings(file)
		if _, err = sweep.Tasks(ctx, p, file, opts, nil); err != nil {
			break
		}
		if p.Cluster.Transport == "local" {
			// The jobs see this host's files: look them up. (Other
			// transports' are looked up with --cluster, and by submit.)
			err = CheckFiles(ctx, fsys, "this host", p, file)
		}
	default:
		res.Stages, res.FileWarnings = p.Stages(), p.Warnings(file)
		t, done, cerr := connect(ctx, p.Cluster)
		if cerr != nil {
			return nil, cerr
		}
		defer done()
		if _, err = sweep.Tasks(ctx, p, file, opts, t.Inspector); err != nil {
			break
		}
		var warnings []string
		res.Problems, warnings, err = Validate(ctx, t, p, file)
		res.Warnings = append(res.Warnings, warnings...)
	}
	if errors.As(err, &res.Problems) {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	res.Valid = len(res.Problems) == 0
	for _, pe := range res.Problems {
		res.Errors = append(res.Errors, Problem{File: pe.File, Line: pe.Pos.Line, Col: pe.Pos.Col, Set: pe.Pos.Set, Message: pe.Msg, Text: pe.Error()})
	}
	return res, nil
}
