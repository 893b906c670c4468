// Package templates renders the sbatch script of each pipeline stage from
// embedded text/templates. Every value that comes from the user reaches the
// shell single-quoted; templates run with missingkey=error.
package templates

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
)

//go:embed sbatch/*.tmpl
var files embed.FS

// Set is the parsed templates; make one with New and reuse it.
type Set struct {
	t *template.Template
}

// New parses the embedded templates.
func New() (*Set, error) {
	t, err := template.New("sbatch").Option("missingkey=error").Funcs(template.FuncMap{
		"q":     Quote,
		"qargs": QuoteArgs,
		// fail stops rendering with an error (what a template cannot render).
		"fail": func(format string, args ...any) (string, error) {
			return "", fmt.Errorf(format, args...)
		},
	}).ParseFS(files, "sbatch/*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	return &Set{t: t}, nil
}

// Run is what rendering needs to know about the run beyond the pipeline.
type Run struct {
	ID  string
	Dir string // absolute run directory on the cluster
	// Slurmtune is the slurmtune binary as the compute nodes see it.
	Slurmtune string
	// MaxTime is the train partition's MaxTime (0: unknown or unlimited).
	// With train.chain_time_limit the train job asks for at most this
	// long and requeues itself at the limit.
	MaxTime time.Duration
	// DataDir is the prep output when it is not Dir's own: a sweep task's
	// directory (tasks/K of the run) reads the run's data.
	DataDir string
}

// Layout is where a run keeps its files, relative to nothing: all absolute.
type Layout struct {
	Dir, Logs, Data, Checkpoints, Eval, Pipeline, Hparams string
	// Metrics holds each stage's metrics file (MetricsPath).
	Metrics string
	// GPU holds the GPU exporter's samples-<host>.jsonl and its log.
	GPU string
}

// LayoutOf returns the file layout of a run directory.
func LayoutOf(dir string) Layout {
	return Layout{
		Dir:         dir,
		Logs:        filepath.Join(dir, "logs"),
		Data:        filepath.Join(dir, "data"),
		Checkpoints: filepath.Join(dir, "checkpoints"),
		Eval:        filepath.Join(dir, "eval"),
		Pipeline:    filepath.Join(dir, "pipeline.yaml"),
		Hparams:     filepath.Join(dir, "hyperparameters.json"),
		Metrics:     filepath.Join(dir, "metrics"),
		GPU:         filepath.Join(dir, "gpu"),
	}
}

// MetricsPath is the metrics file of a stage ($SLURMTUNE_METRICS_FILE):
// JSON lines the stage's payload appends (see the README's payload contract).
func (l Layout) MetricsPath(stage string) string { return filepath.Join(l.Metrics, stage+".jsonl") }

// StageMetricsPath is MetricsPath of a stage as the store names it: a
// sweep task's (train[K]) is in its own directory, tasks/K.
func (l Layout) StageMetricsPath(name string) string {
	if stage, k, ok := jobs.ParseTaskStage(name); ok {
		return LayoutOf(TaskDir(l.Dir, k)).MetricsPath(stage)
	}
	return l.MetricsPath(name)
}

// StageLogPath is LogPath of a stage as the store names it: a sweep
// task's (train[K]) is in its own directory, tasks/K.
func (l Layout) StageLogPath(name string) string {
	if stage, k, ok := jobs.ParseTaskStage(name); ok {
		return LayoutOf(TaskDir(l.Dir, k)).LogPath(stage)
	}
	return l.LogPath(name)
}

// LogPath is the log file of a stage.
func (l Layout) LogPath(stage string) string { return filepath.Join(l.Logs, stage+".log") }

// Comment is the tag every job of a run carries.
func Comment(runID, stage string) string { return "slurmtune:" + runID + ":" + stage }

// Script is one rendered stage.
type Script struct {
	Stage string
	Body  []byte
	// Log is the stage's log path; it is always passed to sbatch as
	// --output too, since not every path can stand in an #SBATCH line.
	Log string
}

// Render renders the script of every enabled stage, in chain order.
func (s *Set) Render(p *jobs.Pipeline, run Run) ([]Script, error) {
	var out []Script
	for _, stage := range p.Stages() {
		d := stageData(p, run, stage)
		var buf bytes.Buffer
		if err := s.t.ExecuteTemplate(&buf, stage+".sbatch.tmpl", d); err != nil {
			return nil, fmt.Errorf("render %s: %w", stage, err)
		}
		out = append(out, Script{Stage: stage, Body: buf.Bytes(), Log: d.Log})
	}
	return out, nil
}

// Hyperparameters is the JSON file the training payload reads.
func Hyperparameters(p *jobs.Pipeline) ([]byte, error) {
	hp := p.Train.Hyperparameters
	if hp == nil {
		hp = map[string]any{}
	}
	b, err := json.MarshalIndent(hp, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("hyperparameters: %w", err)
	}
	return append(b, '\n'), nil
}

type envVar struct{ Name, Value string }

type data struct {
	RunID, Stage, JobName, Comment, Log string
	DirectiveSafeLogs                   bool
	Partition, Account, QOS             string
	// Options are the stage's other Slurm options (constraint,
	// reservation, exclusive, GPU type, mail, sbatch_args).
	Options                                 jobs.SlurmOptions
	Nodes, TasksPerNode, CPUs, GPUsPerNode  int
	Mem, Time                               string
	RunDir, DataDir, CheckpointDir, EvalDir string
	HparamsFile, PipelineFile, Slurmtune    string
	MetricsFile                             string
	Modules, Setup                          []string
	Env                                     []envVar
	// SecretFiles are environment.secrets given by file: Value is the
	// file's path as a shell word ("$HOME"/... for ~/...).
	SecretFiles []envVar
	Launcher    string
	Program     []string
	// StepWrap is what a one-task stage's program (prep, eval, the model
	// server) runs under: its container, with a trailing space; "" for none.
	StepWrap                      string
	PortBase, PortRange, SrunWait int
	Strategy                      string
	Train                         trainData
	// The serving job a blue-green or canary deploy starts.
	ServeModel, ServeName, ServeStartup string
}

// ServeStage is the pseudo-stage of the serving job a deploy starts.
const ServeStage = "serve"

// RenderServe renders the serving job's script for a blue-green or canary
// deploy of checkpoint (the deploy stage renders and submits it). The job is
// tagged slurmtune:<run>:serve, logs to logs/serve.log and runs
// deploy.serve.command under `slurmtune deploy serve`.
func (s *Set) RenderServe(p *jobs.Pipeline, run Run, checkpoint string) (Script, error) {
	d := stageData(p, run, jobs.StageDeploy)
	l := LayoutOf(run.Dir)
	d.Stage, d.JobName, d.Comment, d.Log = ServeStage, JobName(p.Name, ServeStage), Comment(run.ID, ServeStage), l.LogPath(ServeStage)
	d.MetricsFile = l.MetricsPath(ServeStage)
	d.DirectiveSafeLogs = directiveSafe(d.Log)
	sv := p.Deploy.Serve
	d.CPUs, d.Mem, d.Time, d.GPUsPerNode = max(sv.CPUs, 1), sv.Mem.Slurm(), sv.Time.Slurm(), sv.GPUs
	d.setSlurmOptions(p, sv.SlurmOptions)
	if sv.Container != nil {
		var extra []string
		if rel, err := filepath.Rel(run.Dir, checkpoint); err != nil || strings.HasPrefix(rel, "..") {
			extra = append(extra, checkpoint) // a checkpoint outside the run directory
		}
		d.StepWrap = stepWrap(sv.Container, sv.GPUs > 0, extra...)
	}
	if sv.Mem.MiB == 0 {
		d.Mem = "2048M"
	}
	d.Program = sv.Command
	if len(d.Program) == 0 {
		d.Program = jobs.DefaultServeCommand
	}
	d.ServeModel, d.ServeName, d.ServeStartup = checkpoint, p.Model.Name, sv.StartupTimeout.String()
	if sv.StartupTimeout.Duration == 0 {
		d.ServeStartup = "10m0s"
	}
	var buf bytes.Buffer
	if err := s.t.ExecuteTemplate(&buf, "serve.sbatch.tmpl", d); err != nil {
		return Script{}, fmt.Errorf("render serve: %w", err)
	}
	return Script{Stage: ServeStage, Body: buf.Bytes(), Log: d.Log}, nil
}

// SelectStage is a sweep's stage that picks the winner, between the eval
// array and deploy.
const SelectStage = "select"

// RenderSelect renders a sweep's select job (1 CPU, 256M, 10 minutes).
func (s *Set) RenderSelect(p *jobs.Pipeline, run Run) (Script, error) {
	d := stageData(p, run, SelectStage)
	d.CPUs, d.Mem, d.Time = 1, "256M", "00:10:00"
	var buf bytes.Buffer
	if err := s.t.ExecuteTemplate(&buf, "select.sbatch.tmpl", d); err != nil {
		return Script{}, fmt.Errorf("render select: %w", err)
	}
	return Script{Stage: SelectStage, Body: buf.Bytes(), Log: d.Log}, nil
}

// ArrayScript is the script of a sweep's train or eval array: the #SBATCH
// lines every task shares (taken from a task's script, less --output, which
// the array passes with %a) and a line that runs the task's own script,
// tasks/$SLURM_ARRAY_TASK_ID/STAGE.sbatch, in its place (signals, requeues
// and exit codes are the task script's). array is its --array (the tasks,
// and %N for how many run at once); sbatch's own --array, as a retry of one
// task passes, overrides it.
func ArrayScript(runDir, stage, array string, task []byte) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	b.WriteString("#SBATCH --array=" + array + "\n")
	for _, line := range Directives(task) {
		if !strings.HasPrefix(line, "#SBATCH --output=") {
			b.WriteString(line + "\n")
		}
	}
	b.WriteString("# A sweep's " + stage + " array: each task runs its own script, with its own settings.\n")
	b.WriteString("exec " + Quote(TaskDir(runDir, -1)) + "\"/$SLURM_ARRAY_TASK_ID/" + stage + ".sbatch\"\n")
	return []byte(b.String())
}

