package chain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/local"
)

func TestParseUname(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Platform
		err  bool
	}{
		{in: "Linux x86_64\n", want: Platform{"linux", "amd64"}},
		{in: "Linux aarch64", want: Platform{"linux", "arm64"}},
		{in: "Linux ppc64le", want: Platform{"linux", "ppc64le"}},
		{in: "Linux riscv64", err: true},
		{in: "", err: true},
		{in: "Linux x86_64 extra", err: true},
	} {
		got, err := ParseUname(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseUname(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"slurmtune version 1.2.3\n":                        "1.2.3",
		"slurmtune version v0.4.0-3-gabc (commit x)\nmore": "v0.4.0-3-gabc",
		"slurmtune version dev":                            "dev",
		"other version 1":                                  "",
		"":                                                 "",
	} {
		if got := ParseVersion(in); got != want {
			t.Errorf("ParseVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInstallBinary(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "work", BinaryDir)
	data := []byte("#!/bin/sh\necho slurmtune version 1.0\n")
	sum := sha256.Sum256(data)
	wantName := "slurmtune-1.0-" + hex.EncodeToString(sum[:])[:16]

	got, err := InstallBinary(ctx, local.FS{}, dir, "1.0", data)
	if err != nil {
		t.Fatal(err)
	}
	if got != filepath.Join(dir, wantName) {
		t.Fatalf("installed at %s, want %s", got, filepath.Join(dir, wantName))
	}
	st, err := os.Stat(got)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v, mode %v; want 0755", err, st.Mode())
	}
	if b, _ := os.ReadFile(got); string(b) != string(data) {
		t.Fatalf("installed binary holds %q", b)
	}
	mark, err := os.ReadFile(got + ".sha256")
	if err != nil || !strings.HasPrefix(string(mark), hex.EncodeToString(sum[:])+"  "+wantName) {
		t.Fatalf("checksum file: %q, %v", mark, err)
	}

	// A verified copy is reused, not written again.
	before, _ := os.Stat(got)
	if again, err := InstallBinary(ctx, local.FS{}, dir, "1.0", data); err != nil || again != got {
		t.Fatalf("second install: %s, %v", again, err)
	}
	if after, _ := os.Stat(got); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("a verified copy was rewritten")
	}

	// A copy without its checksum file (an upload cut short) is written again.
	os.Remove(got + ".sha256")
	if err := os.WriteFile(got, []byte("partial"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallBinary(ctx, local.FS{}, dir, "1.0", data); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); string(b) != string(data) {
		t.Errorf("an unverified copy was kept: %q", b)
	}

	// Another build goes beside it: a running job's binary is never replaced.
	other, err := InstallBinary(ctx, local.FS{}, dir, "1.0", append(data, '#'))
	if err != nil || other == got {
		t.Fatalf("other build: %s, %v", other, err)
	}
	if b, _ := os.ReadFile(got); string(b) != string(data) {
		t.Errorf("the first build changed")
	}
}

// login answers commands from a table: pure logic, the transports' own
// tests run the real commands.
type login map[string]string

func (l login) Output(_ context.Context, argv ...string) ([]byte, error) {
	out, ok := l[strings.Join(argv, " ")]
	if !ok {
		return nil, errors.New("exit status 127: command not found")
	}
	return []byte(out), nil
}

func TestComputeBinaryResolve(t *testing.T) {
	ctx := context.Background()
	self := filepath.Join(t.TempDir(), "slurmtune")
	if err := os.WriteFile(self, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := func(p Platform) (Build, error) {
		if p != (Platform{"linux", "amd64"}) {
			return Build{}, errors.New("no build for " + p.String())
		}
		return Build{Path: self, Version: "1.0"}, nil
	}
	base := ComputeBinary{Workdir: t.TempDir(), Where: "login1", Version: "1.0", BuildFor: build, ReadFile: os.ReadFile}

	up := base
	up.Setting = Upload
	p, err := up.Resolve(ctx, login{"uname -sm": "Linux x86_64\n"}, local.FS{})
	if err != nil || !strings.HasPrefix(p, filepath.Join(base.Workdir, BinaryDir, "slurmtune-1.0-")) {
		t.Fatalf("upload: %s, %v", p, err)
	}
	if _, err := up.Resolve(ctx, login{"uname -sm": "Linux aarch64\n"}, local.FS{}); err == nil ||
		!strings.Contains(err.Error(), "login1 is linux/arm64: no build for linux/arm64") {
		t.Errorf("upload to an arm64 login node without a build: %v", err)
	}

	for _, tc := range []struct {
		name, setting string
		login         login
		want          string // error substring; "" for none
	}{
		{"same version", "/opt/st/slurmtune", login{"/opt/st/slurmtune --version": "slurmtune version 1.0\n"}, ""},
		{"missing", "slurmtune", login{}, `cluster.slurmtune: "slurmtune" does not run on login1 (exit status 127: command not found): set cluster.slurmtune: upload`},
		{"other version", "slurmtune", login{"slurmtune --version": "slurmtune version 0.9\n"}, `"slurmtune" on login1 is slurmtune 0.9, this is 1.0`},
		{"not slurmtune", "/bin/true", login{"/bin/true --version": ""}, `is slurmtune no version`},
	} {
		b := base
		b.Setting = tc.setting
		p, err := b.Resolve(ctx, tc.login, local.FS{})
		if tc.want == "" {
			if err != nil || p != tc.setting {
				t.Errorf("%s: %s, %v", tc.name, p, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", tc.name, err, tc.want)
		}
	}
}
