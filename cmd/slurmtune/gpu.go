package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/local"
	sshx "github.com/slurmtune/slurmtune/slurm/ssh"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// GPU telemetry of runs.
//
// Samples: every exporter started for a run appends JSON lines (nvml.Sample:
// one line per GPU per collection, or one {"nvml":"unavailable",...} status
// line) to <run dir>/gpu/samples-<host>.jsonl. `slurmtune gpu` and `status`
// read whatever was appended since they last looked (store.GPUState keeps
// each file's offset and per-stage per-GPU aggregates), attributing each line
// to a stage by its Slurm job id ("job"), else by time (status lines carry no
// job id).
//
// GPU-hours: allocated GPUs x elapsed per job, from Slurm accounting (sacct
// AllocTRES gres/gpu=N x ElapsedRaw, summed over requeues), or, when
// accounting cannot be asked or has no gres/gpu, for the train stage of a
// pipeline, train.nodes x train.gpus_per_node x the elapsed time slurmtune
// tracked.

const (
	gpuDirName = "gpu"
	// gpuSettle is how long after a run ended its samples files are still
	// read (the exporters flush as they stop).
	gpuSettle = 2 * time.Minute
	// gpuReadBudget bounds how much of one samples file one command reads;
	// the rest is read by the next.
	gpuReadBudget = 64 << 20
	gpuChunk      = 1 << 20
	// maxSampleLine: a longer line is skipped as malformed.
	maxSampleLine = 4 << 20
	// gpuUnattributed is the stage of lines no stage can be found for.
	gpuUnattributed = "unattributed"
)

func gpuCommand() *cli.Command {
	return &cli.Command{
		Name:      "gpu",
		Usage:     "show what every GPU of a run or job did: utilization, memory, energy, idle time, throttling, XIDs",
		ArgsUsage: "RUN|JOBID",
		Description: "Reads the run's GPU samples (<run dir>/gpu/samples-<host>.jsonl, written by\n" +
			"`slurmtune exporter --samples`) into the database and reports, per stage and GPU,\n" +
			"mean and p95 utilization, peak memory, energy, the longest idle streak (under 10%\n" +
			"while memory is held), throttle reasons and XID events, and flags a stage whose\n" +
			"GPUs averaged under 15% for more than 5 minutes. Says so plainly, and exits 0,\n" +
			"when there was no GPU telemetry. GPU-hours come from Slurm accounting.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "no-sync", Usage: "do not ask Slurm first (samples are still read)"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("gpu: want one RUN or JOBID")
			}
			return gpuShow(c.Context, e, c.Args().First(), c.Bool("json"), c.Bool("no-sync"))
		},
	}
}

// resolveRunOrJob finds a run by id (or unique prefix) or by the Slurm job
// id of one of its stages; stage is set in the second case. An all-digit
// argument is taken for a job id first.
func resolveRunOrJob(ctx context.Context, st *store.Store, arg string) (r *store.Run, stage, jobID string, err error) {
	if isJobID(arg) {
		runID, stg, jerr := st.RunOfJob(ctx, arg)
		if jerr == nil {
			r, err = st.GetRun(ctx, runID)
			return r, stg, arg, err
		}
		if !store.IsNotFound(jerr) {
			return nil, "", "", jerr
		}
	}
	r, err = st.GetRun(ctx, arg)
	if err != nil && store.IsNotFound(err) && isJobID(arg) {
		return nil, "", "", fmt.Errorf("no run and no tracked job %s (only jobs submitted with `slurmtune submit` or `slurmtune sbatch` are tracked): %w", arg, store.ErrNotFound)
	}
	return r, "", "", err
}

func isJobID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

type gpuStageJSON struct {
	Stage          string      `json:"stage"`
	JobID          string      `json:"job_id"`
	State          string      `json:"state"`
	GPUs           int         `json:"gpus"`
	ElapsedS       int64       `json:"elapsed_s"`
	GPUHours       *float64    `json:"gpu_hours"`
	GPUHoursSource string      `json:"gpu_hours_source,omitempty"`
	Report         nvml.Report `json:"report"`
}

