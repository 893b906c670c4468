package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs/stage"
	"github.com/slurmtune/slurmtune/store"
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
				Action: envAction(func(c *cli.Context, e *env) error {
					out := c.String("output")
					if c.NArg() != 1 {
						return usagef("review export: want one RUN")
					}
					if c.Bool("json") && out == "" {
						return usagef("review export: --json needs -o FILE (the CSV goes there)")
					}
					return withRunFiles(c, e, c.Args().First(), func(r *store.Run, files stage.RunFiles, _ *store.Store) error {
						csv, x, err := stage.ExportReview(c.Context, files, r.ID, r.RunDir, c.Int("n"), c.Int64("seed"), out)
						switch {
						case err != nil:
							return err
						case out == "":
							_, err = e.stdout.Write(csv)
							return err
						case c.Bool("json"):
							return printJSON(e.stdout, x)
						}
						return nil
					})
				}),
			},
			{
				Name:      "import",
				Usage:     "record raters' 1-5 scores for a run (the human_eval gate reads them)",
				ArgsUsage: "RUN FILE",
				Flags:     []cli.Flag{jsonFlag(`print {"run", "scores", "mean"}`)},
				Action: envAction(func(c *cli.Context, e *env) error {
					if c.NArg() != 2 {
						return usagef("review import: want RUN FILE")
					}
					rv, err := stage.ReadReview(c.Args().Get(1))
					if errors.As(err, new(stage.BadReviewError)) {
						return usageError{err}
					} else if err != nil {
						return err
					}
					return withRunFiles(c, e, c.Args().Get(0), func(r *store.Run, files stage.RunFiles, st *store.Store) error {
						res, err := rv.Import(c.Context, files, st, r.ID, r.RunDir)
						return printResult(e, c.Bool("json"), res, err)
					})
				}),
			},
		},
	}
}

// withRunFiles runs fn on the run id (or unique prefix) and the filesystem
// of its cluster.
func withRunFiles(c *cli.Context, e *env, id string, fn func(r *store.Run, files stage.RunFiles, st *store.Store) error) error {
	rs, err := openRun(c.Context, e, id)
	if err != nil {
		return err
	}
	defer rs.close()
	cl, err := rs.cluster(c.Context)
	if err != nil {
		return err
	}
	return fn(rs.run, cl.fs, rs.st)
}
