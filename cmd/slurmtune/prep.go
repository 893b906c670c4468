package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/dataprep"
	"github.com/slurmtune/slurmtune/jobs/stage"
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
			jsonFlag("print quality_report.json to stdout"),
		},
		Action: envAction(func(c *cli.Context, e *env) error {
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
				opts = stage.PrepOptions(p)
				if opts.OutDir = c.String("output"); opts.OutDir == "" {
					return usagef("prep FILE: -o DIR is required")
				}
			case c.NArg() == 0:
				if !c.IsSet("format") || len(c.StringSlice("input")) == 0 || c.String("output") == "" {
					return usagef("prep: standalone use needs --format, --input and -o (or give a pipeline FILE)")
				}
				opts.Format, opts.Inputs, opts.OutDir = dataprep.Format(c.String("format")), c.StringSlice("input"), c.String("output")
			default:
				return usagef("prep: at most one pipeline FILE")
			}
			if c.IsSet("near-dup") || c.NArg() == 0 {
				opts.NearDup.Enabled = c.Bool("near-dup")
			}
			opts.Workers = c.Int("workers")
			rep, err := dataprep.Run(c.Context, opts)
			var cf *dataprep.CheckFailedError
			if err != nil && !errors.As(err, &cf) {
				return fmt.Errorf("prep: %w", err)
			}
			if c.Bool("json") && rep != nil {
				if err := printJSON(e.stdout, rep); err != nil {
					return err
				}
			} else if rep != nil {
				fmt.Fprintf(e.stdout, "total %d, kept %d (train %d, validation %d), removed %d; outputs in %s\n",
					rep.Total, rep.Kept, rep.Train, rep.Validation, rep.Total-rep.Kept, opts.OutDir)
			}
			if cf != nil {
				return fmt.Errorf("prep: data checks failed, training must not start: %w", cf)
			}
			return nil
		}),
	}
}
