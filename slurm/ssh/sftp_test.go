package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestSFTPFileSystem(t *testing.T) {
	e := needEnv(t)
	c := e.dial(t, e.config())
	ctx := context.Background()
	// sshd runs on this host, so the remote paths are local ones too.
	root := t.TempDir()
	dir := filepath.Join(root, "run", "a b", "stage-1")
	if err := c.MkdirAll(ctx, dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := c.MkdirAll(ctx, dir, 0o750); err != nil {
		t.Fatalf("MkdirAll existing: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm()&^0o750 != 0 {
		t.Errorf("dir: %v %v", fi.Mode(), err)
	}
	p := filepath.Join(dir, "job.sh")
	script := []byte("#!/bin/bash\n#SBATCH --comment=x\necho hi\n")
	if err := c.WriteFile(ctx, p, script, 0o640); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("file mode: %v %v", fi.Mode(), err)
	}
	got, err := c.ReadFile(ctx, p)
	if err != nil || !bytes.Equal(got, script) {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	for _, tt := range []struct {
		off  int64
		max  int
		want string
	}{{0, 5, "#!/bi"}, {12, 9, "#SBATCH -"}, {int64(len(script) - 3), 100, "hi\n"}, {int64(len(script)), 10, ""}, {1000, 10, ""}} {
		got, err := c.ReadAt(ctx, p, tt.off, tt.max)
		if err != nil || string(got) != tt.want {
			t.Errorf("ReadAt(%d, %d) = %q, %v; want %q", tt.off, tt.max, got, err, tt.want)
		}
	}
	// A big file, written concurrently in chunks by sftp.
	big := make([]byte, 3<<20+17)
	rand.Read(big)
	bp := filepath.Join(dir, "big.bin")
	if err := c.WriteFile(ctx, bp, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadFile(ctx, bp); err != nil || !bytes.Equal(got, big) {
		t.Errorf("big ReadFile: %d bytes, %v", len(got), err)
	}
	if got, err := c.ReadAt(ctx, bp, 1<<20, 1<<20); err != nil || !bytes.Equal(got, big[1<<20:2<<20]) {
		t.Errorf("big ReadAt: %d bytes, %v", len(got), err)
	}

	missing := filepath.Join(dir, "missing")
	if _, err := c.ReadFile(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile missing: %v", err)
	}
	if _, err := c.ReadAt(ctx, missing, 0, 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadAt missing: %v", err)
	}
	if err := c.WriteFile(ctx, filepath.Join(root, "no", "dir", "f"), script, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile into a missing dir: %v", err)
	}
	if err := c.MkdirAll(ctx, filepath.Join(p, "sub"), 0o755); err == nil {
		t.Errorf("MkdirAll under a file succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.ReadFile(cctx, p); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadFile cancelled: %v", err)
	}
}

// TestSFTPAtomicWrite rewrites a file while readers read it: they see one
// whole version or another, never a mix or a truncated one; no temporary
// file is left behind.
func TestSFTPAtomicWrite(t *testing.T) {
	e := needEnv(t)
	c := e.dial(t, e.config())
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	versions := [][]byte{bytes.Repeat([]byte("a"), 100<<10), bytes.Repeat([]byte("b"), 10), bytes.Repeat([]byte("c"), 300<<10)}
	if err := c.WriteFile(ctx, p, versions[0], 0o644); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				// Read locally: the rename is what makes it atomic.
				got, err := os.ReadFile(p)
				if err != nil {
					t.Errorf("read during rewrite: %v", err)
					return
				}
				ok := false
				for _, v := range versions {
					ok = ok || bytes.Equal(got, v)
				}
				if !ok {
					t.Errorf("read a partial file (%d bytes)", len(got))
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := 0; i < 30; i++ {
		if err := c.WriteFile(ctx, p, versions[i%len(versions)], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		t.Errorf("dir holds %v, want only state.json", names)
	}
	t.Logf("%d reads during 30 rewrites", reads.Load())
}

func TestUploadFetch(t *testing.T) {
	e := needEnv(t)
	c := e.dial(t, e.config())
	ctx := context.Background()
	local := filepath.Join(t.TempDir(), "data.bin")
	data := make([]byte, 2<<20+5)
	rand.Read(data)
	if err := os.WriteFile(local, data, 0o600); err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(t.TempDir(), "remote.bin")
	if err := c.Upload(ctx, local, remote); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(remote); !bytes.Equal(got, data) {
		t.Errorf("uploaded %d bytes", len(got))
	}
	if fi, _ := os.Stat(remote); fi.Mode().Perm() != 0o600 {
		t.Errorf("uploaded mode %v", fi.Mode())
	}
	back := filepath.Join(t.TempDir(), "back.bin")
	if err := c.Fetch(ctx, remote, back); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
		t.Errorf("fetched %d bytes", len(got))
	}
	if err := c.Fetch(ctx, remote+".missing", back); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Fetch missing: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Upload(cctx, local, remote+".2"); !errors.Is(err, context.Canceled) {
		t.Errorf("Upload cancelled: %v", err)
	}
	if _, err := os.Stat(remote + ".2"); err == nil {
		t.Errorf("cancelled upload left a file")
	}
	entries, _ := os.ReadDir(filepath.Dir(remote))
	for _, en := range entries {
		if strings.Contains(en.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", en.Name())
		}
	}
}
