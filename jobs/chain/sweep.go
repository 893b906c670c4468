package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// A sweep run is submitted with five sbatch calls whatever its size: prep;
// train as one array (afterok prep); eval as one array whose task K waits
// for train task K (aftercorr); select after the whole eval array
// (afterany); deploy after select (afterok), serving the winner. Each task's
// train and eval is a stage of its own in the store (train[K], eval[K],
// job ARRAY_TASK), so states, restarts and requeues are tracked per task and
// one squeue refreshes them all.

// PrepareSweep renders a sweep run: prep, select and deploy from p; each
// task's train and eval from its own pipeline into tasks/K (with its
// pipeline snapshot, hyperparameters and DeepSpeed config), and the two
// array scripts that run them. Tasks must agree on their jobs' #SBATCH
// options: one array asks for one set of resources. Nothing is written.
func (s *Service) PrepareSweep(ctx context.Context, p *jobs.Pipeline, tasks []sweep.Task) (*Prepared, error) {
	if len(tasks) == 0 {
		return nil, errors.New("sweep: no tasks")
	}
	base, err := s.Prepare(ctx, p)
	if err != nil {
		return nil, err
	}
	dir := base.Dir
	prep := &Prepared{ID: base.ID, Dir: dir, files: map[string][]byte{}, modes: base.modes}
	l := templates.LayoutOf(dir)
	prep.files[l.Pipeline] = base.files[l.Pipeline]
	byStage := map[string]templates.Script{}
	for _, sc := range base.Scripts {
		byStage[sc.Stage] = sc
	}
	first := map[string][]string{}
	array := arraySpec(len(tasks), p.Sweep.MaxParallel)
	for _, t := range tasks {
		td := templates.TaskDir(dir, t.Index)
		tp := t.Pipeline
		tp.Workdir = p.Workdir
		scripts, err := s.Templates.Render(tp, templates.Run{ID: base.ID, Dir: td, DataDir: l.Data, Slurmtune: s.Slurmtune, MaxTime: base.maxTime})
		if err != nil {
			return nil, fmt.Errorf("sweep task %d: %w", t.Index, err)
		}
		tl := templates.LayoutOf(td)
		snap, err := tp.Snapshot()
		if err != nil {
			return nil, err
		}
		hp, err := templates.Hyperparameters(tp)
		if err != nil {
			return nil, err
		}
		prep.files[tl.Pipeline], prep.files[tl.Hparams] = snap, hp
		if ds, err := tp.Train.DeepSpeedConfig(); err != nil {
			return nil, err
		} else if ds != nil {
			prep.files[filepath.Join(td, jobs.DSConfigName)] = ds
		}
		for _, sc := range scripts {
			if sc.Stage != jobs.StageTrain && sc.Stage != jobs.StageEval {
				continue
			}
			prep.files[filepath.Join(td, sc.Stage+".sbatch")] = sc.Body
			d := sharedDirectives(sc.Body)
			if first[sc.Stage] == nil {
				first[sc.Stage] = d
				byStage[sc.Stage] = templates.Script{Stage: sc.Stage, Body: templates.ArrayScript(dir, sc.Stage, array, sc.Body),
					Log: filepath.Join(templates.TaskDir(dir, -1), "%a", "logs", sc.Stage+".log")}
			} else if !slices.Equal(first[sc.Stage], d) {
				return nil, fmt.Errorf("sweep task %d (%s) changes the %s job's Slurm options (%s, where task 0 has %s): one array asks for one set of resources; sweep settings its jobs read instead",
					t.Index, t.Point, sc.Stage, strings.Join(diff(d, first[sc.Stage]), " "), strings.Join(diff(first[sc.Stage], d), " "))
			}
		}
	}
	sel, err := s.Templates.RenderSelect(p, templates.Run{ID: base.ID, Dir: dir, Slurmtune: s.Slurmtune})
	if err != nil {
		return nil, err
	}
	byStage[templates.SelectStage] = sel
	manifest, err := json.MarshalIndent(sweep.NewManifest(p.Sweep.Select.Metric, p.Sweep.Select.Goal, tasks), "", "  ")
	if err != nil {
		return nil, err
	}
	prep.files[filepath.Join(dir, sweep.ManifestFile)] = append(manifest, '\n')
	for _, stage := range []string{jobs.StagePrep, jobs.StageTrain, jobs.StageEval, templates.SelectStage, jobs.StageDeploy} {
		sc, ok := byStage[stage]
		if !ok {
			if stage == jobs.StagePrep || stage == jobs.StageDeploy {
				continue // turned off
			}
			return nil, fmt.Errorf("sweep: no %s stage", stage)
		}
		prep.Scripts = append(prep.Scripts, sc)
		prep.files[filepath.Join(dir, sc.Stage+".sbatch")] = sc.Body
	}
	prep.tasks = len(tasks)
	return prep, nil
}

