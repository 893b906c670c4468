package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/templates"
)

func deployCommand() *cli.Command {
	return &cli.Command{
		Name:  "deploy",
		Usage: "deploy stage commands",
		Subcommands: []*cli.Command{
			{
				Name:  "record",
				Usage: "record the model a run would serve (the deploy stage runs this on the cluster)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "run-dir", Required: true, Usage: "the run directory"},
					&cli.StringFlag{Name: "strategy", Value: "record", Usage: "the deploy strategy named in the pipeline"},
				},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					return deployRecord(e, c.String("run-dir"), c.String("strategy"))
				},
			},
		},
	}
}

// deployRecord is what the deploy stage does until serving is configured: it
// checks that the run produced a complete final checkpoint, hashes it, and
// writes deploy.json in the run directory.
func deployRecord(e *env, runDir, strategy string) error {
	l := templates.LayoutOf(runDir)
	p, err := jobs.Load(l.Pipeline, jobs.LoadOptions{})
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	final := filepath.Join(l.Checkpoints, "final")
	if _, err := os.Stat(filepath.Join(final, "COMPLETE")); err != nil {
		return fmt.Errorf("deploy: no complete final checkpoint in %s: %w", final, err)
	}
	sum, err := hashDir(final)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	host, _ := os.Hostname()
	rec := map[string]any{
		"run_id":      os.Getenv("SLURMTUNE_RUN_ID"),
		"job_id":      os.Getenv("SLURM_JOB_ID"),
		"model":       p.Model.Name,
		"checkpoint":  final,
		"sha256":      sum,
		"strategy":    strategy,
		"host":        host,
		"recorded_at": time.Now().UTC().Format(time.RFC3339),
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(runDir, "deploy.json")
	if err := local.WriteFileAtomic(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	fmt.Fprintf(e.stdout, "recorded model %s (sha256 %s) in %s\n", p.Model.Name, sum, path)
	return nil
}

// hashDir hashes the names and contents of the regular files under dir, in
// name order.
func hashDir(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00", rel)
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
