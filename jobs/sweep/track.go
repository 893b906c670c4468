package sweep

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// selectionStore is what Ingest needs of the store.
type selectionStore interface {
	SweepTasks(ctx context.Context, runID string) ([]store.SweepTask, error)
	SaveSweepSelection(ctx context.Context, runID string, tasks []store.SweepTask) error
}

// Ingest records what the select job found (selection.json), once the
// select stage of a sweep run has ended; it does nothing for other runs or
// when it was recorded already.
func Ingest(ctx context.Context, st selectionStore, fsys slurm.FileSystem, r *store.Run) error {
	var sel *store.Stage
	for i := range r.Stages {
		if r.Stages[i].Name == templates.SelectStage {
			sel = &r.Stages[i]
		}
	}
	if sel == nil || !sel.Terminal() {
		return nil
	}
	tasks, err := st.SweepTasks(ctx, r.ID)
	if err != nil || len(tasks) == 0 {
		return err
	}
	for _, t := range tasks {
		if t.Passed != nil {
			return nil // recorded
		}
	}
	b, err := fsys.ReadFile(ctx, filepath.Join(r.RunDir, SelectionFile))
	if err != nil {
		return fmt.Errorf("read the sweep's selection: %w", err)
	}
	var s Selection
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("read the sweep's selection: %s: %w", SelectionFile, err)
	}
	out := make([]store.SweepTask, 0, len(s.Tasks))
	for _, res := range s.Tasks {
		passed := res.Passed
		out = append(out, store.SweepTask{Task: res.Task, Metric: res.Metric, Passed: &passed, Reason: res.Reason,
			Winner: s.Winner != nil && *s.Winner == res.Task})
	}
	return st.SaveSweepSelection(ctx, r.ID, out)
}

// TaskView is one row of a sweep's table in status.
type TaskView struct {
	Task int `json:"task"`
	// Settings are the task's values of the keys that vary.
	Settings map[string]any `json:"settings"`
	Train    string         `json:"train_state"`
	Eval     string         `json:"eval_state"`
	Metric   *float64       `json:"metric"`
	// Verdict is "passed", "failed" or "" (not selected yet).
	Verdict string `json:"verdict"`
	Winner  bool   `json:"winner"`
	// Rank orders the tasks: the passing ones by the metric (1 is the
	// best), then those that failed with a metric, then the rest.
	Rank int `json:"rank"`
	// TrainLoss is the last loss the task's training reported.
	TrainLoss *float64 `json:"final_train_loss"`
	// Why says why a task did not pass: the select job's reason, else
	// what its train or eval job ended with.
	Why string `json:"why,omitempty"`
}

// View is a sweep run's table.
type View struct {
	Metric  string     `json:"metric"`
	Goal    string     `json:"goal"`
	Varying []string   `json:"varying"`
	Winner  *int       `json:"winner"`
	Tasks   []TaskView `json:"tasks"`
}

// NewView builds a sweep run's table from its stages and recorded tasks;
// nil when r is not a sweep (sr nil).
func NewView(r *store.Run, sr *store.SweepRun, tasks []store.SweepTask) *View {
	if sr == nil || len(tasks) == 0 {
		return nil
	}
	pts := make([]Point, len(tasks))
	for i, t := range tasks {
		pts[i].Values = map[string]any{}
		_ = json.Unmarshal([]byte(t.Settings), &pts[i].Values)
		for k := range pts[i].Values {
			pts[i].Keys = append(pts[i].Keys, k)
		}
		sort.Strings(pts[i].Keys)
	}
	m := Manifest{Metric: sr.Metric, Goal: sr.Goal, Varying: Varying(pts)}
	if m.Varying == nil {
		m.Varying = []string{}
	}
	stages := map[string]store.Stage{}
	for _, s := range r.Stages {
		stages[s.Name] = s
	}
	v := &View{Metric: m.Metric, Goal: m.Goal, Varying: m.Varying, Tasks: make([]TaskView, 0, len(tasks))}
	for _, t := range tasks {
		var all map[string]any
		_ = json.Unmarshal([]byte(t.Settings), &all)
		tv := TaskView{Task: t.Task, Settings: map[string]any{}, Metric: t.Metric, Winner: t.Winner, Why: t.Reason}
		for _, k := range m.Varying {
			tv.Settings[k] = all[k]
		}
		tr, ev := stages[jobs.TaskStage("train", t.Task)], stages[jobs.TaskStage("eval", t.Task)]
		tv.Train, tv.Eval = tr.State, ev.State
		if t.Passed != nil {
			tv.Verdict = map[bool]string{true: "passed", false: "failed"}[*t.Passed]
		}
		// What the task's own jobs ended with, after the select job's
		// reason: the payload's error line of a crashed train, say.
		if !*orFalse(t.Passed) {
			for _, s := range []store.Stage{tr, ev} {
				if !s.Terminal() || s.State == string(slurm.StateCompleted) {
					continue
				}
				why := s.Name + " " + s.State
				if s.Error != "" {
					why += ": " + s.Error
				} else if s.Reason != "" {
					why += " (" + s.Reason + ")"
				}
				if tv.Why != "" {
					why = tv.Why + "; " + why
				}
				tv.Why = why
				break
			}
		}
		if t.Winner {
			w := t.Task
			v.Winner = &w
		}
		v.Tasks = append(v.Tasks, tv)
	}
	return v
}

func orFalse(b *bool) *bool {
	if b == nil {
		f := false
		return &f
	}
	return b
}

// viewStore is what Views needs of the store.
type viewStore interface {
	GetSweepRun(ctx context.Context, runID string) (*store.SweepRun, error)
	SweepTasks(ctx context.Context, runID string) ([]store.SweepTask, error)
	LastMetricPoints(ctx context.Context, runIDs []string, stage, name string) (map[string]store.MetricPoint, error)
}

// rank sets each task's Rank.
func (v *View) rank() {
	order := make([]int, len(v.Tasks))
	for i := range order {
		order[i] = i
	}
	class := func(t TaskView) int {
		switch {
		case t.Verdict == "passed" && t.Metric != nil:
			return 0
		case t.Metric != nil:
			return 1
		}
		return 2
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := v.Tasks[order[a]], v.Tasks[order[b]]
		if cx, cy := class(x), class(y); cx != cy || cx == 2 {
			return cx < cy
		}
		if v.Goal == "max" {
			return *x.Metric > *y.Metric
		}
		return *x.Metric < *y.Metric
	})
	for r, i := range order {
		v.Tasks[i].Rank = r + 1
	}
}

// Views are the sweep tables of the runs that are sweeps, by run id.
func Views(ctx context.Context, st viewStore, runs []*store.Run) (map[string]*View, error) {
	out := map[string]*View{}
	for _, r := range runs {
		sr, err := st.GetSweepRun(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		if sr == nil {
			continue
		}
		tasks, err := st.SweepTasks(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		v := NewView(r, sr, tasks)
		if v == nil {
			continue
		}
		for i := range v.Tasks {
			last, err := st.LastMetricPoints(ctx, []string{r.ID}, jobs.TaskStage(jobs.StageTrain, v.Tasks[i].Task), "loss")
			if err != nil {
				return nil, err
			}
			if p, ok := last[r.ID]; ok {
				loss := p.Value
				v.Tasks[i].TrainLoss = &loss
			}
		}
		v.rank()
		out[r.ID] = v
	}
	return out, nil
}