// arraySpec is the --array of a sweep of n tasks, at most maxParallel
// (when > 0) running at once.
func arraySpec(n, maxParallel int) string {
	spec := fmt.Sprintf("0-%d", n-1)
	if maxParallel > 0 {
		spec += fmt.Sprintf("%%%d", maxParallel)
	}
	return spec
}

// sweepDependency is how a sweep run's job for stage waits for the one
// before it: eval task K for train task K (aftercorr), select for the whole
// eval array whatever its tasks' outcome (afterany), the others for success.
func sweepDependency(stage string) string {
	switch stage {
	case jobs.StageEval:
		return "aftercorr"
	case templates.SelectStage:
		return "afterany"
	}
	return "afterok"
}

// sharedDirectives are a task script's #SBATCH lines less its own --output.
func sharedDirectives(script []byte) []string {
	var out []string
	for _, d := range templates.Directives(script) {
		if !strings.HasPrefix(d, "#SBATCH --output=") {
			out = append(out, strings.TrimPrefix(d, "#SBATCH "))
		}
	}
	return out
}

func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// taskStages are the store's stage names of an array's tasks.
func taskStages(stage string, n int) []string {
	out := make([]string, n)
	for k := range out {
		out[k] = jobs.TaskStage(stage, k)
	}
	return out
}

// sweepStages are a sweep run's stages in chain order.
func sweepStages(prep *Prepared) []string {
	var out []string
	for _, sc := range prep.Scripts {
		if sc.Stage == jobs.StageTrain || sc.Stage == jobs.StageEval {
			out = append(out, taskStages(sc.Stage, prep.tasks)...)
		} else {
			out = append(out, sc.Stage)
		}
	}
	return out
}

