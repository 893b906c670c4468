package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/slurmtune/slurmtune/store/atomicfile"
)

// SFTP returns the connection's SFTP client, opening it on first use. A
// client whose session ended is replaced on the next call.
func (c *Conn) SFTP() (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	if why := c.lost(); why != nil {
		return nil, c.unavailable("sftp", why)
	}
	cl, err := c.openSFTP()
	if err != nil {
		return nil, c.unavailable("sftp", err)
	}
	c.sftp = cl
	go func() {
		// Whatever ended the client, the next call opens a new one and
		// reports its own error.
		_ = cl.Wait()
		c.sftpMu.Lock()
		if c.sftp == cl {
			c.sftp = nil
		}
		c.sftpMu.Unlock()
	}()
	return cl, nil
}

// openSFTP starts the sftp subsystem in a session (sftp.NewClient does the
// same, without waiting out a server that is short of sessions).
func (c *Conn) openSFTP() (*sftp.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sess, err := c.newSession(ctx)
	if err != nil {
		return nil, err
	}
	sess.Stderr = io.Discard
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		sess.Close()
		return nil, err
	}
	cl, err := sftp.NewClientPipe(r, sessionCloser{w, sess}, sftp.UseConcurrentWrites(true), sftp.UseFstat(true))
	if err != nil {
		sess.Close()
		return nil, err
	}
	return cl, nil
}

// sessionCloser closes the session with the sftp client's pipe.
type sessionCloser struct {
	io.WriteCloser
	sess *gossh.Session
}

func (s sessionCloser) Close() error {
	err := s.WriteCloser.Close()
	s.sess.Close()
	return err
}

