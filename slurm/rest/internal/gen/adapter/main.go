// Command adapter writes the REST adapters derived from api0040.go
// (slurm/rest/api0041.go; see package gen's DeriveAdapter). Used by
// scripts/gen-rest.sh, from the repository root:
//
//	go run ./slurm/rest/internal/gen/adapter
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/slurmtune/slurmtune/slurm/rest/internal/gen"
)

func main() {
	dir := flag.String("dir", "slurm/rest", "the REST transport's package directory")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "adapter:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	src, err := os.ReadFile(filepath.Join(dir, "api0040.go"))
	if err != nil {
		return err
	}
	var versions []string
	for v := range gen.AdapterRenames {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		out, err := gen.DeriveAdapter(src, "0040", v)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "api"+v+".go"), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}