// Directives returns a script's #SBATCH lines (up to its first command, as
// sbatch reads them).
func Directives(script []byte) []string {
	var out []string
	for i, line := range strings.Split(string(script), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case i == 0 && strings.HasPrefix(t, "#!"):
		case strings.HasPrefix(t, "#SBATCH"):
			out = append(out, t)
		case t == "" || strings.HasPrefix(t, "#"):
		default:
			return out
		}
	}
	return out
}

// TaskDir is the directory of a sweep's task k in runDir (k < 0: the
// directory that holds them all).
func TaskDir(runDir string, k int) string {
	if k < 0 {
		return filepath.Join(runDir, "tasks")
	}
	return filepath.Join(runDir, "tasks", fmt.Sprint(k))
}

func stageData(p *jobs.Pipeline, run Run, stage string) data {
	l := LayoutOf(run.Dir)
	d := data{
		RunID: run.ID, Stage: stage,
		JobName: JobName(p.Name, stage), Comment: Comment(run.ID, stage),
		Log:       l.LogPath(stage),
		Partition: p.Cluster.Partition, Account: p.Cluster.Account, QOS: p.Cluster.QOS,
		Nodes: 1, TasksPerNode: 1,
		RunDir: l.Dir, DataDir: l.Data, CheckpointDir: l.Checkpoints, EvalDir: l.Eval,
		HparamsFile: l.Hparams, PipelineFile: l.Pipeline, Slurmtune: run.Slurmtune, MetricsFile: l.MetricsPath(stage),
		Modules: p.Environment.Modules, Setup: p.Environment.Setup,
		PortBase: 20000, PortRange: 20000, SrunWait: 60,
		Strategy: p.Deploy.Strategy,
	}
	if run.DataDir != "" {
		d.DataDir = run.DataDir
	}
	d.DirectiveSafeLogs = directiveSafe(d.Log)
	keys := make([]string, 0, len(p.Environment.Env))
	for k := range p.Environment.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d.Env = append(d.Env, envVar{k, p.Environment.Env[k]})
	}
	d.SecretFiles = secretFiles(p)
	var c jobs.StageCommon
	switch stage {
	case jobs.StagePrep:
		c = p.Prep
		if filepath.IsAbs(run.Slurmtune) {
			// The binary itself runs in the container.
			d.StepWrap = stepWrap(p.Prep.Container, false, filepath.Dir(run.Slurmtune))
		} else {
			d.StepWrap = stepWrap(p.Prep.Container, false)
		}
	case jobs.StageTrain:
		c = p.Train.StageCommon
		d.Nodes, d.TasksPerNode, d.GPUsPerNode = p.Train.Nodes, p.Train.TasksPerNode, p.Train.GPUsPerNode
		d.Launcher = p.Train.Launcher
		d.Program = append([]string{p.Train.Python, p.Train.Script}, p.Train.Args...)
		d.Train = newTrainData(p, run)
		if p.Train.MasterPortBase > 0 {
			d.PortBase, d.PortRange = p.Train.MasterPortBase, p.Train.MasterPortRange()
		}
	case jobs.StageEval:
		c = p.Eval.StageCommon
		d.Program = append([]string{p.Eval.Python, p.Eval.Script}, p.Eval.Args...)
		d.GPUsPerNode, d.StepWrap = p.Eval.GPUs, evalWrap(p)
	case jobs.StageDeploy:
		c = p.Deploy.StageCommon
	}
	d.CPUs, d.Mem, d.Time = c.CPUs, c.Mem.Slurm(), c.Time.Slurm()
	d.setSlurmOptions(p, c.SlurmOptions)
	if stage == jobs.StageTrain {
		d.Time = jobs.Duration{Duration: p.Train.ChainedTime(run.MaxTime)}.Slurm()
	}
	return d
}

