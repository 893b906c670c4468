package release

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	slurmrelease "github.com/slurmtune/slurmtune/cmd/slurmtune/release"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// A userland made by scripts/old-userland.sh up (make test runs it).
type userland struct {
	dir      string
	qemu     string // the emulator inside dir, "" for native
	libcPath string // the C library inside dir, absolute within the chroot
}

func needUserland(t *testing.T, arch string) userland {
	t.Helper()
	if os.Geteuid() != 0 {
		slurmtest.Missing(t, "chroot into the old userland needs root")
	}
	dir := os.Getenv("SLURMTUNE_OLD_USERLAND_" + strings.ToUpper(arch))
	if dir == "" {
		dir = "/var/cache/slurmtune-test/bullseye-" + arch
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		slurmtest.Missing(t, "no %s userland at %s (run scripts/old-userland.sh up): %v", arch, dir, err)
	}
	u := userland{dir: dir}
	switch arch {
	case "amd64":
		u.libcPath = "/lib/x86_64-linux-gnu/libc.so.6"
	case "arm64":
		u.libcPath = "/lib/aarch64-linux-gnu/libc.so.6"
	}
	if runtime.GOARCH != arch {
		if arch != "arm64" {
			slurmtest.Missing(t, "no emulator for %s on %s", arch, runtime.GOARCH)
		}
		u.qemu = "/usr/bin/qemu-aarch64-static"
		if _, err := os.Stat(filepath.Join(dir, u.qemu)); err != nil {
			slurmtest.Missing(t, "no qemu-user in %s: %v", dir, err)
		}
	}
	return u
}

// command is the command line that runs prog, a path inside the userland.
func (u userland) command(prog string) []string {
	if u.qemu != "" {
		return []string{"chroot", u.dir, u.qemu, prog}
	}
	return []string{"chroot", u.dir, prog}
}

// run runs a program of the userland (a path inside it) in a chroot, with
// an environment of its own, and returns stdout, stderr and the error.
func (u userland) run(t *testing.T, prog string, args ...string) (string, string, error) {
	t.Helper()
	argv := append(u.command(prog), args...)
	cmd := exec.CommandContext(ctxFor(t), argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

var libcRelease = regexp.MustCompile(`release version (\d+\.\d+)`)

// glibc returns the userland's C library version, as the library itself
// prints it when run.
func (u userland) glibc(t *testing.T) string {
	t.Helper()
	out, stderr, err := u.run(t, u.libcPath)
	m := libcRelease.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("run %s in %s: %v: %s%s", u.libcPath, u.dir, err, out, stderr)
	}
	return m[1]
}

// copyInto copies host files into a fresh directory under the userland's
// /tmp and returns that directory's path inside the chroot.
func (u userland) copyInto(t *testing.T, files map[string]string) string {
	t.Helper()
	host, err := os.MkdirTemp(filepath.Join(u.dir, "tmp"), "slurmtune-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(host, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return "/" + strings.TrimPrefix(host, u.dir+"/")
}

// TestOldUserland runs each release build where the C library is older than
// the one it was built on: --version, validate on the example pipeline and
// status against a fresh SQLite file.
func TestOldUserland(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			bin := needBuild(t, arch)
			u := needUserland(t, arch)
			libc := u.glibc(t)
			t.Logf("%s userland %s: glibc %s (emulator %q)", arch, u.dir, libc, u.qemu)
			if slurmrelease.CompareVersions(libc, "2.34") >= 0 {
				t.Errorf("%s has glibc %s: not older than what a build on this machine needs (2.34)", u.dir, libc)
			}
			files := map[string]string{
				"slurmtune":                       bin,
				"examples/tiny/pipeline.yaml":     filepath.Join(repo, "examples/tiny/pipeline.yaml"),
				"examples/tiny/data/corpus.jsonl": filepath.Join(repo, "examples/tiny/data/corpus.jsonl"),
				"scripts/payloads/tiny_lm.py":     filepath.Join(repo, "scripts/payloads/tiny_lm.py"),
			}
			dir := u.copyInto(t, files)
			st := dir + "/slurmtune"

			out, stderr, err := u.run(t, st, "--version")
			if err != nil {
				t.Fatalf("--version in %s: %v: %s", u.dir, err, stderr)
			}
			checkVersion(t, arch, out)

			// validate looks up the files the jobs read: the userland has
			// no Python, so an interpreter it has stands in.
			if out, stderr, err := u.run(t, st, "validate", dir+"/examples/tiny/pipeline.yaml", "--set", "train.python=/bin/sh", "--set", "eval.python=/bin/sh"); err != nil {
				t.Errorf("validate in %s: %v: %s%s", u.dir, err, out, stderr)
			}

			db := dir + "/state/slurmtune.db"
			out, stderr, err = u.run(t, st, "--db", db, "status", "--json")
			if err != nil {
				t.Fatalf("status in %s: %v: %s", u.dir, err, stderr)
			}
			var status struct {
				Runs []json.RawMessage `json:"runs"`
			}
			if err := json.Unmarshal([]byte(out), &status); err != nil || status.Runs == nil || len(status.Runs) != 0 {
				t.Errorf("status --json on a fresh database printed %q (%v), want no runs", out, err)
			}
			header := make([]byte, 16)
			f, err := os.Open(filepath.Join(u.dir, db))
			if err != nil {
				t.Fatalf("status made no database: %v", err)
			}
			defer f.Close()
			if _, err := f.Read(header); err != nil || string(header) != "SQLite format 3\x00" {
				t.Errorf("%s is not an SQLite database: %q %v", db, header, err)
			}
		})
	}
}

// TestOldUserlandRefusesNewerBuilds is the control: a program built here
// the ordinary way (gcc against this machine's glibc) does not start in the
// amd64 userland, so the release build starting there means something.
func TestOldUserlandRefusesNewerBuilds(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the control builds for amd64")
	}
	u := needUserland(t, "amd64")
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		slurmtest.Missing(t, "no gcc for the control program: %v", err)
	}
	src := filepath.Join(t.TempDir(), "hello.c")
	if err := os.WriteFile(src, []byte("#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "hello")
	if out, err := exec.CommandContext(ctxFor(t), gcc, "-o", exe, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v: %s", err, out)
	}
	b, err := slurmrelease.Inspect(exe)
	if err != nil {
		t.Fatal(err)
	}
	libc := u.glibc(t)
	if slurmrelease.CompareVersions(b.GLIBC, libc) <= 0 {
		t.Skipf("this machine's gcc builds need only GLIBC_%s, which %s has: no control", b.GLIBC, u.dir)
	}
	dir := u.copyInto(t, map[string]string{"hello": exe})
	_, stderr, err := u.run(t, dir+"/hello")
	if err == nil || !strings.Contains(stderr, "GLIBC_"+b.GLIBC+"' not found") {
		t.Errorf("a program needing GLIBC_%s ran in a glibc %s userland: err %v, stderr %q", b.GLIBC, libc, err, stderr)
	}
}
