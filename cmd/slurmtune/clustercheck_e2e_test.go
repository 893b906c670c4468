package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestE2EClusterCheck: `cluster check` connects over each transport and
// prints the transport, Slurm version, API version and partitions; an
// unreachable cluster is one line and exit 1.
func TestE2EClusterCheck(t *testing.T) {
	slurmtest.RequireCluster(t)
	for _, transport := range []string{"local", "ssh", "rest"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			args := []string{"cluster", "check", tinyPipeline(t)}
			if transport != "local" {
				args = append(args, transportSets(t, transport)...)
			}
			r := slurmtune(t, filepath.Join(t.TempDir(), "st.db"), args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, want := range []string{"transport: " + transport, "slurm version: 22.05", "partitions:", "debug (default): up, 2 nodes"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, r.stdout)
				}
			}
			if transport == "rest" && !strings.Contains(r.stdout, "api version: v0.0.38") {
				t.Errorf("REST output lacks the API version:\n%s", r.stdout)
			}
			if !strings.Contains(r.stdout, "compute slurmtune: "+binPath+" (this binary)") {
				t.Errorf("output lacks the compute-side binary:\n%s", r.stdout)
			}
		})
	}
	// The compute-side binary over ssh: upload by default; a missing named
	// binary is exit 1 with what to set.
	t.Run("ssh/binary", func(t *testing.T) {
		d := needSSH(t)
		t.Parallel()
		db := filepath.Join(t.TempDir(), "st.db")
		r := slurmtune(t, db, append([]string{"cluster", "check", tinyPipeline(t)}, d.connSets()...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "compute slurmtune: upload "+binPath+" (linux/amd64, version ") {
			t.Errorf("default: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = slurmtune(t, db, append([]string{"cluster", "check", tinyPipeline(t), "--set", "cluster.slurmtune=slurmtune"}, d.connSets()...)...)
		if r.code != 1 || !strings.Contains(r.stderr, `cluster.slurmtune: "slurmtune" does not run on `+d.host) {
			t.Errorf("missing named binary: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		r := slurmtune(t, filepath.Join(t.TempDir(), "st.db"), "cluster", "check", tinyPipeline(t),
			"--set", "cluster.transport=rest", "--set", "cluster.rest.url=http://127.0.0.1:1")
		if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "cannot reach slurmrestd") {
			t.Errorf("exit %d: %q", r.code, r.stderr)
		}
	})
}
