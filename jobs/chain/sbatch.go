package chain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// `slurmtune sbatch` is a drop-in sbatch for jobs that are not pipelines.
// The job is recorded as a one-stage run (stage templates.WrapperStage,
// named after the script) and runs inside a wrapper that starts the GPU
// exporter on every node of the allocation, runs the user's script with its
// arguments, and stops the exporter when the script ends.
//
// The run directory is <jobs dir>/<run id>/: job.sbatch (the wrapper),
// script (a copy of the user's script, as sbatch itself snapshots it),
// logs/job.log (the job's output unless --output was given; then a symlink
// to it), gpu/samples-<host>.jsonl and gpu/exporter.log.

// SbatchJob is what a `slurmtune sbatch` command line asks for (and, once
// loaded, the script's own directives).
type SbatchJob struct {
	pass []slurm.SbatchOpt // options passed on to sbatch
	// script is the script's path, or "" for --wrap or a script on stdin.
	script string
	args   []string
	wrap   string
	isWrap bool
	wait   bool
	// Set from the options or the script's directives.
	output, jobName, signal string
	hasOutput, hasJobName   bool
	hasComment              bool
	passthrough             bool

	// Set by LoadSbatchJob.
	name, scriptAbs string
	body            []byte
	directives      slurm.Directives
}

// Passthrough reports whether sbatch is to run as is (--help, --usage,
// --version, --test-only).
func (j *SbatchJob) Passthrough() bool { return j.passthrough }

// Wait reports whether the job is to be followed to its end (--wait).
func (j *SbatchJob) Wait() bool { return j.wait }

// SbatchUsageError is a `slurmtune sbatch` command line or script that
// cannot be run as asked.
type SbatchUsageError struct{ Err error }

func (e SbatchUsageError) Error() string { return e.Err.Error() }
func (e SbatchUsageError) Unwrap() error { return e.Err }

// ErrNotBatchScript is sbatch's own refusal of a script without a #! line.
var ErrNotBatchScript = errors.New("sbatch: error: This does not look like a batch script.  The first\n" +
	"sbatch: error: line must start with #! followed by the path to an interpreter.\n" +
	"sbatch: error: For instance: #!/bin/sh")

// ParseSbatchCommandLine reads everything after `slurmtune sbatch`.
func ParseSbatchCommandLine(words []string) (*SbatchJob, error) {
	opts, rest, err := slurm.ParseSbatchOptions(words)
	if err != nil {
		return nil, err
	}
	j := &SbatchJob{}
	for _, o := range opts {
		if j.take(o) {
			j.pass = append(j.pass, o)
		}
	}
	if j.passthrough {
		return j, nil
	}
	if j.isWrap {
		if len(rest) > 0 {
			return nil, fmt.Errorf("--wrap and a script (%s) together", rest[0])
		}
		return j, nil
	}
	if len(rest) > 0 {
		j.script, j.args = rest[0], rest[1:]
	}
	return j, nil
}

// take notes what an option means for the wrapper; it reports whether the
// option is passed on to sbatch.
func (j *SbatchJob) take(o slurm.SbatchOpt) bool {
	switch o.Name {
	case "help", "usage", "version", "test-only":
		j.passthrough = true
	case "wrap":
		j.wrap, j.isWrap = o.Value, true
		return false
	case "wait":
		j.wait = true
		return false
	case "parsable":
		return false
	case "output":
		j.output, j.hasOutput = o.Value, true
	case "job-name":
		j.jobName, j.hasJobName = o.Value, true
	case "comment":
		j.hasComment = true
	case "signal":
		j.signal = o.Value
	}
	return true
}

