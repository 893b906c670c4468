package chain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/slurmtune/slurmtune/slurm"
)

// Upload is the cluster.slurmtune value that copies this binary to the
// cluster (the default for the ssh and rest transports).
const Upload = "upload"

// BinaryDir is where uploaded binaries live, below the workdir: on the
// filesystem the login and compute nodes share.
const BinaryDir = ".slurmtune/bin"

// Login is what the binary check needs of the cluster's login side: a
// command's standard output (how the transport runs commands there: this
// host, or the login node over SSH). Run returns an error for a command
// that could not run or exited non-zero.
type Login interface {
	Output(ctx context.Context, argv ...string) ([]byte, error)
}

// Platform is an operating system and architecture in Go's words
// ("linux", "arm64").
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Build is a slurmtune binary on this host that can be uploaded.
type Build struct {
	Path    string
	Version string
}

// ComputeBinary says how the compute nodes get slurmtune.
type ComputeBinary struct {
	// Setting is cluster.slurmtune: Upload, or the binary as the compute
	// nodes see it (a path, or a name on their PATH).
	Setting string
	// Workdir is the pipeline's workdir (a path on the cluster).
	Workdir string
	// Where names the login side in messages ("login1", "this host").
	Where string
	// Version is this binary's version; a named binary must report it.
	Version string
	// BuildFor finds the build to upload for a platform.
	BuildFor func(Platform) (Build, error)
	// ReadFile reads a local file (the build to upload).
	ReadFile func(string) ([]byte, error)
}

// Resolve returns the path the job scripts call. For Upload it asks the
// login side for its platform, copies the matching build into
// WORKDIR/.slurmtune/bin under a name made of its version and checksum
// (once: a binary already there with the same checksum is reused, and one
// that jobs are running is never replaced) and reads it back to verify the
// checksum. Otherwise it runs the named binary's --version on the login
// side and refuses one that is missing or of another version, saying what
// to set. Nothing is submitted before Resolve succeeds.
func (b ComputeBinary) Resolve(ctx context.Context, login Login, fsys slurm.FileSystem) (string, error) {
	if b.Setting != Upload {
		return b.Setting, b.checkNamed(ctx, login)
	}
	_, build, err := b.upload(ctx, login)
	if err != nil {
		return "", err
	}
	data, err := b.ReadFile(build.Path)
	if err != nil {
		return "", fmt.Errorf("cluster.slurmtune: upload: %w", err)
	}
	return InstallBinary(ctx, fsys, path.Join(b.Workdir, BinaryDir), build.Version, data)
}

// Check says what Resolve would do, without uploading: for Upload, the
// login side's platform and the build that would be copied; otherwise that
// the named binary runs there with this version.
func (b ComputeBinary) Check(ctx context.Context, login Login) (string, error) {
	if b.Setting != Upload {
		if err := b.checkNamed(ctx, login); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s (version %s on %s)", b.Setting, b.Version, b.Where), nil
	}
	plat, build, err := b.upload(ctx, login)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("upload %s (%s, version %s) to %s", build.Path, plat, build.Version, path.Join(b.Workdir, BinaryDir)), nil
}

// upload finds the login side's platform and the build to copy there.
func (b ComputeBinary) upload(ctx context.Context, login Login) (Platform, Build, error) {
	plat, err := loginPlatform(ctx, login)
	if err != nil {
		return plat, Build{}, fmt.Errorf("cluster.slurmtune: upload: platform of %s: %w", b.Where, err)
	}
	build, err := b.BuildFor(plat)
	if err != nil {
		return plat, Build{}, fmt.Errorf("cluster.slurmtune: upload: %s is %s: %w", b.Where, plat, err)
	}
	return plat, build, nil
}

