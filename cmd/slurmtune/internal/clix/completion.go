package clix

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// CompleteFlag is the hidden flag urfave/cli answers with the commands and
// flags that may come next; the scripts below call the program with it.
const CompleteFlag = "--generate-bash-completion"

// ErrUnknownShell is a shell CompletionScript has no script for.
var ErrUnknownShell = errors.New("unknown shell")

// CompletionScript is the completion script of app for shell: bash, zsh or
// fish.
func CompletionScript(app *cli.App, shell string) (string, error) {
	switch shell {
	case "bash":
		return strings.ReplaceAll(bashCompletion, "PROG", app.Name), nil
	case "zsh":
		return strings.ReplaceAll(zshCompletion, "PROG", app.Name), nil
	case "fish":
		return app.ToFishCompletion()
	}
	return "", fmt.Errorf("%w %q (bash, zsh or fish)", ErrUnknownShell, shell)
}

// Completing reports whether the command line asks for completions: then
// its arguments must stay in the order the shell typed them.
func Completing(args []string) bool {
	return len(args) > 0 && args[len(args)-1] == CompleteFlag
}

// bashCompletion is urfave/cli's autocomplete/bash_autocomplete for one
// program, without its dependency on bash-completion's _init_completion.
const bashCompletion = `# bash completion for PROG: source <(PROG completion bash)
_PROG_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]} opts
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  if [[ $cur == -* ]]; then
    opts=$("${words[@]}" "$cur" ` + CompleteFlag + ` 2>/dev/null)
  else
    opts=$("${words[@]}" ` + CompleteFlag + ` 2>/dev/null)
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
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} ` + CompleteFlag + ` 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ` + CompleteFlag + ` 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _PROG PROG
`
