package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// `slurmtune sbatch` is a drop-in sbatch for jobs that are not pipelines:
// everything after `sbatch` is sbatch's. The job is recorded as a one-stage
// run (stage "job", named after the script) so status, logs, cancel and gpu
// work on it, and it runs inside a generated wrapper that starts the GPU
// exporter on every node of the allocation, runs the user's script with its
// arguments, and stops the exporter when the script ends.
//
// The run directory is <database dir>/jobs/<run id>/ (by default
// ~/.local/state/slurmtune/jobs/<run id>/): job.sbatch (the wrapper), script
// (a copy of the user's script, as sbatch itself snapshots it),
// logs/job.log (the job's output unless --output was given; then a symlink
// to it), gpu/samples-<host>.jsonl and gpu/exporter.log.

const sbatchStage = "job"

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

// sbatchJob is what a `slurmtune sbatch` command line asks for.
type sbatchJob struct {
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
}

func parseSbatchCommandLine(words []string) (*sbatchJob, error) {
	opts, rest, err := slurm.ParseSbatchOptions(words)
	if err != nil {
		return nil, err
	}
	j := &sbatchJob{}
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
func (j *sbatchJob) take(o slurm.SbatchOpt) bool {
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

// directives are a script's #SBATCH lines (before its first command), as
// sbatch reads them.
type directives struct {
	lines []string // to copy into the wrapper
	opts  []slurm.SbatchOpt
}

func parseDirectives(script []byte) (directives, error) {
	var d directives
	lines := strings.Split(string(script), "\n")
	for _, line := range lines[1:] { // the first is the #! line
		t := strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		switch {
		case t == "":
			continue
		case strings.HasPrefix(line, "#SBATCH"):
			words := directiveWords(line[len("#SBATCH"):])
			opts, rest, err := slurm.ParseSbatchOptions(words)
			if err != nil {
				return d, fmt.Errorf("directive %q: %w", line, err)
			}
			if len(rest) > 0 {
				return d, fmt.Errorf("directive %q: %q is not an option", line, rest[0])
			}
			keep := true
			for _, o := range opts {
				if o.Name == "wait" || o.Name == "parsable" {
					keep = false
				}
			}
			if keep {
				d.lines = append(d.lines, line)
			} else {
				var kept []string
				for _, o := range opts {
					if o.Name != "wait" && o.Name != "parsable" {
						kept = append(kept, quoteDirective(o.Arg()))
					}
				}
				if len(kept) > 0 {
					d.lines = append(d.lines, "#SBATCH "+strings.Join(kept, " "))
				}
			}
			d.opts = append(d.opts, opts...)
		case strings.HasPrefix(t, "#"):
			continue
		default:
			return d, nil
		}
	}
	return d, nil
}

// directiveWords splits a directive's options as sbatch does: on blanks,
// with double or single quotes grouping, up to an unquoted #.
func directiveWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '#' && !inWord:
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

func quoteDirective(w string) string {
	if strings.ContainsAny(w, " \t#'") {
		return `"` + w + `"`
	}
	return w
}

func sbatchRun(ctx context.Context, e *env, words []string, stdin io.Reader) error {
	j, err := parseSbatchCommandLine(words)
	if err != nil {
		return usagef("sbatch: %v", err)
	}
	if j.passthrough {
		return sbatchDirect(ctx, e, words, stdin)
	}
	var script []byte
	var name, scriptAbs string
	switch {
	case j.isWrap:
		script, name = []byte("#!/bin/sh\n# This script was created by sbatch --wrap.\n\n"+j.wrap+"\n"), "wrap"
	case j.script != "":
		if scriptAbs, err = filepath.Abs(j.script); err != nil {
			return err
		}
		if script, err = os.ReadFile(j.script); err != nil {
			return fmt.Errorf("sbatch: unable to open file %s: %w", j.script, err)
		}
		name = filepath.Base(j.script)
	default:
		if script, err = io.ReadAll(stdin); err != nil {
			return fmt.Errorf("sbatch: read the script from stdin: %w", err)
		}
		name = "sbatch"
	}
	if !bytes.HasPrefix(script, []byte("#!")) {
		return exitError{code: exitFailure, msg: "sbatch: error: This does not look like a batch script.  The first\n" +
			"sbatch: error: line must start with #! followed by the path to an interpreter.\n" +
			"sbatch: error: For instance: #!/bin/sh"}
	}
	d, err := parseDirectives(script)
	if err != nil {
		return usagef("sbatch: %v", err)
	}
	fromScript := &sbatchJob{}
	for _, o := range d.opts {
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
	for _, o := range append(slices.Clone(j.pass), d.opts...) {
		if o.Name == "array" {
			return usagef("sbatch: --array is not supported by slurmtune sbatch (each array task would need tracking); use sbatch")
		}
	}
	if !j.hasJobName {
		j.jobName = name
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
	cl, err := connect(ctx, e, jobs.Cluster{Transport: "local"})
	if err != nil {
		return err
	}
	defer cl.close()

	runID := chain.NewRunID(name, time.Now())
	dir := filepath.Join(filepath.Dir(dbAbs), "jobs", runID)
	l := templates.LayoutOf(dir)
	gpuDir := filepath.Join(dir, nvml.SamplesDirName)
	for _, p := range []string{l.Logs, gpuDir} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("sbatch: create the job directory: %w", err)
		}
	}
	cleanup := func() { os.RemoveAll(dir) }
	scriptCopy := filepath.Join(dir, "script")
	wrapperPath := filepath.Join(dir, sbatchStage+".sbatch")
	wrapper := sbatchWrapper(runID, dir, gpuDir, scriptCopy, cl.slurmtune, j.args, d.lines, forwardSignals(j.signal))
	if err := os.WriteFile(scriptCopy, script, 0o700); err != nil {
		cleanup()
		return fmt.Errorf("sbatch: %w", err)
	}
	if err := os.WriteFile(wrapperPath, wrapper, 0o700); err != nil {
		cleanup()
		return fmt.Errorf("sbatch: %w", err)
	}

	run := store.Run{ID: runID, Name: name, PipelineFile: scriptAbs, RunDir: dir, Transport: "local", Cluster: cl.name,
		ClusterConfig: cl.config, Submitter: chain.Submitter()}
	if err := st.CreateRun(ctx, run, []string{sbatchStage}); err != nil {
		cleanup()
		return err
	}
	if err := st.RecordIntent(ctx, runID, sbatchStage); err != nil {
		return err
	}
	var extra []string
	for _, o := range j.pass {
		extra = append(extra, o.Arg())
	}
	output := l.LogPath(sbatchStage)
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
		req.Comment = chain.StageTag(runID, sbatchStage, 1)
	}
	id, err := cl.client.Submit(ctx, req)
	if err != nil {
		if errors.Is(err, slurm.ErrSubmitUncertain) {
			return fmt.Errorf("%w (run %s: the next slurmtune command looks the job up by its comment)", err, runID)
		}
		// sbatch answered: nothing reached Slurm, so nothing is tracked.
		bg := context.WithoutCancel(ctx)
		if cerr := st.ClearIntent(bg, runID, sbatchStage); cerr != nil {
			e.log.Warn("clear intent", "err", cerr)
		}
		if derr := st.DeleteUnsubmittedRun(bg, runID); derr != nil {
			e.log.Warn("remove the run of a refused job", "err", derr)
		} else {
			cleanup()
		}
		var ee *cmdline.ExitError
		if errors.As(err, &ee) {
			fmt.Fprint(e.stderr, ee.Stderr)
			return exitError{code: max(ee.Code, 1)}
		}
		return err
	}
	if err := st.RecordSubmitted(ctx, runID, sbatchStage, cl.name, id); err != nil {
		return err
	}
	if err := st.FinishSubmission(ctx, runID, store.SubmissionComplete, ""); err != nil {
		return err
	}
	rec := store.SbatchJob{RunID: runID, Script: scriptAbs, Args: j.args, Output: output}
	for _, o := range j.pass {
		rec.Options = append(rec.Options, o.Arg())
	}
	if j.hasOutput {
		rec.OutputResolved = resolveOutput(j.output, id, j.jobName, j.pass, d.opts)
		if rec.OutputResolved != "" {
			// `slurmtune logs RUN job` reads the run's log path.
			if err := os.Symlink(rec.OutputResolved, l.LogPath(sbatchStage)); err != nil {
				e.log.Warn("could not link the job's log", "err", err)
			}
		}
	} else {
		rec.OutputResolved = output
	}
	if err := st.SetSbatchJob(ctx, rec); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, id)
	e.log.Info("tracking the job", "job", id, "run", runID, "log", rec.OutputResolved, "gpu", "slurmtune gpu "+id)
	if !j.wait {
		return nil
	}
	svc, err := e.service(st, cl)
	if err != nil {
		return err
	}
	r, err := svc.Follow(ctx, runID, 2*time.Second, nil)
	if err != nil {
		return err
	}
	s := r.Stages[0]
	if s.State == string(slurm.StateCompleted) {
		return nil
	}
	code := exitFailure
	if s.ExitCode != nil && *s.ExitCode != 0 {
		code = *s.ExitCode
	}
	return exitError{code: code, msg: fmt.Sprintf("slurmtune: job %s %s", id, s.State)}
}

