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
}

func renderCommand() *cli.Command {
	return &cli.Command{
		Name:      "render",
		Usage:     "write each enabled stage's sbatch script to DIR without submitting",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			setFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "directory to write the scripts to", Required: true},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			p, err := loadPipeline(c)
			if err != nil {
				return err
			}
			bin, err := slurmtuneOnCluster(p.Cluster)
			if err != nil {
				return err
			}
			return render(e, p, renderOptions{outDir: c.String("output"), slurmtune: bin})
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
	modes := p.Modes()
	if err := os.MkdirAll(o.outDir, modes.Dir); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	for _, s := range prep.Scripts {
		path := filepath.Join(o.outDir, s.Stage+".sbatch")
		if err := local.WriteFileAtomic(path, s.Body, modes.Script); err != nil {
			return fmt.Errorf("render: %w", err)
		}
		fmt.Fprintln(e.stdout, path)
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
			if err := local.WriteFileAtomic(path, ds, modes.File); err != nil {
				return fmt.Errorf("render: %w", err)
			}
			fmt.Fprintln(e.stdout, path)
		}
	}
	e.log.Info("rendered", "run", prep.ID, "run_dir", prep.Dir)
	return nil
}
