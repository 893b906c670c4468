package main

import (
	"encoding/json"
	"io"

	"github.com/urfave/cli/v2"
)

// jsonFlag is the --json flag of a command that prints a result.
func jsonFlag(usage string) cli.Flag {
	if usage == "" {
		usage = "print the result as JSON"
	}
	return &cli.BoolFlag{Name: "json", Usage: usage}
}

// printJSON writes v to w as one indented JSON document: the result of a
// command run with --json (progress and warnings stay on stderr).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
