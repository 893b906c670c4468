// Package clix is what slurmtune adds to urfave/cli: flags accepted after
// positional arguments, shell completion scripts, and the version line.
package clix

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// ReorderArgs moves each command's flags ahead of its positional arguments,
// so `slurmtune validate FILE --set k=v` works as documented (urfave/cli
// stops reading flags at the first positional argument). Everything after
// "--" stays positional; commands that skip flag parsing are left alone.
// A flag that takes a value but is last, or followed by another flag, is a
// usage error (never a value taken from the next flag, or a "--"); it is the
// only error ReorderArgs returns. A command line asking for completions
// (Completing) is left as the shell typed it.
func ReorderArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 || Completing(args) {
		return args, nil
	}
	out := []string{args[0]}
	i := 1
	// Global flags come first.
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		out = append(out, args[i])
		if takesValue(app.Flags, args[i]) && !strings.Contains(args[i], "=") {
			v, err := flagValue(args, i)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			i++
		}
		i++
	}
	if i >= len(args) {
		return out, nil
	}
	cmds := app.Commands
	for i < len(args) {
		cmd := findCommand(cmds, args[i])
		if cmd == nil || cmd.SkipFlagParsing {
			return append(out, args[i:]...), nil
		}
		out = append(out, args[i])
		i++
		if len(cmd.Subcommands) > 0 && i < len(args) && findCommand(cmd.Subcommands, args[i]) != nil {
			cmds = cmd.Subcommands
			continue
		}
		var flags, pos []string
		for i < len(args) {
			a := args[i]
			if a == "--" {
				pos = append(pos, args[i+1:]...)
				break
			}
			if strings.HasPrefix(a, "-") && a != "-" {
				flags = append(flags, a)
				if takesValue(cmd.Flags, a) && !strings.Contains(a, "=") {
					v, err := flagValue(args, i)
					if err != nil {
						return nil, err
					}
					flags = append(flags, v)
					i++
				}
			} else {
				pos = append(pos, a)
			}
			i++
		}
		out = append(out, flags...)
		if len(pos) > 0 {
			out = append(out, "--")
			out = append(out, pos...)
		}
		return out, nil
	}
	return out, nil
}

// flagValue is the value after the flag at args[i]: there must be one, and
// it must not be another flag.
func flagValue(args []string, i int) (string, error) {
	if i+1 >= len(args) || args[i+1] == "--" || len(args[i+1]) > 1 && strings.HasPrefix(args[i+1], "-") {
		return "", fmt.Errorf("%s needs a value", args[i])
	}
	return args[i+1], nil
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the flag arg names a flag that takes a value.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		name = name[:i]
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if dg, ok := f.(cli.DocGenerationFlag); ok {
				return dg.TakesValue()
			}
			return true
		}
	}
	return false
}