// setSlurmOptions applies a stage's own Slurm options over the cluster
// section's partition, account and QOS.
func (d *data) setSlurmOptions(p *jobs.Pipeline, o jobs.SlurmOptions) {
	d.Partition, d.Account, d.QOS = p.Cluster.Partition, p.Cluster.Account, p.Cluster.QOS
	if o.Partition != "" {
		d.Partition = o.Partition
	}
	if o.Account != "" {
		d.Account = o.Account
	}
	if o.QOS != "" {
		d.QOS = o.QOS
	}
	d.Options = o
}

// secretFiles lists the secrets a script reads from files, by name.
func secretFiles(p *jobs.Pipeline) []envVar {
	var out []envVar
	for name, s := range p.Environment.Secrets {
		if s.File == "" {
			continue
		}
		word := Quote(s.File)
		if rest, ok := strings.CutPrefix(s.File, "~/"); ok {
			word = `"$HOME"/` + Quote(rest)
		}
		out = append(out, envVar{name, word})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var jobNameUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// JobName is the Slurm job name of a stage: the pipeline name reduced to
// characters that are safe everywhere, then the stage.
func JobName(pipeline, stage string) string {
	n := strings.Trim(jobNameUnsafe.ReplaceAllString(pipeline, "-"), "-")
	if len(n) > 40 {
		n = n[:40]
	}
	if n == "" {
		n = "pipeline"
	}
	return "st-" + n + "-" + stage
}

// directiveSafe reports whether a path can stand in an #SBATCH line as is.
func directiveSafe(p string) bool {
	return !strings.ContainsAny(p, " \t\n\"'\\%$`#;&|<>()*?[]{}")
}

// Quote quotes s for a POSIX shell: the shell reads it back as exactly s.
func Quote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_./=:@+,", r)
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// QuoteArgs quotes each argument and joins them with spaces.
func QuoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}
