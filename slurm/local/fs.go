package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
// file: temp file in the same directory, fsync, rename.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Stat returns os.Stat of path.
func (FS) Stat(_ context.Context, path string) (fs.FileInfo, error) { return os.Stat(path) }

// Glob returns filepath.Glob of pattern.
func (FS) Glob(_ context.Context, pattern string) ([]string, error) { return filepath.Glob(pattern) }
