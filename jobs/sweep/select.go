package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/slurmtune/slurmtune/eval"
	"github.com/slurmtune/slurmtune/store/atomicfile"
	"github.com/slurmtune/slurmtune/templates"
)

// ManifestFile (in the run directory) lists a sweep's tasks; SelectionFile
// is what the select job found.
const (
	ManifestFile  = "sweep.json"
	SelectionFile = "selection.json"
)

// Manifest is sweep.json: the select metric and goal, the keys that vary
// and every task's point.
type Manifest struct {
	Metric  string   `json:"metric"`
	Goal    string   `json:"goal"`
	Varying []string `json:"varying"`
	Tasks   []Point  `json:"tasks"`
}

// NewManifest describes tasks for sweep.json.
func NewManifest(metric, goal string, tasks []Task) Manifest {
	m := Manifest{Metric: metric, Goal: goal, Tasks: make([]Point, len(tasks))}
	for i, t := range tasks {
		m.Tasks[i] = t.Point
	}
	m.Varying = Varying(m.Tasks)
	if m.Varying == nil {
		m.Varying = []string{}
	}
	return m
}

// Selection is selection.json: every task's result and the winner (nil
// when no task passed; Reason says why).
type Selection struct {
	Metric string   `json:"metric"`
	Goal   string   `json:"goal"`
	Winner *int     `json:"winner"`
	Reason string   `json:"reason,omitempty"`
	Tasks  []Result `json:"tasks"`
}

// SelectRun is the select job: it reads each task's final checkpoint
// marker and eval report under runDir/tasks/K, picks the best task that
// passed every gate, writes runDir/selection.json and points runDir's
// checkpoints and eval at the winner's (so deploy serves it). When no task
// passed, selection.json says why and so does the error.
func SelectRun(ctx context.Context, runDir string) (*Selection, error) {
	b, err := os.ReadFile(filepath.Join(runDir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("read the sweep's tasks: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read the sweep's tasks: %s: %w", ManifestFile, err)
	}
	sel := &Selection{Metric: m.Metric, Goal: m.Goal, Tasks: make([]Result, 0, len(m.Tasks))}
	for _, pt := range m.Tasks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sel.Tasks = append(sel.Tasks, taskResult(runDir, pt.Index, m.Metric))
	}
	w, serr := Select(m.Metric, m.Goal, sel.Tasks)
	if serr == nil {
		sel.Winner = &w
	} else {
		sel.Reason = serr.Error()
	}
	out, err := json.MarshalIndent(sel, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(runDir, SelectionFile), append(out, '\n'), 0o600); err != nil {
		return nil, err
	}
	if serr != nil {
		return sel, serr
	}
	l, wl := templates.LayoutOf(runDir), templates.LayoutOf(templates.TaskDir(runDir, w))
	for _, link := range [][2]string{{wl.Checkpoints, l.Checkpoints}, {wl.Eval, l.Eval}} {
		if err := relink(link[0], link[1]); err != nil {
			return sel, err
		}
	}
	return sel, nil
}

// taskResult reads task k's outcome from its directory.
func taskResult(runDir string, k int, metric string) Result {
	l := templates.LayoutOf(templates.TaskDir(runDir, k))
	r := Result{Task: k}
	b, err := os.ReadFile(filepath.Join(l.Eval, "eval_report.json"))
	if err != nil {
		if _, cerr := os.Stat(filepath.Join(l.Checkpoints, "final", "COMPLETE")); cerr != nil {
			r.Reason = "train did not finish (no final checkpoint)"
		} else {
			r.Reason = "eval did not finish (no eval report)"
		}
		return r
	}
	var rep eval.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		r.Reason = "unreadable eval report: " + err.Error()
		return r
	}
	if v, ok := rep.Metrics.Get(metric); ok {
		r.Metric = &v
	}
	r.Passed = rep.Passed
	if !rep.Passed {
		var why []string
		for _, g := range rep.Gates {
			if !g.Passed {
				why = append(why, "gate "+g.Reason)
			}
		}
		r.Reason = strings.Join(why, ", ")
		if r.Reason == "" {
			r.Reason = "a gate failed"
		}
	}
	return r
}

// relink makes link a symbolic link to target, replacing what is there (an
// earlier winner's link) atomically.
func relink(target, link string) error {
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s exists and is not a link to a task: not replacing it", link)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp := link + ".tmp-select"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("point %s at the winner: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("point %s at the winner: %w", link, err)
	}
	return nil
}
