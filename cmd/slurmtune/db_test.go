package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/store"
)

// TestDBBackup: `db backup FILE` writes a consistent copy (mode 0600) while
// the database is open elsewhere, and refuses to overwrite a file.
func TestDBBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	st, err := store.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close() // held open during the backup, as cron's sync would
	if err := st.CreateRun(ctx, store.Run{ID: "r-1", Name: "backup me", RunDir: "/x", Transport: "local"}, []string{"prep", "train"}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(tmp, "copy.db")
	if r := slurmtune(t, db, "db", "backup", dst); r.code != 0 || strings.TrimSpace(r.stdout) != dst {
		t.Fatalf("db backup: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", err, fi.Mode())
	}
	cp, err := store.Open(ctx, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	r, err := cp.GetRun(ctx, "r-1")
	if err != nil || r.Name != "backup me" || len(r.Stages) != 2 {
		t.Fatalf("the copy lacks the run: %v %+v", err, r)
	}
	if r := slurmtune(t, db, "db", "backup", dst); r.code != 2 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("backup over an existing file: exit %d: %s", r.code, r.stderr)
	}
}