// checkNamed runs `BINARY --version` where the transport runs commands.
func (b ComputeBinary) checkNamed(ctx context.Context, login Login) error {
	out, err := login.Output(ctx, b.Setting, "--version")
	if err != nil {
		return fmt.Errorf("cluster.slurmtune: %q does not run on %s (%s): set cluster.slurmtune: upload to copy this binary "+
			"to the workdir, or install slurmtune %s there", b.Setting, b.Where, firstLine(err.Error()), b.Version)
	}
	got := ParseVersion(string(out))
	if got != b.Version {
		if got == "" {
			got = "no version: " + firstLine(strings.TrimSpace(string(out)))
		}
		return fmt.Errorf("cluster.slurmtune: %q on %s is slurmtune %s, this is %s: set cluster.slurmtune: upload, "+
			"or install the same version there", b.Setting, b.Where, got, b.Version)
	}
	return nil
}

// ParseVersion reads the version out of `slurmtune --version` ("slurmtune
// version V", possibly followed by more lines); "" when it is not that.
func ParseVersion(out string) string {
	rest, ok := strings.CutPrefix(firstLine(strings.TrimSpace(out)), "slurmtune version ")
	if !ok {
		return ""
	}
	if f := strings.Fields(rest); len(f) > 0 {
		return f[0]
	}
	return ""
}

// loginPlatform asks `uname -sm` ("Linux x86_64").
func loginPlatform(ctx context.Context, login Login) (Platform, error) {
	out, err := login.Output(ctx, "uname", "-sm")
	if err != nil {
		return Platform{}, err
	}
	return ParseUname(string(out))
}

// ParseUname maps `uname -sm` output to Go's names.
func ParseUname(out string) (Platform, error) {
	f := strings.Fields(out)
	if len(f) != 2 {
		return Platform{}, fmt.Errorf("uname -sm answered %q", strings.TrimSpace(out))
	}
	p := Platform{OS: strings.ToLower(f[0])}
	switch f[1] {
	case "x86_64", "amd64":
		p.Arch = "amd64"
	case "aarch64", "arm64":
		p.Arch = "arm64"
	case "ppc64le":
		p.Arch = "ppc64le"
	default:
		return Platform{}, fmt.Errorf("machine %q is not an architecture slurmtune is built for", f[1])
	}
	return p, nil
}

// InstallBinary writes data (a slurmtune binary of the given version) into
// dir as slurmtune-VERSION-SUM, unless a verified copy is there already,
// and returns its path. The file is verified by reading it back; a
// checksum file beside it, written last, marks a complete, verified copy.
func InstallBinary(ctx context.Context, fsys slurm.FileSystem, dir, version string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	name := "slurmtune-" + safeVersion(version) + "-" + hexSum[:16]
	bin := path.Join(dir, name)
	mark := bin + ".sha256"
	want := []byte(hexSum + "  " + name + "\n")
	if got, err := fsys.ReadFile(ctx, mark); err == nil && bytes.Equal(got, want) {
		return bin, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("cluster.slurmtune: upload: read %s: %w", mark, err)
	}
	if err := fsys.MkdirAll(ctx, dir, 0o755); err != nil {
		return "", fmt.Errorf("cluster.slurmtune: upload: %w", err)
	}
	if err := fsys.WriteFile(ctx, bin, data, 0o755); err != nil {
		return "", fmt.Errorf("cluster.slurmtune: upload %s: %w", bin, err)
	}
	back, err := fsys.ReadFile(ctx, bin)
	if err != nil {
		return "", fmt.Errorf("cluster.slurmtune: upload: read back %s: %w", bin, err)
	}
	if got := sha256.Sum256(back); got != sum {
		return "", fmt.Errorf("cluster.slurmtune: upload: %s has checksum %x after the copy, want %s", bin, got, hexSum)
	}
	if err := fsys.WriteFile(ctx, mark, want, 0o644); err != nil {
		return "", fmt.Errorf("cluster.slurmtune: upload %s: %w", mark, err)
	}
	return bin, nil
}

// safeVersion keeps a version usable in a file name.
func safeVersion(v string) string {
	v = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '+' {
			return r
		}
		return '_'
	}, v)
	if v == "" {
		return "unknown"
	}
	return v
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
