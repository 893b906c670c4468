package store

import (
	"context"
	"path/filepath"
	"testing"
)

func TestNetworkFSName(t *testing.T) {
	for _, c := range []struct {
		magic int64
		name  string
		ok    bool
	}{
		{0x6969, "nfs", true},
		{0x0bd00bd0, "lustre", true},
		{0x47504653, "gpfs", true},
		{0xff534d42, "cifs", true},
		{0xef53, "", false},     // ext4
		{0x58465342, "", false}, // xfs
		{0x01021994, "", false}, // tmpfs
	} {
		name, ok := networkFSName(c.magic)
		if name != c.name || ok != c.ok {
			t.Errorf("networkFSName(%#x) = %q, %v; want %q, %v", c.magic, name, ok, c.name, c.ok)
		}
	}
}

// TestLocalDatabaseUsesWAL: on a local filesystem the database runs in WAL
// mode (on a network filesystem Open would choose DELETE and warn).
func TestLocalDatabaseUsesWAL(t *testing.T) {
	dir := t.TempDir()
	if name, ok := networkFilesystem(dir); ok {
		t.Skipf("the test directory is on %s", name)
	}
	st, err := Open(context.Background(), filepath.Join(dir, "st.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mode string
	if err := st.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q (%v), want wal", mode, err)
	}
}
