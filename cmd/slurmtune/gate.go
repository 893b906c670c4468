package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/dataprep"
	"github.com/slurmtune/slurmtune/eval"
	"github.com/slurmtune/slurmtune/jobs"
)

type gateOptions struct {
	predictions, nll []string
	human            string
	out              string
	gates            []string
}

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
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			o := gateOptions{predictions: c.StringSlice("predictions"), nll: c.StringSlice("nll"), human: c.String("human"),
				out: c.String("output"), gates: c.StringSlice("gate")}
			if len(o.predictions) == 0 && len(o.nll) == 0 && o.human == "" {
				return usagef("gate: nothing to judge: give --predictions FILE (and --nll FILE for perplexity)")
			}
			var p *jobs.Pipeline
			switch c.NArg() {
			case 0:
				if len(o.gates) == 0 {
					return usagef("gate: give a pipeline FILE or at least one --gate")
				}
			case 1:
				if p, err = loadPipeline(c); err != nil {
					return err
				}
			default:
				return usagef("gate: at most one pipeline FILE")
			}
			return runGate(c.Context, e, p, o)
		},
	}
}

// pipelineGates turns eval.gates of a pipeline into gate specs.
func pipelineGates(p *jobs.Pipeline) []string {
	names := make([]string, 0, len(p.Eval.Gates))
	for m := range p.Eval.Gates {
		names = append(names, m)
	}
	sort.Strings(names)
	var specs []string
	for _, m := range names {
		g := p.Eval.Gates[m]
		if g.Min != nil {
			specs = append(specs, fmt.Sprintf("%s>=%v", m, *g.Min))
		}
		if g.Max != nil {
			specs = append(specs, fmt.Sprintf("%s<=%v", m, *g.Max))
		}
	}
	return specs
}

func runGate(ctx context.Context, e *env, p *jobs.Pipeline, o gateOptions) error {
	specs := o.gates
	tox := dataprep.DefaultOptions().Toxicity
	if p != nil {
		specs = append(pipelineGates(p), specs...)
		tox = prepOptions(p).Toxicity
	}
	gates, err := eval.ParseGates(specs)
	if err != nil {
		return usageError{fmt.Errorf("gate: %w", err)}
	}
	in := eval.Inputs{PredictionPaths: o.predictions, NLLPaths: o.nll, HumanCSVPath: o.human, Gates: gates}
	if tox.Enabled {
		scorer, err := dataprep.NewToxicityScorer(tox)
		if err != nil {
			return fmt.Errorf("gate: %w", err)
		}
		in.Toxicity = scorer
	}
	rep, err := eval.Evaluate(ctx, in)
	if err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	if err := eval.WriteReport(out, rep); err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	for _, g := range rep.Gates {
		fmt.Fprintln(e.stdout, gateLine(g))
	}
	if !rep.Passed {
		return exitError{code: exitGate, msg: fmt.Sprintf("slurmtune: gate failed; report in %s", out)}
	}
	fmt.Fprintf(e.stdout, "all gates passed; report in %s\n", out)
	return nil
}

func gateLine(g eval.GateResult) string {
	verdict := "PASS"
	if !g.Passed {
		verdict = "FAIL"
	}
	val := "missing"
	if g.Value != nil {
		val = fmt.Sprintf("%.4g", *g.Value)
	}
	s := fmt.Sprintf("%s %s %s %g: %s", verdict, g.Metric, g.Op, g.Threshold, val)
	if g.Reason != "" {
		s += " (" + g.Reason + ")"
	}
	return s
}
