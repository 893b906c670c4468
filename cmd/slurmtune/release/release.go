// Package release finds and inspects slurmtune's portable release builds
// (`make release`, scripts/release/build.sh): which one matches a cluster's
// OS and architecture, and what C library each needs to start. It owns the
// file names of those builds, slurmtune-GOOS-GOARCH, and reading ELF files;
// it copies nothing (uploading is the chain's job).
package release

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Build is one slurmtune executable and what it needs to run.
type Build struct {
	Path   string
	GOOS   string
	GOARCH string
	// GLIBC is the newest GLIBC_x.y symbol version the binary requires
	// ("2.28"), or "" when it requires none (a static binary).
	GLIBC string
	// Libraries are its DT_NEEDED entries: what the loader must find at
	// start-up.
	Libraries []string
	// BindNow is set when every symbol is bound at start-up (DF_BIND_NOW),
	// so a symbol meant for a library loaded later with dlopen, as go-nvml's
	// libnvidia-ml, would stop the binary from starting.
	BindNow bool
}

// FileName is the name `make release` gives the build for goos/goarch
// ("slurmtune-linux-arm64"), in dist/ and next to an installed slurmtune.
func FileName(goos, goarch string) string { return "slurmtune-" + goos + "-" + goarch }

// Find is FindFrom the running executable.
func Find(goos, goarch string) (Build, error) {
	exe, err := os.Executable()
	if err != nil {
		return Build{}, fmt.Errorf("find the running slurmtune: %w", err)
	}
	return FindFrom(exe, goos, goarch)
}

// FindFrom returns the slurmtune build to run on a goos/goarch machine,
// given the path of the running executable exe: the release build next to it
// (DIR/slurmtune-GOOS-GOARCH), else the one `make release` left in the
// checkout (DIR/../dist/slurmtune-GOOS-GOARCH, for bin/slurmtune), else exe
// itself when it is built for goos/goarch. A candidate file that is not an
// executable for goos/goarch is an error, not skipped: it would be a wrong
// upload.
func FindFrom(exe, goos, goarch string) (Build, error) {
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	dir := filepath.Dir(exe)
	name := FileName(goos, goarch)
	candidates := []string{filepath.Join(dir, name), filepath.Join(filepath.Dir(dir), "dist", name)}
	for _, p := range candidates {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		b, err := Inspect(p)
		if err != nil {
			return Build{}, err
		}
		if b.GOOS != goos || b.GOARCH != goarch {
			return Build{}, fmt.Errorf("%s: built for %s/%s, not %s/%s", p, b.GOOS, b.GOARCH, goos, goarch)
		}
		return b, nil
	}
	if b, err := Inspect(exe); err == nil && b.GOOS == goos && b.GOARCH == goarch {
		return b, nil
	}
	return Build{}, fmt.Errorf("no slurmtune build for %s/%s: none of %s (run `make release`, or put the release binary %s next to %s)",
		goos, goarch, strings.Join(candidates, ", "), name, exe)
}

// goarch is the GOARCH of an ELF machine, for the architectures Go builds
// Linux binaries for.
func goarch(m elf.Machine, order binary.ByteOrder) (string, bool) {
	switch m {
	case elf.EM_X86_64:
		return "amd64", true
	case elf.EM_AARCH64:
		return "arm64", true
	case elf.EM_PPC64:
		if order == binary.BigEndian {
			return "ppc64", true
		}
		return "ppc64le", true
	case elf.EM_RISCV:
		return "riscv64", true
	case elf.EM_S390:
		return "s390x", true
	case elf.EM_386:
		return "386", true
	case elf.EM_ARM:
		return "arm", true
	}
	return "", false
}

// Inspect reads an executable's architecture and what it needs from the
// dynamic loader. Only ELF executables are builds; anything else is an
// error naming the file.
func Inspect(path string) (Build, error) {
	f, err := elf.Open(path)
	if err != nil {
		return Build{}, fmt.Errorf("%s: not an ELF executable: %w", path, err)
	}
	defer f.Close()
	b := Build{Path: path, GOOS: "linux"}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return Build{}, fmt.Errorf("%s: not an executable (ELF type %v)", path, f.Type)
	}
	arch, ok := goarch(f.Machine, f.ByteOrder)
	if !ok {
		return Build{}, fmt.Errorf("%s: unknown machine %v", path, f.Machine)
	}
	b.GOARCH = arch
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return Build{}, fmt.Errorf("%s: not a Linux executable (OS ABI %v)", path, f.OSABI)
	}
	if f.Section(".dynamic") == nil {
		return b, nil // static: needs nothing
	}
	if b.Libraries, err = f.ImportedLibraries(); err != nil {
		return Build{}, fmt.Errorf("%s: %w", path, err)
	}
	needs, err := f.DynamicVersionNeeds()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return Build{}, fmt.Errorf("%s: symbol versions: %w", path, err)
	}
	for _, n := range needs {
		for _, d := range n.Needs {
			v, ok := strings.CutPrefix(d.Dep, "GLIBC_")
			if !ok || !isVersion(v) {
				continue // GLIBC_PRIVATE and other libraries' versions
			}
			if b.GLIBC == "" || CompareVersions(v, b.GLIBC) > 0 {
				b.GLIBC = v
			}
		}
	}
	for _, tag := range []elf.DynTag{elf.DT_FLAGS, elf.DT_FLAGS_1} {
		vals, err := f.DynValue(tag)
		if err != nil {
			return Build{}, fmt.Errorf("%s: %w", path, err)
		}
		for _, v := range vals {
			if tag == elf.DT_FLAGS && v&uint64(elf.DF_BIND_NOW) != 0 || tag == elf.DT_FLAGS_1 && v&uint64(elf.DF_1_NOW) != 0 {
				b.BindNow = true
			}
		}
	}
	return b, nil
}

func isVersion(s string) bool {
	for _, p := range strings.Split(s, ".") {
		if _, err := strconv.Atoi(p); err != nil {
			return false
		}
	}
	return true
}

// CompareVersions compares dotted version numbers ("2.28" < "2.28.1" <
// "2.34"): -1, 0 or 1. A part that is not a number counts as 0.
func CompareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
