package chain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/store/atomicfile"
)

// Rendered is what Render wrote (render --json prints it).
type Rendered struct {
	// Run and RunDir are placeholders: submit makes a new run id.
	Run         string `json:"run"`
	RunDir      string `json:"run_dir"`
	Placeholder bool   `json:"placeholder"`
	// Files maps each stage (and "ds_config") to the file written, in
	// Paths' order.
	Files map[string]string `json:"files"`
	Paths []string          `json:"-"`
}

// Render writes the scripts of a run that would be submitted now to dir on
// this host, each stage's as STAGE.sbatch, and DeepSpeed's config beside
// train.sbatch (submit writes it into the run directory, where
// SLURMTUNE_DS_CONFIG points). Each file is written atomically; the
// directory gets nothing if rendering fails.
func (s *Service) Render(ctx context.Context, p *jobs.Pipeline, dir string) (*Rendered, error) {
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
