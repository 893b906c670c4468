package nvml

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

// GPU telemetry of runs.
//
// Samples: every exporter started for a run appends JSON lines (Sample:
// one line per GPU per collection, or one {"nvml":"unavailable",...} status
// line) to <run dir>/gpu/samples-<host>.jsonl. `slurmtune gpu` and `status`
// read whatever was appended since they last looked (State keeps each
// file's offset and per-stage per-GPU aggregates), attributing each line to
// a stage by its Slurm job id ("job"), else by time (status lines carry no
// job id).
//
// GPU-hours: allocated GPUs x elapsed per job, from Slurm accounting (sacct
// AllocTRES gres/gpu=N x ElapsedRaw, summed over requeues), or, when
// accounting cannot be asked or has no gres/gpu, for the train stage of a
// pipeline, train.nodes x train.gpus_per_node x the elapsed time slurmtune
// tracked.

const (
	// SamplesDirName is the directory of a run (or job) directory that the
	// exporters write their samples files into.
	SamplesDirName = "gpu"
	// Telemetrytle is how long after a run ended its samples files are still
	// read (the exporters flush as they stop).
	Telemetrytle = 2 * time.Minute
	// gpuReadBudget bounds how much of one samples file one command reads;
	// the rest is read by the next.
	gpuReadBudget = 64 << 20
	gpuChunk      = 1 << 20
	// maxSampleLine: a longer line is skipped as malformed.
	maxSampleLine = 4 << 20
	// gpuUnattributed is the stage of lines no stage can be found for.
	gpuUnattributed = "unattributed"
)

type StageView struct {
	Stage          string   `json:"stage"`
	JobID          string   `json:"job_id"`
	State          string   `json:"state"`
	GPUs           int      `json:"gpus"`
	ElapsedS       int64    `json:"elapsed_s"`
	GPUHours       *float64 `json:"gpu_hours"`
	GPUHoursSource string   `json:"gpu_hours_source,omitempty"`
	Report         Report   `json:"report"`
}

type RunView struct {
	Run            string      `json:"run"`
	Name           string      `json:"name"`
	State          string      `json:"state"`
	RunDir         string      `json:"run_dir"`
	SamplesDir     string      `json:"samples_dir"`
	Telemetry      bool        `json:"telemetry"`
	Message        string      `json:"message,omitempty"`
	Underutilized  []string    `json:"underutilized"`
	GPUHours       *float64    `json:"gpu_hours"`
	GPUHoursSource string      `json:"gpu_hours_source,omitempty"`
	Stages         []StageView `json:"stages"`
}

// Show is what `slurmtune gpu` shows of a run (of one stage when
// onlyStage is set): its samples are read first, and accounting is asked
// with askSlurm.
func (g *Telemetry) Show(ctx context.Context, r *store.Run, onlyStage string, askSlurm bool) RunView {
	info := g.Summarize(ctx, []*store.Run{r}, true, askSlurm)[r.ID]
	out := RunView{Run: r.ID, Name: r.Name, State: r.State, RunDir: r.RunDir, SamplesDir: filepath.Join(r.RunDir, SamplesDirName),
		Underutilized: []string{}, Stages: []StageView{}}
	var names []string
	for _, s := range r.Stages {
		names = append(names, s.Name)
	}
	if info.State != nil {
		for _, s := range info.State.Stages() {
			if !slices.Contains(names, s) {
				names = append(names, s)
			}
		}
	}
	for _, name := range names {
		if onlyStage != "" && name != onlyStage {
			continue
		}
		sg := info.Stages[name]
		hasTelemetry := info.State != nil && info.State.HasStage(name)
		if onlyStage == "" && !hasTelemetry && (sg == nil || sg.GPUs == 0) {
			continue // a stage without GPUs: nothing to say
		}
		sj := StageView{Stage: name}
		if stg := stageNamed(r, name); stg != nil {
			sj.JobID, sj.State, sj.ElapsedS = stg.JobID, stg.State, int64(stg.Elapsed/time.Second)
		}
		if sg != nil {
			sj.GPUs, sj.GPUHours, sj.GPUHoursSource = sg.GPUs, sg.Hours, sg.Source
		}
		if info.State != nil {
			sj.Report = info.State.Report(name)
		} else {
			sj.Report = ReportOf(nil, nil)
		}
		if !sj.Report.Telemetry && !hasTelemetry {
			sj.Report.Message = noSamplesMessage(r, name, out.SamplesDir)
		}
		if sj.Report.Telemetry {
			out.Telemetry = true
		}
		if sj.Report.Underutilized {
			out.Underutilized = append(out.Underutilized, name)
		}
		out.Stages = append(out.Stages, sj)
	}
	out.GPUHours, out.GPUHoursSource = info.Hours, info.Source
	switch {
	case out.Telemetry:
	case len(out.Stages) == 0:
		out.Message = "no GPU telemetry: " + noSamplesWhy(r, out.SamplesDir)
	default:
		var msgs []string
		for _, s := range out.Stages {
			if !slices.Contains(msgs, s.Report.Message) {
				msgs = append(msgs, s.Report.Message)
			}
		}
		out.Message = strings.Join(msgs, "\n")
	}
	return out
}

