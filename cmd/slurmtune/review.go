package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/eval"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/templates"
)

func reviewCommand() *cli.Command {
	return &cli.Command{
		Name:  "review",
		Usage: "human evaluation: export a sample of a run's predictions for raters, import their 1-5 scores",
		Subcommands: []*cli.Command{
			{
				Name:      "export",
				Usage:     "write a CSV sample of the run's predictions with an empty score column",
				ArgsUsage: "RUN",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "n", Value: 100, Usage: "how many predictions to sample (0: all)"},
					&cli.Int64Flag{Name: "seed", Value: 1, Usage: "sampling seed"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of stdout"},
					jsonFlag(`with -o: print {"run", "sampled", "output"}`),
				},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					if c.NArg() != 1 {
						return usagef("review export: want one RUN")
					}
					if c.Bool("json") && c.String("output") == "" {
						return usagef("review export: --json needs -o FILE (the CSV goes there)")
					}
					return reviewExport(c.Context, e, c.Args().First(), c.Int("n"), c.Int64("seed"), c.String("output"), c.Bool("json"))
				},
			},
			{
				Name:      "import",
				Usage:     "record raters' 1-5 scores for a run (the human_eval gate reads them)",
				ArgsUsage: "RUN FILE",
				Flags:     []cli.Flag{jsonFlag(`print {"run", "scores", "mean"}`)},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					if c.NArg() != 2 {
						return usagef("review import: want RUN FILE")
					}
					return reviewImport(c.Context, e, c.Args().Get(0), c.Args().Get(1), c.Bool("json"))
				},
			},
		},
	}
}

func reviewExport(ctx context.Context, e *env, runID string, n int, seed int64, out string, asJSON bool) error {
	rs, err := openRun(ctx, e, runID)
	if err != nil {
		return err
	}
	defer rs.close()
	r := rs.run
	cl, err := rs.cluster(ctx)
	if err != nil {
		return err
	}
	path := filepath.Join(templates.LayoutOf(r.RunDir).Eval, "predictions.jsonl")
	data, err := cl.fs.ReadFile(ctx, path)
	if err != nil {
		return fmt.Errorf("review export: the run's predictions: %w", err)
	}
	var preds []eval.Prediction
	rd := eval.NewPredictionReader(bytes.NewReader(data), path)
	for {
		p, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("review export: %w", err)
		}
		preds = append(preds, p.Clone())
	}
	var buf bytes.Buffer
	if err := eval.WriteReviewSample(&buf, preds, n, seed); err != nil {
		return fmt.Errorf("review export: %w", err)
	}
	if out == "" {
		_, err = e.stdout.Write(buf.Bytes())
		return err
	}
	if err := local.WriteFileAtomic(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if asJSON {
		sampled := len(preds)
		if n > 0 && n < sampled {
			sampled = n
		}
		return printJSON(e.stdout, struct {
			Run     string `json:"run"`
			Sampled int    `json:"sampled"`
			Output  string `json:"output"`
		}{r.ID, sampled, out})
	}
	return nil
}

// reviewImport checks the scores, stores the file beside the run's
// predictions (where the eval stage's gate finds it) and records the mean.
func reviewImport(ctx context.Context, e *env, runID, file string, asJSON bool) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("review import: %w", err)
	}
	scores, err := eval.ReadReviewScores(bytes.NewReader(data))
	if err != nil {
		return usageError{fmt.Errorf("review import %s: %w", file, err)}
	}
	mean, ok := eval.MeanHumanScore(scores)
	if !ok {
		return usagef("review import %s: no scored rows", file)
	}
	rs, err := openRun(ctx, e, runID)
	if err != nil {
		return err
	}
	defer rs.close()
	r := rs.run
	cl, err := rs.cluster(ctx)
	if err != nil {
		return err
	}
	dir := templates.LayoutOf(r.RunDir).Eval
	if err := cl.fs.MkdirAll(ctx, dir, 0o755); err != nil {
		return err
	}
	if err := cl.fs.WriteFile(ctx, filepath.Join(dir, "human.csv"), data, 0o644); err != nil {
		return fmt.Errorf("review import: %w", err)
	}
	if err := rs.st.SetMetric(ctx, r.ID, "eval", "human_eval", mean); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.stdout, struct {
			Run    string  `json:"run"`
			Scores int     `json:"scores"`
			Mean   float64 `json:"mean"`
		}{r.ID, len(scores), mean})
	}
	fmt.Fprintf(e.stdout, "%d scores, mean %.3f, recorded for run %s\n", len(scores), mean, r.ID)
	return nil
}
