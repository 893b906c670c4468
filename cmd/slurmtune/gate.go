package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/eval"
	"github.com/slurmtune/slurmtune/jobs/stage"
)

func gateCommand() *cli.Command {
	return &cli.Command{
		Name:  "gate",
		Usage: "compute eval metrics and check the quality gates; exit 0 when all pass, 3 when one fails",
		UsageText: "slurmtune gate FILE --predictions P.jsonl [--nll N.jsonl] [--human H.csv] [-o report.json]\n" +
			"slurmtune gate --gate 'bleu>=40' [--gate ...] --predictions P.jsonl [--nll N.jsonl] [-o report.json]",
		Flags: []cli.Flag{
			setFlag(),
			&cli.StringSliceFlag{Name: "predictions", Usage: "prediction JSONL `FILE` (repeatable)"},
			&cli.StringSliceFlag{Name: "nll", Usage: "token NLL JSONL `FILE` (repeatable: shards)"},
			&cli.StringFlag{Name: "human", Usage: "filled-in review CSV"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "eval_report.json", Usage: "where to write the report"},
			&cli.StringSliceFlag{Name: "gate", Usage: "standalone gate such as 'perplexity<=15' (repeatable)"},
			&cli.IntFlag{Name: "max-text-bytes", Usage: "longest prediction or reference accepted, in `BYTES` (default: eval.max_text_bytes, else 1 MiB)"},
		},
		Action: envAction(func(c *cli.Context, e *env) error {
			g := stage.Gate{Output: c.String("output"), Inputs: eval.Inputs{PredictionPaths: c.StringSlice("predictions"),
				NLLPaths: c.StringSlice("nll"), HumanCSVPath: c.String("human"), MaxTextBytes: c.Int("max-text-bytes")}}
			specs := c.StringSlice("gate")
			var err error
			if len(g.Inputs.PredictionPaths) == 0 && len(g.Inputs.NLLPaths) == 0 && g.Inputs.HumanCSVPath == "" {
				return usagef("gate: nothing to judge: give --predictions FILE (and --nll FILE for perplexity)")
			}
			switch {
			case c.NArg() > 1:
				return usagef("gate: at most one pipeline FILE")
			case c.NArg() == 0 && len(specs) == 0:
				return usagef("gate: give a pipeline FILE or at least one --gate")
			case c.NArg() == 1:
				if g.Pipeline, err = loadPipeline(c); err != nil {
					return err
				}
				specs = append(stage.GateSpecs(g.Pipeline), specs...)
			}
			if g.Inputs.Gates, err = eval.ParseGates(specs); err != nil {
				return usageError{fmt.Errorf("gate: %w", err)}
			}
			rep, out, err := g.Run(c.Context)
			if err != nil {
				return err
			}
			rep.WriteGates(e.stdout)
			if !rep.Passed {
				return exitError{code: exitGate, msg: fmt.Sprintf("slurmtune: gate failed; report in %s", out)}
			}
			fmt.Fprintf(e.stdout, "all gates passed; report in %s\n", out)
			return nil
		}),
	}
}