// SubmitSweep is Submit for a sweep: it records the run with a stage per
// task, writes the run directory (every task's own settings under tasks/K)
// and submits the five jobs. A failure part-way cancels what was queued.
func (s *Service) SubmitSweep(ctx context.Context, p *jobs.Pipeline, tasks []sweep.Task, opts SubmitOptions) (*Submitted, error) {
	secrets, err := s.secretEnv(p)
	if err != nil {
		return nil, err
	}
	prep, err := s.PrepareSweep(ctx, p, tasks)
	if err != nil {
		return nil, err
	}
	if existing, err := s.recordRun(ctx, p, prep, sweepStages(prep), opts); err != nil {
		return nil, err
	} else if existing != nil {
		return &Submitted{Skipped: existing}, nil
	}
	st := make([]store.SweepTask, len(tasks))
	for i, t := range tasks {
		b, err := json.Marshal(t.Values)
		if err != nil {
			return nil, s.interrupted(ctx, prep.ID, nil, err)
		}
		st[i] = store.SweepTask{Task: t.Index, Settings: string(b)}
	}
	if err := s.Store.SaveSweepTasks(ctx, prep.ID, store.SweepRun{Metric: p.Sweep.Select.Metric, Goal: p.Sweep.Select.Goal}, st); err != nil {
		return nil, s.interrupted(ctx, prep.ID, nil, err)
	}
	if err := s.writeSweepDir(ctx, prep); err != nil {
		return nil, s.interrupted(ctx, prep.ID, nil, err)
	}
	out := &Submitted{Jobs: map[string]string{}}
	var submitted []string
	var prev string
	for _, sc := range prep.Scripts {
		req := stageRequest(prep, sc, nil)
		req.Secrets = secrets
		if prev != "" {
			switch sweepDependency(sc.Stage) {
			case "aftercorr":
				req.AfterCorr = []string{prev}
			case "afterany":
				req.AfterAny = []string{prev}
			default:
				req.AfterOK = []string{prev}
			}
		}
		var id string
		if sc.Stage == jobs.StageTrain || sc.Stage == jobs.StageEval {
			req.Array = arraySpec(prep.tasks, p.Sweep.MaxParallel)
			id, err = s.submitArray(ctx, prep.ID, sc.Stage, allTasks(prep.tasks), req)
		} else {
			id, err = s.SubmitStage(ctx, prep.ID, sc.Stage, req)
		}
		if err != nil {
			return nil, s.submitFailed(ctx, prep.ID, sc.Stage, submitted, err)
		}
		out.Jobs[sc.Stage] = id
		submitted = append(submitted, id)
		prev = id
	}
	return s.finish(ctx, prep.ID, out)
}

// writeSweepDir creates every task's directory (and its logs, which the
// array's --output names with %a) before the run directory's files.
func (s *Service) writeSweepDir(ctx context.Context, prep *Prepared) error {
	for k := 0; k < prep.tasks; k++ {
		if err := s.FS.MkdirAll(ctx, templates.LayoutOf(templates.TaskDir(prep.Dir, k)).Logs, prep.modes.Dir); err != nil {
			return fmt.Errorf("create run directory: %w", err)
		}
	}
	return s.writeRunDir(ctx, prep)
}

func allTasks(n int) []int {
	out := make([]int, n)
	for k := range out {
		out[k] = k
	}
	return out
}

