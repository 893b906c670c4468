package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/slurmtune/slurmtune/jobs"
)

// Fingerprint identifies a pipeline's inputs for `submit --if-changed`: the
// content of every data input file (globs expanded, in name order), the
// resolved pipeline (its snapshot, with --set overrides applied) and the
// payload code (the train and eval scripts). The same inputs give the same
// fingerprint on any machine.
func Fingerprint(p *jobs.Pipeline) (string, error) {
	h := sha256.New()
	snap, err := p.Snapshot()
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	fmt.Fprintf(h, "pipeline %d\n", len(snap))
	h.Write(snap)
	var files []string
	for _, in := range p.Data.Inputs {
		matches, err := filepath.Glob(in)
		if err != nil {
			return "", fmt.Errorf("fingerprint: data input %s: %w", in, err)
		}
		if len(matches) == 0 {
			matches = []string{in}
		}
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.IsDir() {
				sub, _ := filepath.Glob(filepath.Join(m, "*.jsonl"))
				files = append(files, sub...)
				continue
			}
			files = append(files, m)
		}
	}
	sort.Strings(files)
	for _, group := range []struct {
		kind  string
		paths []string
	}{{"data", files}, {"code", []string{p.Train.Script, p.Eval.Script}}} {
		for _, f := range group.paths {
			if f == "" {
				continue
			}
			if err := hashFile(h, group.kind, f); err != nil {
				return "", fmt.Errorf("fingerprint: %w", err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(h io.Writer, kind, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s %s %d\n", kind, filepath.Base(path), fi.Size())
	_, err = io.Copy(h, f)
	return err
}
