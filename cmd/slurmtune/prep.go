package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/dataprep"
	"github.com/slurmtune/slurmtune/jobs"
)

func prepCommand() *cli.Command {
	return &cli.Command{
		Name:  "prep",
		Usage: "check, de-duplicate, filter and split training data (the prep stage runs this)",
		UsageText: "slurmtune prep FILE [--set k=v]... [-o DIR]\n" +
			"slurmtune prep --format text|chat|instruction --input PATH... -o DIR [--near-dup=true|false]",
		Flags: []cli.Flag{
			setFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `DIR` (default: the run's data directory, or ./prep-out)"},
			&cli.StringFlag{Name: "format", Usage: "standalone: input format (text, chat, instruction)"},
			&cli.StringSliceFlag{Name: "input", Usage: "standalone: input file, directory or glob (repeatable)"},
			&cli.BoolFlag{Name: "near-dup", Value: true, Usage: "standalone: near-duplicate detection"},
			&cli.IntFlag{Name: "workers", Usage: "worker goroutines (default: all cores)"},
			&cli.BoolFlag{Name: "json", Usage: "print quality_report.json to stdout"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			opts := dataprep.DefaultOptions()
			switch {
			case c.NArg() == 1:
				if c.IsSet("format") || c.IsSet("input") {
					return usagef("prep: give a pipeline FILE or --format/--input, not both")
				}
				p, err := loadPipeline(c)
				if err != nil {
					return err
				}
				opts = prepOptions(p)
				opts.OutDir = c.String("output")
				if opts.OutDir == "" {
					return usagef("prep FILE: -o DIR is required")
				}
			case c.NArg() == 0:
				if !c.IsSet("format") || len(c.StringSlice("input")) == 0 || c.String("output") == "" {
					return usagef("prep: standalone use needs --format, --input and -o (or give a pipeline FILE)")
				}
				opts.Format = dataprep.Format(c.String("format"))
				opts.Inputs = c.StringSlice("input")
				opts.OutDir = c.String("output")
				opts.NearDup.Enabled = c.Bool("near-dup")
			default:
				return usagef("prep: at most one pipeline FILE")
			}
			if c.IsSet("near-dup") {
				opts.NearDup.Enabled = c.Bool("near-dup")
			}
			opts.Workers = c.Int("workers")
			return runPrep(c.Context, e, opts, c.Bool("json"))
		},
	}
}

// prepOptions maps a pipeline's data section onto dataprep's options.
func prepOptions(p *jobs.Pipeline) dataprep.Options {
	o := dataprep.DefaultOptions()
	d := p.Data
	o.Format = dataprep.Format(d.Format)
	o.Inputs = d.Inputs
	o.Split.Train, o.Split.Validation = d.Split.Train, d.Split.Validation
	o.Split.Seed = uint64(d.Split.Seed)
	if d.NearDup.Enabled != nil {
		o.NearDup.Enabled = *d.NearDup.Enabled
	}
	if d.NearDup.Threshold > 0 {
		o.NearDup.Threshold = d.NearDup.Threshold
	}
	if d.NearDup.NumPerm > 0 {
		o.NearDup.NumPerm = d.NearDup.NumPerm
	}
	if d.NearDup.ShingleSize > 0 {
		o.NearDup.ShingleSize = d.NearDup.ShingleSize
	}
	if d.NearDup.Shingle != "" {
		o.NearDup.Shingle = dataprep.ShingleKind(d.NearDup.Shingle)
	}
	if d.Toxicity.Enabled != nil {
		o.Toxicity.Enabled = *d.Toxicity.Enabled
	}
	if d.Toxicity.Threshold > 0 {
		o.Toxicity.Threshold = d.Toxicity.Threshold
	}
	o.Toxicity.WordLists = d.Toxicity.WordLists
	o.Toxicity.Classifier = d.Toxicity.Classifier
	o.Length = dataprep.LengthOptions{MinChars: d.Length.MinChars, MaxChars: d.Length.MaxChars, MinWords: d.Length.MinWords, MaxWords: d.Length.MaxWords}
	if d.PII != "" {
		o.PII.Mode = dataprep.PIIMode(d.PII)
	}
	if d.Checks.MaxRemovedRatio != nil {
		o.Checks.MaxRemovedRatio = *d.Checks.MaxRemovedRatio
	}
	if d.Checks.MaxMalformedRatio != nil {
		o.Checks.MaxMalformedRatio = *d.Checks.MaxMalformedRatio
	}
	if d.Checks.MinExamples != nil {
		o.Checks.MinExamples = *d.Checks.MinExamples
	}
	return o
}

func runPrep(ctx context.Context, e *env, opts dataprep.Options, printJSON bool) error {
	rep, err := dataprep.Run(ctx, opts)
	var cf *dataprep.CheckFailedError
	if err != nil && !errors.As(err, &cf) {
		return fmt.Errorf("prep: %w", err)
	}
	if printJSON && rep != nil {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else if rep != nil {
		fmt.Fprintf(e.stdout, "total %d, kept %d (train %d, validation %d), removed %d; outputs in %s\n",
			rep.Total, rep.Kept, rep.Train, rep.Validation, rep.Total-rep.Kept, opts.OutDir)
	}
	if cf != nil {
		return fmt.Errorf("prep: data checks failed, training must not start: %w", cf)
	}
	return nil
}