// RetryTask resubmits task k of a sweep run: its train (as a one-task array
// --array=K, so it keeps its id and its directory), its eval after it, and
// select and deploy again (select after every eval array of the run, so
// the retried task competes). A select or deploy still waiting is
// cancelled first; the other tasks are not touched.
func (s *Service) RetryTask(ctx context.Context, runID string, k int) (*Submitted, error) {
	r, err := s.Store.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.Stage{}
	for _, st := range r.Stages {
		byName[st.Name] = st
	}
	train, eval := jobs.TaskStage(jobs.StageTrain, k), jobs.TaskStage(jobs.StageEval, k)
	if _, ok := byName[train]; !ok {
		return nil, fmt.Errorf("run %s has no sweep task %d", r.ID, k)
	}
	var doomed []store.TrackedJob
	var ids []string
	for _, name := range []string{train, eval, templates.SelectStage, jobs.StageDeploy} {
		st, ok := byName[name]
		switch {
		case !ok:
		case st.State == store.StateSubmitting:
			return nil, fmt.Errorf("run %s: %s is being submitted: wait for it", r.ID, name)
		case st.JobID != "" && !st.Terminal() && (name == train || name == eval):
			return nil, fmt.Errorf("run %s: task %d still has a live job (%s %s): cancel it first", r.ID, k, name, st.JobID)
		case st.JobID != "" && !st.Terminal():
			doomed = append(doomed, store.TrackedJob{RunID: r.ID, Stage: name, JobID: st.JobID})
			ids = append(ids, st.JobID)
		}
	}
	if len(ids) > 0 {
		if err := s.Client.Cancel(ctx, ids); err != nil {
			return nil, fmt.Errorf("cancel the select and deploy jobs that were waiting: %w", err)
		}
		if _, err := s.SyncJobs(ctx, doomed); err != nil {
			return nil, err
		}
	}
	l := templates.LayoutOf(r.RunDir)
	secrets, err := s.runSecrets(ctx, l.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("retry run %s: %w", r.ID, err)
	}
	if err := s.Store.ResetForRetry(ctx, r.ID, Submitter()); err != nil {
		return nil, err
	}
	if err := s.Store.ResetSweepSelection(ctx, r.ID); err != nil {
		return nil, err
	}
	// select waits for every eval array the run's tasks are in now.
	var evalArrays []string
	for name, st := range byName {
		if stage, _, ok := jobs.ParseTaskStage(name); ok && stage == jobs.StageEval && name != eval && st.JobID != "" {
			evalArrays = append(evalArrays, strings.SplitN(st.JobID, "_", 2)[0])
		}
	}
	out := &Submitted{Jobs: map[string]string{}}
	var submitted []string
	var prev string
	for _, stage := range []string{jobs.StageTrain, jobs.StageEval, templates.SelectStage, jobs.StageDeploy} {
		name := stage
		if stage == jobs.StageTrain || stage == jobs.StageEval {
			name = jobs.TaskStage(stage, k)
		}
		st, ok := byName[name]
		if !ok {
			continue
		}
		path := filepath.Join(r.RunDir, stage+".sbatch")
		script, err := s.FS.ReadFile(ctx, path)
		if err != nil {
			return nil, s.interrupted(ctx, r.ID, submitted, fmt.Errorf("retry %s: read its script: %w", name, err))
		}
		logPath := l.LogPath(stage)
		if name != stage {
			logPath = filepath.Join(templates.TaskDir(r.RunDir, -1), "%a", "logs", stage+".log")
		}
		req := slurm.SubmitRequest{Script: script, ScriptPath: path, WorkDir: r.RunDir, Comment: StageTag(r.ID, name, st.Attempt+1),
			ExtraArgs: []string{"--output=" + logPath}, Secrets: secrets}
		var id string
		switch stage {
		case jobs.StageTrain, jobs.StageEval:
			req.Array = fmt.Sprint(k)
			if stage == jobs.StageEval {
				req.AfterCorr = []string{prev}
			}
			id, err = s.submitArray(ctx, r.ID, stage, []int{k}, req)
			if stage == jobs.StageEval {
				evalArrays = append(evalArrays, id)
			}
		case templates.SelectStage:
			req.AfterAny = dedupe(evalArrays)
			id, err = s.SubmitStage(ctx, r.ID, name, req)
		default:
			req.AfterOK = []string{prev}
			id, err = s.SubmitStage(ctx, r.ID, name, req)
		}
		if err != nil {
			return nil, s.interrupted(ctx, r.ID, submitted, fmt.Errorf("retry %s: %w", name, err))
		}
		out.Jobs[name] = id
		submitted = append(submitted, id)
		prev = id
	}
	return s.finish(ctx, r.ID, out)
}

// sweepRetry is Retry of a sweep run: from a task's stage (train[K] or
// eval[K]) it is RetryTask; from select or deploy the plain path serves;
// anything else is refused. It returns nil, nil for a run that is not a
// sweep, and for select or deploy.
func (s *Service) sweepRetry(ctx context.Context, r *store.Run, from string) (*Submitted, error) {
	sweeping := false
	for _, st := range r.Stages {
		sweeping = sweeping || jobs.IsTaskStage(st.Name)
	}
	if !sweeping || from == templates.SelectStage || from == jobs.StageDeploy {
		return nil, nil
	}
	if _, k, ok := jobs.ParseTaskStage(from); ok {
		return s.RetryTask(ctx, r.ID, k)
	}
	return nil, fmt.Errorf("run %s is a sweep: retry one task with --task K, or --from select or deploy", r.ID)
}
