package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestBashCompletion sources the bash script a tarball ships and completes
// as bash would, with the release binary as the slurmtune on PATH.
func TestBashCompletion(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("runs the amd64 build natively")
	}
	bin := needBuild(t, "amd64")
	bash, err := exec.LookPath("bash")
	if err != nil {
		slurmtest.Missing(t, "no bash: %v", err)
	}
	matches, _ := filepath.Glob(filepath.Join(distDir(), "slurmtune_*_linux_amd64.tar.gz"))
	if len(matches) != 1 {
		t.Fatalf("want one amd64 tarball, found %v", matches)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "slurmtune.bash")
	if err := os.WriteFile(script, readTarball(t, matches[0])["completions/slurmtune.bash"].data, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slurmtune"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		words string // as typed; the last is completed
		want  string
	}{
		{"slurmtune val", "validate"},
		{"slurmtune deploy pro", "promote"},
		{"slurmtune validate --clu", "--cluster"},
		{"slurmtune validate pipeline.yaml --clu", "--cluster"},
		{"slurmtune completion ", "fish"},
	} {
		cmd := exec.CommandContext(ctxFor(t), bash, "--norc", "--noprofile", "-c",
			`source "$1"; COMP_WORDS=($2); [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _slurmtune_complete; printf '%s\n' "${COMPREPLY[@]}"`,
			"bash", script, c.words)
		cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin", "HOME=" + dir}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v: %s", c.words, err, out)
		}
		got := strings.Fields(string(out))
		if !slices.Contains(got, c.want) {
			t.Errorf("completing %q offered %q, want %q among them", c.words, got, c.want)
		}
	}
}