// fsErr marks failures caused by a lost connection with slurm.ErrUnavailable
// and leaves the others (not found, permission denied...) as they are.
func (c *Conn) fsErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	if c.lost() != nil {
		return c.unavailable(op+" "+p, err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

// do runs a read-only operation, returning early when ctx ends (the request
// finishes in the background).
func do[T any](ctx context.Context, f func() (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// MkdirAll creates p and its missing parents; each directory it creates
// gets exactly perm (the remote umask does not apply, as for WriteFile's
// files). Existing directories are left as they are.
func (c *Conn) MkdirAll(ctx context.Context, p string, perm fs.FileMode) error {
	cl, err := c.SFTP()
	if err != nil {
		return err
	}
	return c.fsErr("mkdir", p, mkdirAll(ctx, cl, path.Clean(p), perm))
}

func mkdirAll(ctx context.Context, cl *sftp.Client, p string, perm fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := cl.Stat(p)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := path.Dir(p); parent != p {
		if err := mkdirAll(ctx, cl, parent, perm); err != nil {
			return err
		}
	}
	if err := cl.Mkdir(p); err != nil {
		if fi, serr := cl.Stat(p); serr == nil && fi.IsDir() {
			return nil // made meanwhile
		}
		return err
	}
	// The server made it 0777 less its umask; make that perm.
	if fi, err := cl.Stat(p); err != nil || fi.Mode().Perm() != perm.Perm() {
		return cl.Chmod(p, perm.Perm())
	}
	return nil
}

// WriteFile writes data atomically: a temporary file in the same directory,
// fsync'd, renamed over p with posix-rename@openssh.com (which replaces p in
// one step). Without that extension it falls back to remove + rename.
func (c *Conn) WriteFile(ctx context.Context, p string, data []byte, perm fs.FileMode) error {
	cl, err := c.SFTP()
	if err != nil {
		return err
	}
	return c.fsErr("write", p, writeAtomic(ctx, cl, p, bytes.NewReader(data), perm))
}

// writeAtomic copies r into a temporary file beside p and renames it over p.
func writeAtomic(ctx context.Context, cl *sftp.Client, p string, r io.Reader, perm fs.FileMode) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := path.Join(path.Dir(p), "."+path.Base(p)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := cl.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			if rerr := cl.Remove(tmp); rerr != nil {
				err = fmt.Errorf("%w (and its temporary file %s is left: %v)", err, tmp, rerr)
			}
		}
	}()
	if _, err = f.ReadFrom(r); err != nil {
		return err
	}
	if err = f.Chmod(perm.Perm()); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		var se *sftp.StatusError
		if !errors.As(err, &se) || se.FxCode() != sftp.ErrSSHFxOpUnsupported {
			return err
		}
		err = nil
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	if _, ok := cl.HasExtension("posix-rename@openssh.com"); ok {
		return cl.PosixRename(tmp, p)
	}
	if err = cl.Rename(tmp, p); err != nil {
		// Plain SFTP rename refuses to replace p.
		if rerr := cl.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return err
		}
		err = cl.Rename(tmp, p)
	}
	return err
}

// ReadFile reads p.
func (c *Conn) ReadFile(ctx context.Context, p string) ([]byte, error) {
	cl, err := c.SFTP()
	if err != nil {
		return nil, err
	}
	data, err := do(ctx, func() ([]byte, error) {
		f, err := cl.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var buf bytes.Buffer
		if _, err := f.WriteTo(&buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	})
	return data, c.fsErr("read", p, err)
}

// ReadAt reads up to max bytes of p from offset on.
func (c *Conn) ReadAt(ctx context.Context, p string, offset int64, max int) ([]byte, error) {
	if max <= 0 || offset < 0 {
		if max < 0 || offset < 0 {
			return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrInvalid}
		}
		return nil, nil
	}
	cl, err := c.SFTP()
	if err != nil {
		return nil, err
	}
	data, err := do(ctx, func() ([]byte, error) {
		f, err := cl.Open(p)
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
	})
	return data, c.fsErr("read", p, err)
}

// Upload copies the local file localPath to remotePath (atomically, keeping
// its permission bits).
func (c *Conn) Upload(ctx context.Context, localPath, remotePath string) error {
	lf, err := os.Open(localPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	fi, err := lf.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return &fs.PathError{Op: "upload", Path: localPath, Err: syscall.EISDIR}
	}
	cl, err := c.SFTP()
	if err != nil {
		return err
	}
	r := &ctxReader{ctx: ctx, r: lf, size: fi.Size()}
	return c.fsErr("upload", remotePath, writeAtomic(ctx, cl, remotePath, r, fi.Mode().Perm()))
}

// Fetch copies the remote file remotePath to localPath (atomically, keeping
// its permission bits).
func (c *Conn) Fetch(ctx context.Context, remotePath, localPath string) (err error) {
	cl, err := c.SFTP()
	if err != nil {
		return err
	}
	rf, err := cl.Open(remotePath)
	if err != nil {
		return c.fsErr("fetch", remotePath, err)
	}
	defer rf.Close()
	fi, err := rf.Stat()
	if err != nil {
		return c.fsErr("fetch", remotePath, err)
	}
	lf, err := atomicfile.Create(localPath, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err = rf.WriteTo(&ctxWriter{ctx: ctx, w: lf}); err != nil {
		lf.Abort()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.fsErr("fetch", remotePath, err)
	}
	if err = lf.Close(); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		lf.Abort()
		return err
	}
	return lf.Commit()
}

// ctxReader stops reading when ctx ends; Size lets sftp write concurrently.
type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	size int64
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func (r *ctxReader) Size() int64 { return r.size }

// ctxWriter stops writing when ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w *ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// Stat returns what SFTP says of p (links followed).
func (c *Conn) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	cl, err := c.SFTP()
	if err != nil {
		return nil, err
	}
	fi, err := do(ctx, func() (fs.FileInfo, error) { return cl.Stat(p) })
	return fi, c.fsErr("stat", p, err)
}

// Glob returns the paths on the far side that match pattern (path.Match
// syntax), as filepath.Glob does locally.
func (c *Conn) Glob(ctx context.Context, pattern string) ([]string, error) {
	cl, err := c.SFTP()
	if err != nil {
		return nil, err
	}
	m, err := do(ctx, func() ([]string, error) { return cl.Glob(pattern) })
	return m, c.fsErr("glob", pattern, err)
}
