package main

import (
	"strings"
	"testing"
)

func TestCompletionCommand(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "complete -o bashdefault -o default -F _slurmtune_complete slurmtune\n",
		"zsh":  "compdef _slurmtune slurmtune\n",
		"fish": "complete -c slurmtune ",
	} {
		r := inProcess(t, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, want) || r.stderr != "" {
			t.Errorf("completion %s: exit %d, stdout %q..., stderr %q", shell, r.code, firstLine(r.stdout), r.stderr)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		r := inProcess(t, args...)
		if r.code != exitInvalid || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 2 and one line", args, r.code, r.stderr, r.stdout)
		}
	}
}

func TestVersionLine(t *testing.T) {
	r := inProcess(t, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "slurmtune version ") || !strings.Contains(r.stdout, "(commit ") || !strings.Contains(r.stdout, ", built ") {
		t.Errorf("--version: exit %d, %q", r.code, r.stdout)
	}
}