// LoadSbatchJob parses the command line and reads the script (the file,
// --wrap's command, or stdin) and its #SBATCH directives; nothing is
// recorded or written. Bad usage is a SbatchUsageError.
func LoadSbatchJob(words []string, stdin io.Reader) (*SbatchJob, error) {
	j, err := ParseSbatchCommandLine(words)
	if err != nil {
		return nil, SbatchUsageError{err}
	}
	if j.passthrough {
		return j, nil
	}
	switch {
	case j.isWrap:
		j.body, j.name = []byte("#!/bin/sh\n# This script was created by sbatch --wrap.\n\n"+j.wrap+"\n"), "wrap"
	case j.script != "":
		if j.scriptAbs, err = filepath.Abs(j.script); err != nil {
			return nil, err
		}
		if j.body, err = os.ReadFile(j.script); err != nil {
			return nil, fmt.Errorf("sbatch: unable to open file %s: %w", j.script, err)
		}
		j.name = filepath.Base(j.script)
	default:
		if j.body, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("sbatch: read the script from stdin: %w", err)
		}
		j.name = "sbatch"
	}
	if !bytes.HasPrefix(j.body, []byte("#!")) {
		return nil, ErrNotBatchScript
	}
	if j.directives, err = slurm.ParseDirectives(j.body); err != nil {
		return nil, SbatchUsageError{err}
	}
	fromScript := &SbatchJob{}
	for _, o := range j.directives.Opts {
		fromScript.take(o)
	}
	j.wait = j.wait || fromScript.wait
	if !j.hasOutput && fromScript.hasOutput {
		j.output, j.hasOutput = fromScript.output, true
	}
	if !j.hasJobName && fromScript.hasJobName {
		j.jobName, j.hasJobName = fromScript.jobName, true
	}
	if j.signal == "" {
		j.signal = fromScript.signal
	}
	j.hasComment = j.hasComment || fromScript.hasComment
	for _, o := range append(slices.Clone(j.pass), j.directives.Opts...) {
		if o.Name == "array" {
			return nil, SbatchUsageError{errors.New("--array is not supported by slurmtune sbatch (each array task would need tracking); use sbatch")}
		}
	}
	if !j.hasJobName {
		j.jobName = j.name
	}
	return j, nil
}

// SbatchSubmitted is a job `slurmtune sbatch` submitted and tracks.
type SbatchSubmitted struct {
	RunID, JobID string
	// Log is the job's output as far as it is known at submission.
	Log string
}

