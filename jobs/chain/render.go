package chain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/store/atomicfile"
)

// Rendered is what Render wrote (render --json prints it).
type Rendered struct {
	// Run and RunDir are placeholders: submit makes a new run id.
	Run         string `json:"run"`
	RunDir      string `json:"run_dir"`
	Placeholder bool   `json:"placeholder"`
	// Files maps each stage (and "ds_config") to the file written, in
	// Paths' order; for a sweep also each other file of the run directory
	// (sweep.json, tasks/K/train.sbatch, ...) by its path in it.
	Files map[string]string `json:"files"`
	// Dependencies (a sweep's) maps each job but the first to how it
	// waits for the one before it: {"eval": "aftercorr:train", ...}.
	Dependencies map[string]string `json:"dependencies,omitempty"`
	Paths        []string          `json:"-"`
}

// Render writes the scripts of a run that would be submitted now to dir on
// this host, each stage's as STAGE.sbatch, and DeepSpeed's config beside
// train.sbatch (submit writes it into the run directory, where
// SLURMTUNE_DS_CONFIG points). Each file is written atomically; the
// directory gets nothing if rendering fails. A sweep (tasks) is rendered
// as SubmitSweep submits it: its prep, train and eval array, select and
// deploy scripts, and the run directory's other files (sweep.json, each
// task's tasks/K/) at their place under dir.
func (s *Service) Render(ctx context.Context, p *jobs.Pipeline, tasks []sweep.Task, dir string) (*Rendered, error) {
	if p.Sweep != nil {
		return s.renderSweep(ctx, p, tasks, dir)
	}
	prep, err := s.Prepare(ctx, p)
	if err != nil {
		return nil, err
	}
	var ds []byte
	if p.StageOn(jobs.StageTrain) {
		if ds, err = p.Train.DeepSpeedConfig(); err != nil {
			return nil, err
		}
	}
	modes := p.Modes()
	if err := os.MkdirAll(dir, modes.Dir); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	res := &Rendered{Run: prep.ID, RunDir: prep.Dir, Placeholder: true, Files: map[string]string{}}
	write := func(name, path string, data []byte, perm os.FileMode) error {
		if err := atomicfile.Write(path, data, perm); err != nil {
			return fmt.Errorf("render: %w", err)
		}
		res.Files[name] = path
		res.Paths = append(res.Paths, path)
		return nil
	}
	for _, sc := range prep.Scripts {
		if err := write(sc.Stage, filepath.Join(dir, sc.Stage+".sbatch"), sc.Body, modes.Script); err != nil {
			return nil, err
		}
	}
	if ds != nil {
		if err := write("ds_config", filepath.Join(dir, jobs.DSConfigName), ds, modes.File); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (s *Service) renderSweep(ctx context.Context, p *jobs.Pipeline, tasks []sweep.Task, dir string) (*Rendered, error) {
	prep, err := s.PrepareSweep(ctx, p, tasks)
	if err != nil {
		return nil, err
	}
	rels := map[string]string{}
	var others []string
	for path := range prep.files {
		rel, err := filepath.Rel(prep.Dir, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("render: %s is outside the run directory %s", path, prep.Dir)
		}
		rels[path] = rel
	}
	res := &Rendered{Run: prep.ID, RunDir: prep.Dir, Placeholder: true, Files: map[string]string{}, Dependencies: map[string]string{}}
	var prev string
	for _, sc := range prep.Scripts {
		res.Files[sc.Stage] = filepath.Join(dir, sc.Stage+".sbatch")
		res.Paths = append(res.Paths, res.Files[sc.Stage])
		if prev != "" {
			res.Dependencies[sc.Stage] = sweepDependency(sc.Stage) + ":" + prev
		}
		prev = sc.Stage
	}
	for _, rel := range rels {
		if _, script := res.Files[strings.TrimSuffix(rel, ".sbatch")]; !script {
			others = append(others, rel)
		}
	}
	sort.Strings(others)
	for _, rel := range others {
		res.Files[rel] = filepath.Join(dir, rel)
		res.Paths = append(res.Paths, res.Files[rel])
	}
	for path, rel := range rels {
		mode := prep.modes.File
		if strings.HasSuffix(rel, ".sbatch") {
			mode = prep.modes.Script
		}
		out := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(out), prep.modes.Dir); err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		if err := atomicfile.Write(out, prep.files[path], mode); err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
	}
	return res, nil
}
