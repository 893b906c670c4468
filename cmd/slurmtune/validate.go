package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/templates"
)

type validateOptions struct {
	file    string
	cluster bool
	json    bool
}

// validateResult is what validate --json prints.
type validateResult struct {
	File     string        `json:"file"`
	Valid    bool          `json:"valid"`
	Cluster  bool          `json:"cluster_checked"`
	Stages   []string      `json:"stages"`
	Errors   []problemJSON `json:"errors"`
	Warnings []string      `json:"warnings"`
	problems jobs.Errors   `json:"-"`
	// fileWarnings are the pipeline file's own (FILE:LINE:COL: warning: ...).
	fileWarnings []*jobs.FieldError
}

// problemJSON is one problem of a pipeline file.
type problemJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Set     string `json:"set,omitempty"`
	Message string `json:"message"`
	Text    string `json:"text"`
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a pipeline file; exit 0 when valid, 2 with FILE:LINE:COL messages when not",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			setFlag(),
			&cli.BoolFlag{Name: "cluster", Usage: "also check against the cluster: partition, nodes, time limits, account, QOS, sbatch --test-only (exit 1 when it cannot be reached)"},
			jsonFlag(`print {"file", "valid", "cluster_checked", "stages", "errors": [{"file", "line", "col", "set", "message", "text"}], "warnings"}`),
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			o := validateOptions{file: c.Args().First(), cluster: c.Bool("cluster"), json: c.Bool("json")}
			res, err := validatePipeline(c, e, o)
			if err != nil {
				return err
			}
			return printValidate(e, o, res)
		},
	}
}

// validatePipeline loads the file and, with --cluster, checks it against
// the cluster. Problems of the file are in the result, not the error.
func validatePipeline(c *cli.Context, e *env, o validateOptions) (*validateResult, error) {
	res := &validateResult{File: o.file, Cluster: o.cluster, Stages: []string{}, Errors: []problemJSON{}, Warnings: []string{}}
	p, err := loadPipeline(c)
	var perrs jobs.Errors
	if errors.As(err, &perrs) {
		res.problems = perrs
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	res.Stages = p.Stages()
	res.fileWarnings = p.Warnings(o.file)
	if !o.cluster && p.Sweep != nil {
		if res.problems, err = sweepProblems(c, p, nil); len(res.problems) > 0 || err != nil {
			return res, err
		}
	}
	if !o.cluster {
		if p.Cluster.Transport == "local" {
			// The jobs see this host's files: look them up. (Other
			// transports' are looked up with --cluster, and by submit.)
			res.problems, err = chain.CheckFiles(c.Context, p, o.file, "this host", local.FS{})
		}
		return res, err
	}
	cl, err := connect(c.Context, e, p.Cluster)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	if res.problems, err = sweepProblems(c, p, cl.client); len(res.problems) > 0 || err != nil {
		return res, err
	}
	var files jobs.Errors
	if err := cl.checkFiles(c.Context, p, o.file); errors.As(err, &files) {
		res.problems = append(res.problems, files...)
	} else if err != nil {
		return nil, err
	}
	ts, err := templates.New()
	if err != nil {
		return nil, err
	}
	svc := &chain.Service{Client: cl.client, Templates: ts, Slurmtune: cl.slurmtune}
	prep, err := svc.Prepare(p)
	if err != nil {
		return nil, err
	}
	if err := svc.CheckSubmits(prep); err != nil {
		// A stage the transport cannot send (REST: an option it does not map).
		res.problems = append(res.problems, &jobs.FieldError{File: o.file, Msg: err.Error()})
	}
	errs, warnings, err := preflight(c.Context, cl.runner, p, o.file, prep.Scripts)
	if err != nil {
		return nil, err
	}
	res.problems, res.Warnings = append(res.problems, errs...), append(res.Warnings, warnings...)
	return res, nil
}

// printValidate prints the verdict: lines (problems on stderr) or JSON on
// stdout; exit 2 when the file has problems.
func printValidate(e *env, o validateOptions, res *validateResult) error {
	res.Valid = len(res.problems) == 0
	for _, pe := range res.problems {
		res.Errors = append(res.Errors, problemJSON{File: pe.File, Line: pe.Pos.Line, Col: pe.Pos.Col, Set: pe.Pos.Set,
			Message: pe.Msg, Text: pe.Error()})
	}
	if o.json {
		for _, w := range res.fileWarnings {
			res.Warnings = append(res.Warnings, w.Error())
		}
		if err := printJSON(e.stdout, res); err != nil {
			return err
		}
		if !res.Valid {
			return exitError{code: exitInvalid}
		}
		return nil
	}
	for _, w := range res.fileWarnings {
		fmt.Fprintln(e.stderr, w.Error())
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "%s: warning: %s\n", o.file, w)
	}
	if !res.Valid {
		return res.problems
	}
	if o.cluster {
		fmt.Fprintf(e.stdout, "%s: valid, and the cluster can run it (stages: %v)\n", o.file, res.Stages)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: valid (stages: %v)\n", o.file, res.Stages)
	return nil
}
