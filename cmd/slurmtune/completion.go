package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// completeFlag is the hidden flag urfave/cli answers with the commands and
// flags that may come next; the scripts below call slurmtune with it.
const completeFlag = "--generate-bash-completion"

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
			script, err := completionScript(c.App, c.Args().First())
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

func completionScript(app *cli.App, shell string) (string, error) {
	switch shell {
	case "bash":
		return strings.ReplaceAll(bashCompletion, "PROG", app.Name), nil
	case "zsh":
		return strings.ReplaceAll(zshCompletion, "PROG", app.Name), nil
	case "fish":
		return app.ToFishCompletion()
	}
	return "", usagef("completion: unknown shell %q (bash, zsh or fish)", shell)
}

// completing reports whether the command line asks for completions: then
// its arguments must stay in the order the shell typed them.
func completing(args []string) bool {
	return len(args) > 0 && args[len(args)-1] == completeFlag
}

// bashCompletion is urfave/cli's autocomplete/bash_autocomplete for one
// program, without its dependency on bash-completion's _init_completion.
const bashCompletion = `# bash completion for PROG: source <(PROG completion bash)
_PROG_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]} opts
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  if [[ $cur == -* ]]; then
    opts=$("${words[@]}" "$cur" ` + completeFlag + ` 2>/dev/null)
  else
    opts=$("${words[@]}" ` + completeFlag + ` 2>/dev/null)
  fi
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _PROG_complete PROG
`

// zshCompletion is urfave/cli's autocomplete/zsh_autocomplete for one
// program.
const zshCompletion = `#compdef PROG
# zsh completion for PROG: save as _PROG in a directory on $fpath
_PROG() {
  local -a opts
  local cur=${words[-1]}
  if [[ $cur == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} ` + completeFlag + ` 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ` + completeFlag + ` 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _PROG PROG
`
