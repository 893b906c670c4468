// Package atomicfile writes files so that a reader sees the old content or
// the whole new one, never a part, and a crash after the write returned
// leaves the new one: the content goes to a temporary file in the target's
// directory, which is given its mode explicitly (not left to the umask),
// fsynced, closed and renamed over the target, and the directory is fsynced
// so the rename itself is durable. It is the one way slurmtune replaces a
// file on the local filesystem.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Write replaces path with data, with mode perm.
func Write(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// File is a file being written in place of another; nothing is replaced
// until Commit.
type File struct {
	f      *os.File
	path   string
	perm   fs.FileMode
	closed bool
}

// Create starts replacing path: a temporary file beside it.
func Create(path string, perm fs.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &File{f: f, path: path, perm: perm}, nil
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	if err != nil {
		err = fmt.Errorf("write %s: %w", f.path, err)
	}
	return n, err
}

// Close gives the temporary file its mode, fsyncs and closes it: its
// content is final, but not yet in place (Commit). A File that fails to
// close is removed.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	err := f.f.Chmod(f.perm)
	if err == nil {
		err = f.f.Sync()
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.f.Name())
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// Commit closes the file (Close) and renames it over the target, then
// fsyncs the directory. A File that fails to commit is removed.
func (f *File) Commit() error {
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.f.Name(), f.path); err != nil {
		_ = os.Remove(f.f.Name())
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return syncDir(filepath.Dir(f.path))
}

// Abort removes the temporary file; the target is left as it was.
func (f *File) Abort() {
	if !f.closed {
		f.closed = true
		_ = f.f.Close()
	}
	_ = os.Remove(f.f.Name())
}

// syncDir fsyncs a directory. A filesystem that cannot sync a directory
// (EINVAL or ENOTSUP: some NFS and FUSE mounts) is not an error there; any
// other failure is.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
