package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/cmd/slurmtune/internal/clix"
)

// completionCommand is `slurmtune completion bash|zsh|fish`: prints a shell
// completion script (the release tarballs ship their output).
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash: source <(slurmtune completion bash), or save it as\n" +
			"~/.local/share/bash-completion/completions/slurmtune.\n" +
			"zsh: save it as _slurmtune in a directory on $fpath.\n" +
			"fish: save it as ~/.config/fish/completions/slurmtune.fish.",
		BashComplete: func(c *cli.Context) {
			if c.NArg() == 0 {
				fmt.Fprintln(c.App.Writer, "bash\nzsh\nfish")
			}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion: want one shell (bash, zsh or fish), got %d arguments", c.NArg())
			}
			script, err := clix.CompletionScript(c.App, c.Args().First())
			if errors.Is(err, clix.ErrUnknownShell) {
				return usagef("completion: %v", err)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}
