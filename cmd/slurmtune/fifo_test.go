package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInputsMustBeRegularFiles: a FIFO (or another non-regular file) given
// to prep, gate or validate is refused with one clear line instead of
// blocking the command forever on open.
func TestInputsMustBeRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "in.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"validate": {"validate", fifo},
		"prep":     {"prep", "--format", "text", "--input", fifo, "-o", filepath.Join(dir, "out")},
		"gate":     {"gate", "--gate", "bleu>=1", "--predictions", fifo, "-o", filepath.Join(dir, "r.json")},
		"gate nll": {"gate", "--gate", "perplexity<=10", "--nll", fifo, "-o", filepath.Join(dir, "r2.json")},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath, args...)
			cmd.Env = append(os.Environ(), "SLURMTUNE_DB="+filepath.Join(dir, name+".db"))
			var se bytes.Buffer
			cmd.Stderr = &se
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("%v hung on a FIFO", args)
			}
			if err == nil {
				t.Fatalf("%v accepted a FIFO", args)
			}
			msg := strings.TrimSpace(se.String())
			if !strings.Contains(msg, "not a regular file") || !strings.Contains(msg, fifo) || strings.Count(msg, "\n") > 0 {
				t.Errorf("stderr %q: want one line naming %s as not a regular file", msg, fifo)
			}
		})
	}
}

// TestValidateWarnsOnTokenLikeEnv: validate passes a pipeline with a
// token-looking environment.env value but says where and why, without
// printing the value.
func TestValidateWarnsOnTokenLikeEnv(t *testing.T) {
	t.Parallel()
	r := slurmtune(t, filepath.Join(t.TempDir(), "st.db"), "validate", quickPipeline(t),
		"--set", "environment.env.HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123")
	if r.code != 0 {
		t.Fatalf("validate: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: environment.env.HF_TOKEN: the value looks like a token (hf_...)") ||
		!strings.Contains(r.stderr, "environment.secrets.HF_TOKEN") || strings.Contains(r.stderr, "abcdefghijklmnop") {
		t.Errorf("stderr %q", r.stderr)
	}
}
