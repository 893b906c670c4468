package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a pipeline file; exit 0 when valid, 2 with FILE:LINE:COL messages when not",
		ArgsUsage: "FILE",
		Flags:     []cli.Flag{setFlag()},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			p, err := loadPipeline(c)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: valid (stages: %v)\n", c.Args().First(), p.Stages())
			return nil
		},
	}
}
