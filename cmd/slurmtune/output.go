package main

import (
	"encoding/json"
	"io"
	"text/tabwriter"

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

// newTable is the aligned table every command prints its result in (Flush
// it at the end).
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }
