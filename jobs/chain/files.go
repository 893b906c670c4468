package chain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/slurmtune/slurmtune/jobs"
)

// Stater looks paths up where the jobs will see them: this host's
// filesystem, or the login node's over SFTP.
type Stater interface {
	Stat(ctx context.Context, path string) (fs.FileInfo, error)
	Glob(ctx context.Context, pattern string) ([]string, error)
}

// CheckFiles looks up every file the jobs will read before anything is
// submitted: the data inputs, the train and eval scripts and interpreters
// given as paths, the toxicity word lists, a base model and a container
// image given as absolute paths. Each missing one is a problem at its key's
// position in file (FILE:LINE:COL); where says where they were looked
// for. An error means the lookup itself failed (the cluster unreachable).
func CheckFiles(ctx context.Context, p *jobs.Pipeline, file, where string, fsys Stater) (jobs.Errors, error) {
	c := fileCheck{ctx: ctx, p: p, file: file, where: where, fs: fsys}
	if p.StageOn(jobs.StagePrep) {
		for i, in := range p.Data.Inputs {
			c.input(fmt.Sprintf("data.inputs[%d]", i), in)
		}
		for i, wl := range p.Data.Toxicity.WordLists {
			c.path(fmt.Sprintf("data.toxicity.word_lists[%d]", i), wl, regular)
		}
	}
	if p.StageOn(jobs.StageTrain) {
		c.path("train.script", p.Train.Script, regular)
		c.interpreter("train.python", p.Train.Python)
		if strings.HasPrefix(p.Model.Base, "/") && c.path("model.base", p.Model.Base, directory) {
			c.path("model.base", path.Join(p.Model.Base, "config.json"), regular)
		}
		if strings.HasPrefix(p.Model.Tokenizer, "/") {
			c.path("model.tokenizer", p.Model.Tokenizer, directory)
		}
		c.path("model.config", p.Model.Config, regular)
	}
	if p.StageOn(jobs.StageEval) {
		c.path("eval.script", p.Eval.Script, regular)
		if p.Eval.Python != p.Train.Python || !p.StageOn(jobs.StageTrain) {
			c.interpreter("eval.python", p.Eval.Python) // not train's again
		}
	}
	if ct := p.Environment.Container; ct != nil && strings.HasPrefix(ct.Image, "/") {
		c.path("environment.container.image", ct.Image, anyKind)
	}
	sort.SliceStable(c.problems, func(i, j int) bool {
		a, b := c.problems[i].Pos, c.problems[j].Pos
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	return c.problems, c.err
}

type kind int

const (
	anyKind kind = iota
	regular
	directory
)

type fileCheck struct {
	ctx      context.Context
	p        *jobs.Pipeline
	file     string
	where    string
	fs       Stater
	problems jobs.Errors
	err      error
}

func (c *fileCheck) bad(key, format string, args ...any) {
	c.problems = append(c.problems, &jobs.FieldError{File: c.file, Pos: c.p.Pos[key], Msg: key + ": " + fmt.Sprintf(format, args...)})
}

// lookupFailed keeps the first error that is not about the path itself.
func (c *fileCheck) lookupFailed(err error) bool {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || err == nil {
		return false
	}
	if c.err == nil {
		c.err = fmt.Errorf("look up the pipeline's files on %s: %w", c.where, err)
	}
	return true
}

// path checks one path and reports whether it is there as wanted.
func (c *fileCheck) path(key, path string, want kind) bool {
	if path == "" || c.err != nil {
		return false
	}
	fi, err := c.fs.Stat(c.ctx, path)
	switch {
	case c.lookupFailed(err):
	case errors.Is(err, fs.ErrNotExist):
		c.bad(key, "%s does not exist on %s", path, c.where)
	case err != nil:
		c.bad(key, "%s cannot be read on %s: %v", path, c.where, err)
	case want == regular && !fi.Mode().IsRegular():
		c.bad(key, "%s on %s is not a regular file", path, c.where)
	case want == directory && !fi.IsDir():
		c.bad(key, "%s on %s is not a directory", path, c.where)
	default:
		return true
	}
	return false
}

// interpreter checks an interpreter given as a path (a bare name is looked
// up on the nodes' PATH when the job runs).
func (c *fileCheck) interpreter(key, path string) {
	if !strings.Contains(path, "/") || c.err != nil {
		return
	}
	fi, err := c.fs.Stat(c.ctx, path)
	switch {
	case c.lookupFailed(err):
	case err != nil:
		c.bad(key, "%s does not exist on %s", path, c.where)
	case fi.IsDir() || fi.Mode().Perm()&0o111 == 0:
		c.bad(key, "%s on %s is not an executable", path, c.where)
	}
}

// input is a file, a directory, or a glob that must match something.
func (c *fileCheck) input(key, in string) {
	if c.err != nil {
		return
	}
	if !strings.ContainsAny(in, "*?[") {
		c.path(key, in, anyKind)
		return
	}
	m, err := c.fs.Glob(c.ctx, in)
	switch {
	case c.lookupFailed(err):
	case err != nil:
		c.bad(key, "%s: %v", in, err)
	case len(m) == 0:
		c.bad(key, "%s matches no file on %s", in, c.where)
	}
}
