package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	slurmrelease "github.com/slurmtune/slurmtune/cmd/slurmtune/release"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// maxGLIBC is the newest C library a release build may ever need: RHEL,
// Rocky and Alma 8 ship glibc 2.28.
const maxGLIBC = "2.28"

// targetGLIBC is the C library the release is built for (build.sh's
// SLURMTUNE_GLIBC, default 2.17); no build may need a newer one.
func targetGLIBC(t *testing.T) string {
	v := os.Getenv("SLURMTUNE_GLIBC")
	if v == "" {
		v = "2.17"
	}
	if slurmrelease.CompareVersions(v, maxGLIBC) > 0 {
		t.Fatalf("SLURMTUNE_GLIBC=%s: release builds must run with glibc %s", v, maxGLIBC)
	}
	return v
}

var arches = []string{"amd64", "arm64"}

// repo is the repository root (tests run in their package's directory).
const repo = "../.."

func distDir() string {
	if d := os.Getenv("SLURMTUNE_DIST"); d != "" {
		return d
	}
	return filepath.Join(repo, "dist")
}

// needBuild returns the path of the release binary for arch, skipping (or
// failing under SLURMTUNE_TEST_STRICT=1) when `make release` has not run.
func needBuild(t *testing.T, arch string) string {
	t.Helper()
	p := filepath.Join(distDir(), slurmrelease.FileName("linux", arch))
	if _, err := os.Stat(p); err != nil {
		slurmtest.Missing(t, "no release build: %v (run `make release`)", err)
	}
	return p
}

// allowedLibraries are the only shared libraries a release binary may need
// at start-up: glibc's own. NVML in particular is dlopened, never needed.
var allowedLibraries = []string{"libc.so.6", "libpthread.so.0", "libdl.so.2", "libresolv.so.2", "libm.so.6",
	"ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}

func TestGLIBCVersions(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			p := needBuild(t, arch)
			b, err := slurmrelease.Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			if b.GOOS != "linux" || b.GOARCH != arch {
				t.Fatalf("%s is built for %s/%s", p, b.GOOS, b.GOARCH)
			}
			if b.GLIBC == "" {
				t.Fatalf("%s requires no GLIBC symbol version: not the dynamically linked cgo build", p)
			}
			if target := targetGLIBC(t); slurmrelease.CompareVersions(b.GLIBC, target) > 0 {
				t.Errorf("%s requires GLIBC_%s, newer than the glibc %s it is built for", p, b.GLIBC, target)
			}
			t.Logf("%s: newest GLIBC symbol version required: %s; needs %v", p, b.GLIBC, b.Libraries)
			for _, l := range b.Libraries {
				if !slices.Contains(allowedLibraries, l) {
					t.Errorf("%s needs %s at start-up; only glibc's libraries are allowed", p, l)
				}
			}
			if b.BindNow {
				t.Errorf("%s binds all symbols at start-up (BIND_NOW): NVML's, left for the dlopen, would stop it starting", p)
			}
			// go-nvml's calls stay undefined, for libnvidia-ml loaded later.
			f, err := elf.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// Stripped: no symbol table, no C debug information (which would
			// carry this machine's build paths).
			for _, sec := range f.Sections {
				if sec.Type == elf.SHT_SYMTAB || strings.HasPrefix(sec.Name, ".debug_") {
					t.Errorf("%s is not stripped: it has %s", p, sec.Name)
				}
			}
			syms, err := f.DynamicSymbols()
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range syms {
				if s.Name == "nvmlInit_v2" {
					found = s.Section == elf.SHN_UNDEF
				}
			}
			if !found {
				t.Errorf("%s: nvmlInit_v2 is not an undefined dynamic symbol; the exporter could not reach a dlopened NVML", p)
			}
		})
	}
}

func TestTarballsAndChecksums(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	license, err := os.ReadFile(filepath.Join(repo, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	var tarballs []string
	for _, arch := range arches {
		bin := needBuild(t, arch)
		matches, _ := filepath.Glob(filepath.Join(distDir(), "slurmtune_*_linux_"+arch+".tar.gz"))
		if len(matches) != 1 {
			t.Fatalf("want one tarball for %s in %s, found %v", arch, distDir(), matches)
		}
		tarballs = append(tarballs, filepath.Base(matches[0]))
		files := readTarball(t, matches[0])
		want := []string{"LICENSE", "README.md", "completions/", "completions/_slurmtune", "completions/slurmtune.bash", "completions/slurmtune.fish", "slurmtune"}
		var names []string
		for n := range files {
			names = append(names, n)
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Errorf("%s holds %v, want %v", matches[0], names, want)
		}
		binData, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if f := files["slurmtune"]; !bytes.Equal(f.data, binData) || f.mode&0o111 == 0 {
			t.Errorf("%s: slurmtune is not %s or not executable (mode %o) (run `make release` again)", matches[0], bin, f.mode)
		}
		if !bytes.Equal(files["README.md"].data, readme) || !bytes.Equal(files["LICENSE"].data, license) {
			t.Errorf("%s: README.md or LICENSE differ from the repository's (run `make release` again)", matches[0])
		}
		if !bytes.Contains(files["completions/slurmtune.bash"].data, []byte("complete -o bashdefault -o default -F _slurmtune_complete slurmtune")) ||
			!bytes.HasPrefix(files["completions/_slurmtune"].data, []byte("#compdef slurmtune")) ||
			!bytes.Contains(files["completions/slurmtune.fish"].data, []byte("complete -c slurmtune")) {
			t.Errorf("%s: completion scripts are not slurmtune's", matches[0])
		}
	}
	sums, err := os.ReadFile(filepath.Join(distDir(), "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for line := range strings.Lines(string(sums)) {
		sum, name, ok := strings.Cut(strings.TrimSpace(line), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: bad line %q", line)
		}
		data, err := os.ReadFile(filepath.Join(distDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("SHA256SUMS: %s has sha256 %x, listed %s", name, got, sum)
		}
		listed = append(listed, name)
	}
	slices.Sort(listed)
	slices.Sort(tarballs)
	if !slices.Equal(listed, tarballs) {
		t.Errorf("SHA256SUMS lists %v, want %v", listed, tarballs)
	}
}

type tarFile struct {
	mode int64
	data []byte
}

func readTarball(t *testing.T, path string) map[string]tarFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]tarFile{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s owned by %d:%d, want 0:0", path, h.Name, h.Uid, h.Gid)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = tarFile{mode: h.Mode, data: data}
	}
	return files
}

// versionLine is `slurmtune --version` of a release build.
var versionLine = regexp.MustCompile(`^slurmtune version (\S+) \(commit ([0-9a-f]{40}), built (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ), linux/(\w+), go[\d.]+\)\n$`)

// checkVersion checks a release build's --version output and that the
// tarball's name carries the same version.
func checkVersion(t *testing.T, arch, out string) {
	t.Helper()
	m := versionLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("--version printed %q, want version, commit, date, platform", out)
	}
	if m[4] != arch {
		t.Errorf("--version says linux/%s, want linux/%s", m[4], arch)
	}
	tarball := filepath.Join(distDir(), "slurmtune_"+strings.TrimPrefix(m[1], "v")+"_linux_"+arch+".tar.gz")
	if _, err := os.Stat(tarball); err != nil {
		t.Errorf("--version says %s but there is no %s", m[1], tarball)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*60e9)
	t.Cleanup(cancel)
	return ctx
}
