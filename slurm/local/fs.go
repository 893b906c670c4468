package local

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/slurmtune/slurmtune/store/atomicfile"
)

// FS is the local filesystem as a slurm.FileSystem.
type FS struct{}

// MkdirAll creates path and its parents. A path it creates gets exactly
// perm (its parents perm less the umask); an existing one is left as it is.
func (FS) MkdirAll(_ context.Context, path string, perm fs.FileMode) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil
	}
	if err := os.MkdirAll(path, perm); err != nil {
		return err
	}
	return os.Chmod(path, perm)
}

// WriteFile writes data to a temporary file beside path, syncs it and renames
// it over path.
func (FS) WriteFile(_ context.Context, path string, data []byte, perm fs.FileMode) error {
	return WriteFileAtomic(path, data, perm)
}

// ReadFile reads path.
func (FS) ReadFile(_ context.Context, path string) ([]byte, error) { return os.ReadFile(path) }

// ReadAt reads up to max bytes from offset.
func (FS) ReadAt(_ context.Context, path string, offset int64, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, max)
	n, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// WriteFileAtomic writes data to path so that readers never see a partial
// file (atomicfile.Write).
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return atomicfile.Write(path, data, perm)
}

// Stat returns os.Stat of path.
func (FS) Stat(_ context.Context, path string) (fs.FileInfo, error) { return os.Stat(path) }

// Glob returns filepath.Glob of pattern.
func (FS) Glob(_ context.Context, pattern string) ([]string, error) { return filepath.Glob(pattern) }
