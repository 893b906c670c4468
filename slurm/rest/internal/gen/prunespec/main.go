// Command prunespec writes the part of a slurmrestd OpenAPI document that one
// of slurmtune's REST API versions uses (see package gen). Used by
// scripts/gen-rest.sh:
//
//	go run ./slurm/rest/internal/gen/prunespec -profile v0041 \
//	    -in ../shared/slurm-openapi/slurm-24.05.2-openapi.yaml -out slurm/rest/v0041/openapi.json
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/slurmtune/slurmtune/slurm/rest/internal/gen"
)

func main() {
	profile := flag.String("profile", "", "API version profile (v0038, v0040, v0041)")
	in := flag.String("in", "", "source OpenAPI document (JSON or YAML)")
	out := flag.String("out", "", "pruned JSON document to write")
	flag.Parse()
	if err := run(*profile, *in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "prunespec:", err)
		os.Exit(1)
	}
}

func run(profile, in, out string) error {
	p, ok := gen.Profiles[profile]
	if !ok || in == "" || out == "" {
		return fmt.Errorf("usage: prunespec -profile v0038|v0040|v0041 -in SRC -out DST")
	}
	src, err := gen.Load(in)
	if err != nil {
		return err
	}
	doc, err := gen.Prune(src, p)
	if err != nil {
		return err
	}
	data, err := gen.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(out, data, 0o644)
}
