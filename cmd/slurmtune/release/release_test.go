package release

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// writeELF writes the smallest ELF executable header debug/elf accepts, for
// machine m: enough to tell architectures apart without a cross toolchain.
func writeELF(t *testing.T, path string, m elf.Machine) {
	t.Helper()
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56, Shentsize: 64,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestInspectTheTestBinary(t *testing.T) {
	b, err := Inspect(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if b.GOOS != "linux" || b.GOARCH != runtime.GOARCH {
		t.Errorf("Inspect(test binary) = %s/%s, want linux/%s", b.GOOS, b.GOARCH, runtime.GOARCH)
	}
}

func TestInspectRefusesWhatIsNotABuild(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "slurmtune-linux-amd64")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(text); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("script: err = %v", err)
	}
	odd := filepath.Join(dir, "odd")
	writeELF(t, odd, elf.EM_MIPS)
	if _, err := Inspect(odd); err == nil || !strings.Contains(err.Error(), "unknown machine") {
		t.Errorf("mips: err = %v", err)
	}
}

func TestFindFrom(t *testing.T) {
	root := t.TempDir()
	exe := filepath.Join(root, "bin", "slurmtune")
	writeELF(t, exe, elf.EM_X86_64)
	dist := filepath.Join(root, "dist", "slurmtune-linux-arm64")
	sibling := filepath.Join(root, "bin", "slurmtune-linux-arm64")

	// Nothing built for arm64: an error that says where it looked and what to do.
	_, err := FindFrom(exe, "linux", "arm64")
	if err == nil || !strings.Contains(err.Error(), "make release") || !strings.Contains(err.Error(), sibling) || !strings.Contains(err.Error(), dist) {
		t.Errorf("nothing built: err = %v", err)
	}
	// The running binary matches amd64 and nothing else is there.
	if b, err := FindFrom(exe, "linux", "amd64"); err != nil || b.Path != exe {
		t.Errorf("amd64 with no release build = %+v, %v; want the running binary", b, err)
	}

	writeELF(t, dist, elf.EM_AARCH64)
	if b, err := FindFrom(exe, "linux", "arm64"); err != nil || b.Path != dist || b.GOARCH != "arm64" {
		t.Errorf("after make release = %+v, %v; want %s", b, err, dist)
	}
	writeELF(t, sibling, elf.EM_AARCH64)
	if b, err := FindFrom(exe, "linux", "arm64"); err != nil || b.Path != sibling {
		t.Errorf("with a sibling = %+v, %v; want %s", b, err, sibling)
	}
	// A release build next to the binary wins over the running binary.
	amd := filepath.Join(root, "bin", "slurmtune-linux-amd64")
	writeELF(t, amd, elf.EM_X86_64)
	if b, err := FindFrom(exe, "linux", "amd64"); err != nil || b.Path != amd {
		t.Errorf("amd64 with a release build = %+v, %v; want %s", b, err, amd)
	}

	// A file under the right name built for another machine is refused.
	writeELF(t, sibling, elf.EM_X86_64)
	if _, err := FindFrom(exe, "linux", "arm64"); err == nil || !strings.Contains(err.Error(), "built for linux/amd64, not linux/arm64") {
		t.Errorf("wrong machine: err = %v", err)
	}

	// A symlinked slurmtune (e.g. ~/.local/bin/slurmtune -> the unpacked
	// release) looks next to the file it points to.
	link := filepath.Join(t.TempDir(), "slurmtune")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	if b, err := FindFrom(link, "linux", "amd64"); err != nil || b.Path != amd {
		t.Errorf("through a symlink = %+v, %v; want %s", b, err, amd)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"2.28", "2.28", 0},
		{"2.17", "2.28", -1},
		{"2.34", "2.28", 1},
		{"2.3", "2.28", -1}, // numeric, not lexical
		{"2.28.1", "2.28", 1},
		{"2.28", "2.28.0", 0},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