type gpuJSON struct {
	Run            string         `json:"run"`
	Name           string         `json:"name"`
	State          string         `json:"state"`
	RunDir         string         `json:"run_dir"`
	SamplesDir     string         `json:"samples_dir"`
	Telemetry      bool           `json:"telemetry"`
	Message        string         `json:"message,omitempty"`
	Underutilized  []string       `json:"underutilized"`
	GPUHours       *float64       `json:"gpu_hours"`
	GPUHoursSource string         `json:"gpu_hours_source,omitempty"`
	Stages         []gpuStageJSON `json:"stages"`
}

func gpuShow(ctx context.Context, e *env, arg string, asJSON, noSync bool) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r, onlyStage, _, err := resolveRunOrJob(ctx, st, arg)
	if err != nil {
		return err
	}
	if !noSync {
		syncQuietly(ctx, e, st)
		if r, err = st.GetRun(ctx, r.ID); err != nil {
			return err
		}
	}
	gs := newGPUSet(e, st)
	defer gs.close()
	info := gs.summarize(ctx, []*store.Run{r}, true, !noSync)[r.ID]

	out := gpuJSON{Run: r.ID, Name: r.Name, State: r.State, RunDir: r.RunDir, SamplesDir: filepath.Join(r.RunDir, gpuDirName),
		Underutilized: []string{}, Stages: []gpuStageJSON{}}
	var names []string
	for _, s := range r.Stages {
		names = append(names, s.Name)
	}
	if info.state != nil {
		for _, s := range info.state.Stages() {
			if !slices.Contains(names, s) {
				names = append(names, s)
			}
		}
	}
	for _, name := range names {
		if onlyStage != "" && name != onlyStage {
			continue
		}
		sg := info.stages[name]
		hasTelemetry := info.state != nil && info.state.HasStage(name)
		if onlyStage == "" && !hasTelemetry && (sg == nil || sg.gpus == 0) {
			continue // a stage without GPUs: nothing to say
		}
		sj := gpuStageJSON{Stage: name}
		if stg := stageNamed(r, name); stg != nil {
			sj.JobID, sj.State, sj.ElapsedS = stg.JobID, stg.State, int64(stg.Elapsed/time.Second)
		}
		if sg != nil {
			sj.GPUs, sj.GPUHours, sj.GPUHoursSource = sg.gpus, sg.hours, sg.source
		}
		if info.state != nil {
			sj.Report = info.state.Report(name)
		} else {
			sj.Report = store.GPUReport(nil, nil)
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
	out.GPUHours, out.GPUHoursSource = info.hours, info.source
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
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return writeGPUText(e.stdout, out)
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

func writeGPUText(w io.Writer, out gpuJSON) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "run %s (%s) %s", out.Run, oneLine(out.Name), out.State)
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

func fmtGPUHours(h float64) string {
	switch {
	case h == 0:
		return "0"
	case h < 0.01:
		return "<0.01"
	}
	return strconv.FormatFloat(h, 'f', 2, 64)
}

// gpuSet loads GPU telemetry and allocations for the runs a command shows,
// with one connection per cluster.
type gpuSet struct {
	e      *env
	st     *store.Store
	cs     *clusterSet
	failed map[string]bool // cluster configs that could not be reached
}

func newGPUSet(e *env, st *store.Store) *gpuSet {
	return &gpuSet{e: e, st: st, cs: newClusterSet(e, st), failed: map[string]bool{}}
}

func (g *gpuSet) close() { g.cs.close() }

func (g *gpuSet) cluster(ctx context.Context, config string) *cluster {
	if g.failed[config] {
		return nil
	}
	cl, err := g.cs.get(ctx, config)
	if err != nil {
		g.failed[config] = true
		g.e.log.Warn("could not reach the cluster for GPU telemetry; showing what the database knows", "err", err)
		return nil
	}
	return cl
}

// runGPU is what status and gpu show of a run.
type runGPU struct {
	state  *store.GPUState // nil when it could not be loaded
	stages map[string]*stageGPU
	hours  *float64
	source string
}

type stageGPU struct {
	gpus          int
	hours         *float64
	source        string
	utilPct       *float64
	telemetry     string // "ok", "unavailable" or ""
	underutilized bool
}

// summarize summarises the runs' GPU telemetry and allocations, first
// reading what is new in their samples files (readSamples) and asking
// accounting about their jobs, one sacct per cluster (askSlurm); otherwise
// from what the database has.
func (g *gpuSet) summarize(ctx context.Context, runs []*store.Run, readSamples, askSlurm bool) map[string]*runGPU {
	out := make(map[string]*runGPU, len(runs))
	for _, r := range runs {
		state, err := g.st.GPUState(ctx, r.ID)
		if err != nil {
			g.e.log.Warn("GPU telemetry", "run", r.ID, "err", err)
		} else if readSamples && !samplesRead(r, state) {
			if cl := g.cluster(ctx, r.ClusterConfig); cl != nil {
				if state, err = loadSamples(ctx, g.st, cl, r, state); err != nil {
					g.e.log.Warn("could not read GPU samples", "run", r.ID, "err", err)
				}
			}
		}
		out[r.ID] = &runGPU{state: state, stages: map[string]*stageGPU{}}
	}
	allocs := g.allocations(ctx, runs, askSlurm)
	for _, r := range runs {
		out[r.ID].add(r, allocs[r.ID])
	}
	return out
}

// add summarises a run's allocations and telemetry state.
func (info *runGPU) add(r *store.Run, allocs []store.GPUAlloc) {
	state := info.state
	sources := map[string]bool{}
	for _, a := range allocs {
		sg := info.stage(a.Stage)
		h := a.GPUHours()
		if sg.hours == nil {
			sg.hours = new(float64)
		}
		*sg.hours += h
		if s := stageNamed(r, a.Stage); s != nil && s.JobID == a.JobID || sg.gpus == 0 {
			sg.gpus = a.GPUs
		}
		sg.source = joinSource(sg.source, a.Source)
		if info.hours == nil {
			info.hours = new(float64)
		}
		*info.hours += h
		sources[a.Source] = true
	}
	for src := range sources {
		info.source = joinSource(info.source, src)
	}
	if state != nil {
		for _, name := range state.Stages() {
			rep := state.Report(name)
			sg := info.stage(name)
			sg.utilPct, sg.underutilized = rep.MeanUtilPct, rep.Underutilized
			if rep.Telemetry {
				sg.telemetry = "ok"
			} else {
				sg.telemetry = "unavailable"
			}
		}
	}
}

func (info *runGPU) stage(name string) *stageGPU {
	sg := info.stages[name]
	if sg == nil {
		sg = &stageGPU{}
		info.stages[name] = sg
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

// loadSamples reads what was appended to the run's samples files since the
// last load and saves it with the new offsets. Once the run has ended and
// settled, and its files were read to the end, they are not read again.
func loadSamples(ctx context.Context, st *store.Store, cl *cluster, r *store.Run, g *store.GPUState) (*store.GPUState, error) {
	if samplesRead(r, g) {
		return g, nil
	}
	dir := filepath.Join(r.RunDir, gpuDirName)
	files, err := listSampleFiles(ctx, cl.fs, dir)
	if err != nil {
		return g, err
	}
	jobs, err := st.RunJobs(ctx, r.ID)
	if err != nil {
		return g, err
	}
	attr := newAttributor(r, jobs)
	complete := true
	for _, path := range files {
		done, err := readSamplesFile(ctx, cl.fs, path, g, attr)
		if err != nil {
			return g, err
		}
		complete = complete && done
	}
	saved, err := st.SaveGPUState(ctx, g)
	if err != nil {
		return g, err
	}
	if !saved {
		// Another slurmtune read the same lines first: take its result.
		return st.GPUState(ctx, r.ID)
	}
	if complete && r.Ended() && !r.EndedAt.IsZero() && time.Since(r.EndedAt) > gpuSettle {
		if err := st.MarkGPUDone(ctx, r.ID, r.EndedAt); err != nil {
			return g, err
		}
		g.DoneEndedAt = r.EndedAt.UnixMilli()
	}
	return g, nil
}

// samplesRead reports whether there is nothing to read for the run: no job
// was ever submitted, or its files were read to the end after it ended.
func samplesRead(r *store.Run, g *store.GPUState) bool {
	if !r.EndedAt.IsZero() && g.DoneEndedAt == r.EndedAt.UnixMilli() {
		return true
	}
	for _, s := range r.Stages {
		if s.JobID != "" {
			return false
		}
	}
	return true
}

// listSampleFiles lists dir/samples-*.jsonl on the cluster's filesystem.
func listSampleFiles(ctx context.Context, fsys slurm.FileSystem, dir string) ([]string, error) {
	var names []string
	switch f := fsys.(type) {
	case local.FS:
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, en := range entries {
			if en.Type().IsRegular() {
				names = append(names, en.Name())
			}
		}
	case *sshx.Conn:
		sc, err := f.SFTP()
		if err != nil {
			return nil, err
		}
		entries, err := sc.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) || os.IsNotExist(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, en := range entries {
			if en.Mode().IsRegular() {
				names = append(names, en.Name())
			}
		}
	default:
		return nil, fmt.Errorf("cannot list %s on a %T filesystem", dir, fsys)
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "samples-") && strings.HasSuffix(n, ".jsonl") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// readSamplesFile reads complete lines of path from its recorded offset on
// into g. done reports whether it reached the end of the file (rather than
// the read budget).
func readSamplesFile(ctx context.Context, fsys slurm.FileSystem, path string, g *store.GPUState, attr *attributor) (done bool, err error) {
	bad := 0
	off, skipped, done, err := readNewLines(ctx, fsys, path, g.Offset(path), gpuReadBudget, func(_ int64, line []byte) {
		var s nvml.Sample
		if err := json.Unmarshal(line, &s); err != nil {
			bad++
			return
		}
		g.Add(attr.stage(s), s)
	})
	if err != nil {
		return false, err
	}
	g.Advance(path, off, bad+skipped)
	return done, nil
}

// readNewLines calls line for every complete, non-blank line of path from
// offset off on (with the line's own offset), reading through the cluster's
// filesystem in chunks, at most about budget bytes. It returns the offset
// after the last complete line, how many lines longer than maxSampleLine it
// skipped, and whether it reached the end of the file; a missing file is at
// its end.
func readNewLines(ctx context.Context, fsys slurm.FileSystem, path string, off, budget int64, line func(off int64, b []byte)) (next int64, skipped int, done bool, err error) {
	start := off
	var pending []byte
	for off-start < budget {
		b, err := fsys.ReadAt(ctx, path, off+int64(len(pending)), gpuChunk)
		if errors.Is(err, fs.ErrNotExist) {
			return off, skipped, true, nil
		}
		if err != nil {
			return off, skipped, false, fmt.Errorf("read %s: %w", path, err)
		}
		if len(b) == 0 {
			break
		}
		pending = append(pending, b...)
		last := bytes.LastIndexByte(pending, '\n')
		if last < 0 {
			if len(pending) > maxSampleLine {
				off += int64(len(pending)) // an absurd line: skip it
				pending, skipped = nil, skipped+1
			}
			continue
		}
		pos := off
		for l := range bytes.SplitSeq(pending[:last], []byte{'\n'}) {
			if len(bytes.TrimSpace(l)) > 0 {
				line(pos, l)
			}
			pos += int64(len(l)) + 1
		}
		off += int64(last + 1)
		pending = slices.Clone(pending[last+1:])
	}
	return off, skipped, off-start < budget, nil
}

// attributor finds the stage a sample line belongs to.
type attributor struct {
	jobStage map[string]string
	stages   []store.Stage
}

func newAttributor(r *store.Run, jobs []store.JobRecord) *attributor {
	a := &attributor{jobStage: map[string]string{}, stages: r.Stages}
	for _, j := range jobs {
		a.jobStage[j.JobID] = j.Stage
	}
	return a
}

// stage is the stage of the sample's Slurm job; else the stage that was
// running at the sample's time (the latest started); else the run's only
// stage, or its train stage.
func (a *attributor) stage(s nvml.Sample) string {
	for j := range strings.SplitSeq(s.Job, ",") {
		if st, ok := a.jobStage[j]; ok {
			return st
		}
	}
	best, bestStart := "", time.Time{}
	for _, st := range a.stages {
		if st.StartedAt.IsZero() || st.StartedAt.After(s.Time.Add(5*time.Second)) {
			continue
		}
		if !st.EndedAt.IsZero() && s.Time.After(st.EndedAt.Add(gpuSettle)) {
			continue
		}
		if st.StartedAt.After(bestStart) {
			best, bestStart = st.Name, st.StartedAt
		}
	}
	if best != "" {
		return best
	}
	if len(a.stages) == 1 {
		return a.stages[0].Name
	}
	for _, st := range a.stages {
		if st.Name == "train" {
			return st.Name
		}
	}
	return gpuUnattributed
}

// allocations returns the recorded GPU allocations of every job of the
// runs, first (with ask) asking accounting, with one sacct per cluster,
// about the jobs whose figures are not final yet.
func (g *gpuSet) allocations(ctx context.Context, runs []*store.Run, ask bool) map[string][]store.GPUAlloc {
	out := make(map[string][]store.GPUAlloc, len(runs))
	type pending struct {
		r    *store.Run
		jobs []store.JobRecord
	}
	byConfig := map[string][]pending{}
	for _, r := range runs {
		recorded, err := g.st.GPUAllocs(ctx, r.ID)
		if err != nil {
			g.e.log.Warn("GPU allocations", "run", r.ID, "err", err)
			continue
		}
		out[r.ID] = recorded
		if !ask {
			continue
		}
		jobs, err := g.st.RunJobs(ctx, r.ID)
		if err != nil {
			g.e.log.Warn("GPU allocations", "run", r.ID, "err", err)
			continue
		}
		final := map[string]bool{}
		for _, a := range recorded {
			if a.Final {
				final[a.Stage+"/"+a.JobID] = true
			}
		}
		var need []store.JobRecord
		for _, j := range jobs {
			if !final[j.Stage+"/"+j.JobID] {
				need = append(need, j)
			}
		}
		if len(need) > 0 {
			byConfig[r.ClusterConfig] = append(byConfig[r.ClusterConfig], pending{r, need})
		}
	}
	for _, cfg := range sortedKeys(byConfig) {
		cl := g.cluster(ctx, cfg)
		if cl == nil {
			continue
		}
		var ids []string
		for _, p := range byConfig[cfg] {
			for _, j := range p.jobs {
				ids = append(ids, j.JobID)
			}
		}
		acct, err := sacctGPUs(ctx, cl, dedupeIDs(ids))
		if err != nil {
			g.e.log.Debug("sacct for GPU allocations", "err", err)
		}
		for _, p := range byConfig[cfg] {
			if err := recordAllocations(ctx, g.st, cl, p.r, p.jobs, acct); err != nil {
				g.e.log.Warn("GPU allocations", "run", p.r.ID, "err", err)
				continue
			}
			if recorded, err := g.st.GPUAllocs(ctx, p.r.ID); err == nil {
				out[p.r.ID] = recorded
			}
		}
	}
	return out
}

func dedupeIDs(ids []string) []string {
	slices.Sort(ids)
	return slices.Compact(ids)
}

// recordAllocations records the allocations of a run's jobs from what
// accounting said (acct), or for the train stage from the pipeline.
func recordAllocations(ctx context.Context, st *store.Store, cl *cluster, r *store.Run, ask []store.JobRecord, acct map[string]sacctRow) error {
	var pipe *pipelineGPUs
	for _, j := range ask {
		a := store.GPUAlloc{RunID: r.ID, Stage: j.Stage, JobID: j.JobID}
		cur := stageNamed(r, j.Stage)
		isCurrent := cur != nil && cur.JobID == j.JobID
		row, ok := acct[j.JobID]
		switch {
		case ok:
			a.Elapsed = row.elapsed
		case isCurrent:
			a.Elapsed = cur.Elapsed
		}
		if a.Elapsed <= 0 && !(ok && row.ended) {
			continue // not started
		}
		if ok && row.gpus == 0 || !ok {
			if pipe == nil {
				pipe = readPipelineGPUs(ctx, cl, r)
			}
		}
		switch {
		case ok && row.gpus > 0:
			a.GPUs, a.Source = row.gpus, "sacct"
		case j.Stage == "train" && pipe != nil && pipe.gpusPerNode > 0:
			// Accounting cannot say or has no gres/gpu: the pipeline says
			// what the train stage asked for.
			a.GPUs, a.Source = pipe.nodes*pipe.gpusPerNode, "pipeline"
		case ok:
			a.Source = "sacct" // accounting says: no GPU
		default:
			continue // neither accounting nor the pipeline knows
		}
		// Once accounting has answered about an ended job, it is final.
		a.Final = ok && row.ended
		if err := st.SetGPUAlloc(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

type sacctRow struct {
	gpus    int
	elapsed time.Duration
	ended   bool
}

// sacctGPUs asks accounting (slurm.Inspector.GPUAllocations) for the
// allocated GPUs and elapsed time of jobs, summed over requeues.
func sacctGPUs(ctx context.Context, cl *cluster, ids []string) (map[string]sacctRow, error) {
	allocs, err := cl.Inspector.GPUAllocations(ctx, ids)
	if err != nil {
		return nil, err
	}
	rows := make(map[string]sacctRow, len(allocs))
	for id, a := range allocs {
		rows[id] = sacctRow{gpus: a.GPUs, elapsed: a.Elapsed, ended: a.Ended}
	}
	return rows, nil
}

type pipelineGPUs struct{ nodes, gpusPerNode int }

// readPipelineGPUs reads train.nodes and train.gpus_per_node from the run's
// pipeline snapshot; zero when there is none (a `slurmtune sbatch` job).
func readPipelineGPUs(ctx context.Context, cl *cluster, r *store.Run) *pipelineGPUs {
	p := &pipelineGPUs{}
	b, err := cl.fs.ReadFile(ctx, templates.LayoutOf(r.RunDir).Pipeline)
	if err != nil {
		return p
	}
	var doc struct {
		Train struct {
			Nodes       int `yaml:"nodes"`
			GPUsPerNode int `yaml:"gpus_per_node"`
		} `yaml:"train"`
	}
	if yaml.Unmarshal(b, &doc) != nil {
		return p
	}
	p.nodes, p.gpusPerNode = max(doc.Train.Nodes, 1), doc.Train.GPUsPerNode
	return p
}

// gpuSummaries is what status shows of the runs' GPUs: with fresh set,
// new samples are read and accounting is asked first.
func gpuSummaries(ctx context.Context, e *env, st *store.Store, runs []*store.Run, fresh bool) map[string]*runGPU {
	gs := newGPUSet(e, st)
	defer gs.close()
	return gs.summarize(ctx, runs, fresh, fresh)
}

// statusGPUUtil is the GPU UTIL cell of a stage in status.
func statusGPUUtil(sg *stageGPU) string {
	switch {
	case sg == nil || sg.telemetry == "":
		return "-"
	case sg.telemetry == "unavailable":
		return "no NVML"
	case sg.utilPct == nil:
		return "?"
	}
	s := fmt.Sprintf("%.1f%%", *sg.utilPct)
	if sg.underutilized {
		s += " LOW"
	}
	return s
}

// statusGPUHours is the GPU-H cell of a run in status; a "*" marks hours
// taken from the pipeline rather than accounting.
func statusGPUHours(g *runGPU) string {
	if g == nil || g.hours == nil {
		return "-"
	}
	s := fmtGPUHours(*g.hours)
	if strings.Contains(g.source, "pipeline") {
		s += "*"
	}
	return s
}

// stageOf is a stage's GPU summary; nil when there is none (g may be nil).
func (g *runGPU) stageOf(name string) *stageGPU {
	if g == nil {
		return nil
	}
	return g.stages[name]
}

// writeGPUFootnote explains status's GPU columns when they need it.
func writeGPUFootnote(w io.Writer, runs []*store.Run, gpu map[string]*runGPU) error {
	for _, r := range runs {
		if g := gpu[r.ID]; g != nil && strings.Contains(g.source, "pipeline") {
			_, err := fmt.Fprintln(w, "* GPU-hours from the pipeline (train nodes x gpus_per_node x elapsed): Slurm accounting had no gres/gpu")
			return err
		}
	}
	return nil
}