// SubmitSbatch records a loaded job as a one-stage run under jobsDir,
// writes its run directory and submits its wrapper through SubmitStage. A
// job sbatch refuses leaves nothing behind; one whose submit outcome stays
// unknown stays recorded for the next command to reconcile.
func (s *Service) SubmitSbatch(ctx context.Context, j *SbatchJob, jobsDir string) (*SbatchSubmitted, error) {
	const stage = templates.WrapperStage
	runID := NewRunID(j.name, s.now())
	dir := filepath.Join(jobsDir, runID)
	l := templates.LayoutOf(dir)
	for _, p := range []string{l.Logs, l.GPU} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("sbatch: create the job directory: %w", err)
		}
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	scriptCopy := filepath.Join(dir, "script")
	wrapperPath := filepath.Join(dir, stage+".sbatch")
	wrapper, err := s.Templates.RenderWrapper(templates.Wrapper{RunID: runID, Dir: dir, GPUDir: l.GPU, Script: scriptCopy,
		Slurmtune: s.Slurmtune, Args: j.args, Directives: j.directives.Lines, Forward: forwardSignals(j.signal)})
	if err == nil {
		err = os.WriteFile(scriptCopy, j.body, 0o700)
	}
	if err == nil {
		err = os.WriteFile(wrapperPath, wrapper, 0o700)
	}
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("sbatch: %w", err)
	}
	run := store.Run{ID: runID, Name: j.name, PipelineFile: j.scriptAbs, RunDir: dir, Transport: s.Transport, Cluster: s.Cluster,
		ClusterConfig: s.ClusterConfig, Submitter: Submitter()}
	if err := s.Store.CreateRun(ctx, run, []string{stage}); err != nil {
		cleanup()
		return nil, err
	}
	var extra []string
	for _, o := range j.pass {
		extra = append(extra, o.Arg())
	}
	output := l.LogPath(stage)
	if j.hasOutput {
		output = j.output
	} else {
		extra = append(extra, "--output="+strings.ReplaceAll(output, "%", "%%"))
	}
	if !j.hasJobName {
		extra = append(extra, "--job-name="+j.jobName)
	}
	req := slurm.SubmitRequest{Script: wrapper, ScriptPath: wrapperPath, ExtraArgs: extra}
	if !j.hasComment {
		req.Comment = StageTag(runID, stage, 1)
	}
	id, err := s.SubmitStage(ctx, runID, stage, req)
	if errors.Is(err, slurm.ErrSubmitUncertain) {
		return nil, fmt.Errorf("%w (run %s: the next slurmtune command looks the job up by its comment)", err, runID)
	}
	var refused refusedError
	if errors.As(err, &refused) {
		// sbatch answered: nothing reached Slurm, so nothing is tracked.
		if derr := s.Store.DeleteUnsubmittedRun(context.WithoutCancel(ctx), runID); derr != nil {
			s.Log.Warn("remove the run of a refused job", "err", derr)
		} else {
			cleanup()
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	// The job is in Slurm: finish recording it even when the caller gives up.
	ctx = context.WithoutCancel(ctx)
	if err := s.Store.FinishSubmission(ctx, runID, store.SubmissionComplete, ""); err != nil {
		return nil, err
	}
	rec := store.SbatchJob{RunID: runID, Script: j.scriptAbs, Args: j.args, Output: output}
	for _, o := range j.pass {
		rec.Options = append(rec.Options, o.Arg())
	}
	if j.hasOutput {
		rec.OutputResolved = resolveOutput(j.output, id, j.jobName, j.pass, j.directives.Opts)
		if rec.OutputResolved != "" {
			// `slurmtune logs RUN job` reads the run's log path.
			if err := os.Symlink(rec.OutputResolved, l.LogPath(stage)); err != nil {
				s.Log.Warn("could not link the job's log", "err", err)
			}
		}
	} else {
		rec.OutputResolved = output
	}
	if err := s.Store.SetSbatchJob(ctx, rec); err != nil {
		return nil, err
	}
	s.Log.Info("tracking the job", "job", id, "run", runID, "log", rec.OutputResolved, "gpu", "slurmtune gpu "+id)
	return &SbatchSubmitted{RunID: runID, JobID: id, Log: rec.OutputResolved}, nil
}

// resolveOutput is the user's --output with what is known at submission
// filled in (%j, %J, %x, %u, %%), made absolute against the job's working
// directory; "" when it holds patterns known only on the node.
func resolveOutput(pattern, jobID, jobName string, cliOpts, scriptOpts []slurm.SbatchOpt) string {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c == '\\' {
			return absFromWorkDir(strings.ReplaceAll(pattern, `\`, ""), cliOpts, scriptOpts)
		}
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		// %N pads, e.g. %4j: skip the width.
		for i < len(pattern) && pattern[i] >= '0' && pattern[i] <= '9' {
			i++
		}
		if i >= len(pattern) {
			return ""
		}
		switch pattern[i] {
		case 'j', 'J':
			b.WriteString(jobID)
		case 'x':
			b.WriteString(jobName)
		case 'u':
			u, err := user.Current()
			if err != nil {
				return ""
			}
			b.WriteString(u.Username)
		case '%':
			b.WriteByte('%')
		default:
			return ""
		}
	}
	return absFromWorkDir(b.String(), cliOpts, scriptOpts)
}

func absFromWorkDir(p string, cliOpts, scriptOpts []slurm.SbatchOpt) string {
	if filepath.IsAbs(p) {
		return p
	}
	wd, _ := os.Getwd()
	for _, opts := range [][]slurm.SbatchOpt{scriptOpts, cliOpts} { // the command line wins
		for _, o := range opts {
			if o.Name == "chdir" {
				if filepath.IsAbs(o.Value) {
					wd = o.Value
				} else {
					wd = filepath.Join(wd, o.Value)
				}
			}
		}
	}
	return filepath.Join(wd, p)
}

// forwardSignals are the signals the wrapper passes on to the user's
// script: USR1 and USR2, and the one --signal=B:SIG sends the batch shell
// alone (Slurm signals every process of the job for a cancel or a time
// limit, so those are not forwarded: the script would get them twice).
func forwardSignals(signal string) []string {
	sigs := []string{"USR1", "USR2"}
	flags, sig, ok := strings.Cut(signal, ":")
	if !ok || !strings.Contains(strings.ToUpper(flags), "B") {
		return sigs
	}
	sig, _, _ = strings.Cut(sig, "@")
	sig = strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if sig == "" || strings.ContainsFunc(sig, func(r rune) bool { return (r < 'A' || r > 'Z') && (r < '0' || r > '9') }) {
		return sigs
	}
	if slices.Contains(sigs, sig) {
		return sigs
	}
	return append(sigs, sig)
}
