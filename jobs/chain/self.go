package chain

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/slurmtune/slurmtune/jobs"
)

// Self is this slurmtune binary, and how the compute nodes get one like
// it.
type Self struct {
	// Path is this binary (SelfPath); Version its version.
	Path, Version string
	// FindBuild finds the release build for a platform next to this
	// binary or in dist/ (release.FindFrom), else returns this binary.
	FindBuild func(self string, p Platform) (string, error)
	Log       *slog.Logger
}

// SelfPath is this binary's path, links resolved.
func SelfPath() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return "", fmt.Errorf("find slurmtune binary: %w", err)
	}
	return exe, nil
}

// OnCluster is the slurmtune binary as the compute nodes see it:
// cluster.slurmtune, else this very binary for the local transport (the
// login node and compute nodes share its filesystem), else Upload (this
// binary, copied to the workdir before a submission).
func (s Self) OnCluster(c jobs.Cluster) string {
	switch {
	case c.Slurmtune != "":
		return c.Slurmtune
	case c.Transport != "local":
		return Upload
	}
	return s.Path
}

// Plan is how the compute nodes get the binary setting names (OnCluster's
// answer) under workdir, where names the login side in messages; nil
// when they run this very binary.
func (s Self) Plan(ctx context.Context, setting, workdir, where string) *ComputeBinary {
	if setting == s.Path {
		return nil
	}
	return &ComputeBinary{Setting: setting, Workdir: workdir, Where: where, Version: s.Version,
		BuildFor: func(p Platform) (Build, error) { return s.build(ctx, p) }, ReadFile: os.ReadFile}
}

// build is the slurmtune build for p (FindBuild). A build other than this
// binary must be of this version: one for this host's platform is asked
// (--version); another platform's cannot be run here, and is taken as it
// is, with a warning.
func (s Self) build(ctx context.Context, p Platform) (Build, error) {
	path, err := s.FindBuild(s.Path, p)
	if err != nil {
		return Build{}, fmt.Errorf("%w; or set cluster.slurmtune to slurmtune %s on the cluster", err, s.Version)
	}
	if path == s.Path {
		return Build{Path: s.Path, Version: s.Version}, nil
	}
	if p.OS != runtime.GOOS || p.Arch != runtime.GOARCH {
		s.Log.Warn("cannot run the build for another platform to check its version: uploading it as this version",
			"build", path, "version", s.Version)
		return Build{Path: path, Version: s.Version}, nil
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if ee, ok := err.(*exec.ExitError); ok && len(bytes.TrimSpace(ee.Stderr)) > 0 {
		err = fmt.Errorf("%s", firstLine(string(bytes.TrimSpace(ee.Stderr))))
	}
	if err != nil {
		return Build{}, fmt.Errorf("%s --version: %w", path, err)
	}
	if v := ParseVersion(string(out)); v != s.Version {
		return Build{}, fmt.Errorf("%s is slurmtune %s, this is %s: run make release again", path, v, s.Version)
	}
	return Build{Path: path, Version: s.Version}, nil
}
