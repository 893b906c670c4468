package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/templates"
)

type renderOptions struct {
	outDir    string
	slurmtune string
	json      bool
}

// renderResult is what render --json prints.
type renderResult struct {
	// Run and RunDir are placeholders: submit makes a new run id.
	Run         string            `json:"run"`
	RunDir      string            `json:"run_dir"`
	Placeholder bool              `json:"placeholder"`
	Files       map[string]string `json:"files"`
}

func renderCommand() *cli.Command {
	return &cli.Command{
		Name:      "render",
		Usage:     "write each enabled stage's sbatch script to DIR without submitting",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			setFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "`DIR` to write the scripts to (required)"},
			jsonFlag(`print {"run", "run_dir", "placeholder": true, "files": {STAGE: PATH}}`),
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.String("output") == "" {
				return usagef("render: -o DIR is required")
			}
			p, err := loadPipeline(c)
			if err != nil {
				return err
			}
			bin, err := slurmtuneOnCluster(p.Cluster)
			if err != nil {
				return err
			}
			return render(e, p, renderOptions{outDir: c.String("output"), slurmtune: bin, json: c.Bool("json")})
		},
	}
}

// render writes the scripts of a run that would be submitted now. Each file
// is written atomically; the directory gets nothing if rendering fails.
func render(e *env, p *jobs.Pipeline, o renderOptions) error {
	ts, err := templates.New()
	if err != nil {
		return err
	}
	svc := &chain.Service{Templates: ts, Slurmtune: o.slurmtune}
	prep, err := svc.Prepare(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	res := renderResult{Run: prep.ID, RunDir: prep.Dir, Placeholder: true, Files: map[string]string{}}
	var paths []string
	for _, s := range prep.Scripts {
		path := filepath.Join(o.outDir, s.Stage+".sbatch")
		if err := local.WriteFileAtomic(path, s.Body, 0o755); err != nil {
			return fmt.Errorf("render: %w", err)
		}
		res.Files[s.Stage] = path
		paths = append(paths, path)
	}
	if p.StageOn(jobs.StageTrain) {
		// DeepSpeed's config goes beside train.sbatch (submit writes it into
		// the run directory, where SLURMTUNE_DS_CONFIG points).
		ds, err := p.Train.DeepSpeedConfig()
		if err != nil {
			return err
		}
		if ds != nil {
			path := filepath.Join(o.outDir, jobs.DSConfigName)
			if err := local.WriteFileAtomic(path, ds, 0o644); err != nil {
				return fmt.Errorf("render: %w", err)
			}
			res.Files["ds_config"] = path
			paths = append(paths, path)
		}
	}
	e.log.Info("rendered with a placeholder run id and directory: submit makes a new run id", "placeholder_run", prep.ID, "placeholder_run_dir", prep.Dir)
	if o.json {
		return printJSON(e.stdout, res)
	}
	for _, p := range paths {
		fmt.Fprintln(e.stdout, p)
	}
	return nil
}