// sbatchDirect runs sbatch itself with the arguments as given.
func sbatchDirect(ctx context.Context, e *env, words []string, stdin io.Reader) error {
	cmd := exec.CommandContext(ctx, "sbatch", words...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, e.stdout, e.stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{code: max(ee.ExitCode(), 1)}
	}
	return err
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
	if sig == "" || strings.ContainsFunc(sig, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) {
		return sigs
	}
	for _, s := range sigs {
		if s == sig {
			return sigs
		}
	}
	return append(sigs, sig)
}

// sbatchWrapper is the batch script actually submitted.
func sbatchWrapper(runID, dir, gpuDir, script, slurmtune string, args, directives, forward []string) []byte {
	q := templates.Quote
	var b strings.Builder
	fmt.Fprintf(&b, `#!/bin/bash
# Generated by slurmtune sbatch for run %s: runs the job's script (a copy,
# %s) with the GPU exporter on every node of the allocation, then stops it.
`, runID, script)
	if len(directives) > 0 {
		b.WriteString("# The script's own directives:\n")
		for _, d := range directives {
			b.WriteString(d + "\n")
		}
	}
	fmt.Fprintf(&b, `
export SLURMTUNE_RUN_ID=%s SLURMTUNE_STAGE=%s SLURMTUNE_RUN_DIR=%s
slurmtune_gpu_dir=%s
slurmtune_nodes=${SLURM_JOB_NUM_NODES:-1}
slurmtune_exporter=''
mkdir -p "$slurmtune_gpu_dir" 2>/dev/null
if [ "${SLURMTUNE_GPU_EXPORTER:-1}" != 0 ] && command -v srun >/dev/null 2>&1; then
	# One exporter per node, sharing the job's resources (--overlap).
	srun --overlap --quiet --job-name=slurmtune-exporter --kill-on-bad-exit=0 \
		--nodes="$slurmtune_nodes" --ntasks="$slurmtune_nodes" --ntasks-per-node=1 \
		/bin/sh -c 'exec "$0" exporter --listen "" --interval "$2" --samples "$1/samples-$(uname -n).jsonl"' \
		%s "$slurmtune_gpu_dir" "${SLURMTUNE_GPU_INTERVAL:-5s}" \
		</dev/null >>"$slurmtune_gpu_dir/exporter.log" 2>&1 &
	slurmtune_exporter=$!
fi

slurmtune_stop_exporter() {
	[ -n "$slurmtune_exporter" ] || return 0
	# Give a short job's exporters time to record at least their first line.
	local i n step
	for i in $(seq 50); do
		n=$(find "$slurmtune_gpu_dir" -maxdepth 1 -name 'samples-*.jsonl' 2>/dev/null | wc -l)
		[ "$n" -ge "$slurmtune_nodes" ] && break
		kill -0 "$slurmtune_exporter" 2>/dev/null || break
		sleep 0.2
	done
	# SIGTERM to the exporter step's tasks: they flush and exit 0.
	step=$(squeue --steps --jobs="$SLURM_JOB_ID" --noheader --format='%%i %%j' 2>/dev/null | awk '$2 == "slurmtune-exporter" { print $1; exit }')
	[ -n "$step" ] && scancel --signal=TERM "$step" 2>/dev/null
	for i in $(seq 75); do
		kill -0 "$slurmtune_exporter" 2>/dev/null || break
		sleep 0.2
	done
	kill -TERM "$slurmtune_exporter" 2>/dev/null
	wait "$slurmtune_exporter" 2>/dev/null
	return 0
}

%s %s <&0 &
slurmtune_child=$!
`, q(runID), sbatchStage, q(dir), q(gpuDir), q(slurmtune), q(script), templates.QuoteArgs(args))
	for _, s := range forward {
		fmt.Fprintf(&b, "trap 'kill -%s \"$slurmtune_child\" 2>/dev/null' %s\n", s, s)
	}
	b.WriteString(`while :; do
	wait "$slurmtune_child"
	slurmtune_rc=$?
	# A forwarded signal interrupts wait: wait again while the script runs.
	if [ "$slurmtune_rc" -gt 128 ] && kill -0 "$slurmtune_child" 2>/dev/null; then
		continue
	fi
	break
done
slurmtune_stop_exporter
exit "$slurmtune_rc"
`)
	return []byte(b.String())
}
