// Package slurmtest finds the dev cluster (scripts/dev-cluster.sh) for
// integration tests. A test whose component is missing skips in a bare
// `go test`; with SLURMTUNE_TEST_STRICT=1 (as `make test` and CI set it)
// the skip becomes a failure.
package slurmtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Strict reports whether missing components fail tests instead of skipping.
func Strict() bool { return os.Getenv("SLURMTUNE_TEST_STRICT") == "1" }

// Missing skips the test, or fails it in strict mode.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("SLURMTUNE_TEST_STRICT=1 and a component is missing: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireCluster returns once the Slurm cluster that SLURM_CONF names
// answers; otherwise it skips (or fails in strict mode).
func RequireCluster(t testing.TB) {
	t.Helper()
	if os.Getenv("SLURM_CONF") == "" {
		Missing(t, "no dev cluster: SLURM_CONF is not set (run `eval \"$(scripts/dev-cluster.sh env)\"`)")
	}
	if _, err := exec.LookPath("sbatch"); err != nil {
		Missing(t, "no dev cluster: sbatch not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "scontrol", "ping").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "UP") {
		Missing(t, "no dev cluster: scontrol ping: %v: %s", err, out)
	}
}

// Run runs a command on the cluster's login side and returns its stdout,
// failing the test on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out)
}

// JobField returns one field of `scontrol show job ID` (e.g. "Dependency").
func JobField(t testing.TB, id, key string) string {
	t.Helper()
	out := Run(t, "scontrol", "--oneliner", "show", "job", id)
	for _, tok := range strings.Fields(out) {
		if k, v, ok := strings.Cut(tok, "="); ok && k == key {
			return v
		}
	}
	return ""
}