func stageNamed(r *store.Run, name string) *store.Stage {
	for i := range r.Stages {
		if r.Stages[i].Name == name {
			return &r.Stages[i]
		}
	}
	return nil
}

func noSamplesWhy(r *store.Run, dir string) string {
	started := false
	for _, s := range r.Stages {
		if !s.StartedAt.IsZero() || s.Terminal() || s.State == string(slurm.StateRunning) {
			started = true
		}
	}
	if !started {
		return "no job of the run has started yet"
	}
	return fmt.Sprintf("no samples were recorded (no exporter wrote to %s)", dir)
}

func noSamplesMessage(r *store.Run, stage, dir string) string {
	if s := stageNamed(r, stage); s != nil && s.StartedAt.IsZero() && !s.Terminal() && s.State != string(slurm.StateRunning) {
		return "no GPU telemetry: the job has not started yet"
	}
	return "no GPU telemetry: " + noSamplesWhy(r, dir)
}

// WriteText writes the view as text.
func (out RunView) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "run %s (%s) %s", out.Run, OneLine(out.Name), out.State)
	if out.GPUHours != nil {
		fmt.Fprintf(&b, ", %s GPU-hours (%s)", strconv.FormatFloat(*out.GPUHours, 'f', 4, 64), gpuSourceWords(out.GPUHoursSource))
	}
	b.WriteString("\n")
	if len(out.Stages) == 0 {
		fmt.Fprintln(&b, out.Message)
	}
	for _, s := range out.Stages {
		fmt.Fprintf(&b, "\nstage %s", s.Stage)
		if s.JobID != "" {
			fmt.Fprintf(&b, ": job %s %s", s.JobID, s.State)
		}
		if s.GPUHours != nil {
			fmt.Fprintf(&b, ", %d GPU(s) x %s = %s GPU-hours (%s)", s.GPUs, time.Duration(s.ElapsedS)*time.Second,
				strconv.FormatFloat(*s.GPUHours, 'f', 4, 64), gpuSourceWords(s.GPUHoursSource))
		}
		b.WriteString("\n")
		if err := s.Report.WriteText(&b); err != nil {
			return err
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func gpuSourceWords(src string) string {
	switch src {
	case "sacct":
		return "Slurm accounting: AllocTRES gres/gpu x elapsed"
	case "pipeline":
		return "from the pipeline: train nodes x gpus_per_node x elapsed; accounting had no gres/gpu"
	case "sacct+pipeline":
		return "Slurm accounting, and the pipeline where accounting had no gres/gpu"
	}
	return src
}

// FmtGPUHours prints GPU-hours compactly.
func FmtGPUHours(h float64) string {
	switch {
	case h == 0:
		return "0"
	case h < 0.01:
		return "<0.01"
	}
	return strconv.FormatFloat(h, 'f', 2, 64)
}

// Telemetry loads GPU telemetry and allocations for the runs a command shows,
// with one connection per cluster.
type Telemetry struct {
	st     *store.Store
	cs     Clusters
	log    *slog.Logger
	failed map[string]bool // cluster configs that could not be reached
}

// Cluster is what run telemetry needs of the cluster a run is on.
type Cluster interface {
	// Files is the cluster's filesystem, where the samples files are.
	Files() slurm.FileSystem
	// ListFiles lists the names of the regular files in dir; none when
	// dir does not exist.
	ListFiles(ctx context.Context, dir string) ([]string, error)
	// JobGPUs asks accounting for the allocated GPUs and elapsed time of
	// jobs, summed over requeues; jobs it does not know are absent.
	JobGPUs(ctx context.Context, ids []string) (map[string]JobGPUs, error)
}

// JobGPUs is what accounting says of one job's GPUs.
type JobGPUs struct {
	GPUs    int
	Elapsed time.Duration
	Ended   bool
}

// Clusters opens the cluster a run's configuration names.
type Clusters interface {
	Cluster(ctx context.Context, config string) (Cluster, error)
}

// NewTelemetry reads and summarises runs' GPU telemetry from st and the
// clusters cs opens; log gets what could not be read.
func NewTelemetry(st *store.Store, cs Clusters, log *slog.Logger) *Telemetry {
	return &Telemetry{st: st, cs: cs, log: log, failed: map[string]bool{}}
}

func (g *Telemetry) cluster(ctx context.Context, config string) Cluster {
	if g.failed[config] {
		return nil
	}
	cl, err := g.cs.Cluster(ctx, config)
	if err != nil {
		g.failed[config] = true
		g.log.Warn("could not reach the cluster for GPU telemetry; showing what the database knows", "err", err)
		return nil
	}
	return cl
}

// RunGPU is what status and gpu show of a run's GPUs.
type RunGPU struct {
	State  *State // nil when it could not be loaded
	Stages map[string]*StageGPU
	// Hours is the run's GPU-hours, Source where they come from ("sacct",
	// "pipeline" or "sacct+pipeline"); nil when nothing is known.
	Hours  *float64
	Source string
}

// StageGPU is what status shows of a stage's GPUs.
type StageGPU struct {
	GPUs          int
	Hours         *float64
	Source        string
	UtilPct       *float64
	Telemetry     string // "ok", "unavailable" or ""
	Underutilized bool
}

// Summarize summarises the runs' GPU telemetry and allocations, first
// reading what is new in their samples files (readSamples) and asking
// accounting about their jobs, one sacct per cluster (askSlurm); otherwise
// from what the database has.
func (g *Telemetry) Summarize(ctx context.Context, runs []*store.Run, readSamples, askSlurm bool) map[string]*RunGPU {
	out := make(map[string]*RunGPU, len(runs))
	for _, r := range runs {
		state, err := LoadState(ctx, g.st, r.ID)
		if err != nil {
			g.log.Warn("GPU telemetry", "run", r.ID, "err", err)
		} else if readSamples && !samplesRead(r, state) {
			if cl := g.cluster(ctx, r.ClusterConfig); cl != nil {
				if state, err = loadSamples(ctx, g.st, cl, r, state); err != nil {
					g.log.Warn("could not read GPU samples", "run", r.ID, "err", err)
				}
			}
		}
		out[r.ID] = &RunGPU{State: state, Stages: map[string]*StageGPU{}}
	}
	allocs := g.allocations(ctx, runs, askSlurm)
	for _, r := range runs {
		out[r.ID].add(r, allocs[r.ID])
	}
	return out
}

// add summarises a run's allocations and telemetry state.
func (info *RunGPU) add(r *store.Run, allocs []store.GPUAlloc) {
	state := info.State
	sources := map[string]bool{}
	for _, a := range allocs {
		sg := info.stage(a.Stage)
		h := a.GPUHours()
		if sg.Hours == nil {
			sg.Hours = new(float64)
		}
		*sg.Hours += h
		if s := stageNamed(r, a.Stage); s != nil && s.JobID == a.JobID || sg.GPUs == 0 {
			sg.GPUs = a.GPUs
		}
		sg.Source = joinSource(sg.Source, a.Source)
		if info.Hours == nil {
			info.Hours = new(float64)
		}
		*info.Hours += h
		sources[a.Source] = true
	}
	for src := range sources {
		info.Source = joinSource(info.Source, src)
	}
	if state != nil {
		for _, name := range state.Stages() {
			rep := state.Report(name)
			sg := info.stage(name)
			sg.UtilPct, sg.Underutilized = rep.MeanUtilPct, rep.Underutilized
			if rep.Telemetry {
				sg.Telemetry = "ok"
			} else {
				sg.Telemetry = "unavailable"
			}
		}
	}
}

func (info *RunGPU) stage(name string) *StageGPU {
	sg := info.Stages[name]
	if sg == nil {
		sg = &StageGPU{}
		info.Stages[name] = sg
	}
	return sg
}

func joinSource(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case b == "":
		return a
	}
	return "sacct+pipeline"
}

// UtilCell is the GPU UTIL cell of a stage in status.
func UtilCell(sg *StageGPU) string {
	switch {
	case sg == nil || sg.Telemetry == "":
		return "-"
	case sg.Telemetry == "unavailable":
		return "no NVML"
	case sg.UtilPct == nil:
		return "?"
	}
	s := fmt.Sprintf("%.1f%%", *sg.UtilPct)
	if sg.Underutilized {
		s += " LOW"
	}
	return s
}

// HoursCell is the GPU-H cell of a run in status; a "*" marks hours
// taken from the pipeline rather than accounting.
func HoursCell(g *RunGPU) string {
	if g == nil || g.Hours == nil {
		return "-"
	}
	s := FmtGPUHours(*g.Hours)
	if strings.Contains(g.Source, "pipeline") {
		s += "*"
	}
	return s
}

// StageOf is a stage's GPU summary; nil when there is none (g may be nil).
func (g *RunGPU) StageOf(name string) *StageGPU {
	if g == nil {
		return nil
	}
	return g.Stages[name]
}

// WriteFootnote explains status's GPU columns when they need it.
func WriteFootnote(w io.Writer, runs []*store.Run, gpu map[string]*RunGPU) error {
	for _, r := range runs {
		if g := gpu[r.ID]; g != nil && strings.Contains(g.Source, "pipeline") {
			_, err := fmt.Fprintln(w, "* GPU-hours from the pipeline (train nodes x gpus_per_node x elapsed): Slurm accounting had no gres/gpu")
			return err
		}
	}
	return nil
}

// OneLine keeps a user-chosen name from breaking a line or a table: it is
// quoted (Go syntax) when it has characters that need it.
func OneLine(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}
