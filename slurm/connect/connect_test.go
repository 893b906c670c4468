package connect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/slurm/local"
)

// TestOfRun: a run recorded before its cluster was is a local one; a
// recorded section comes back as it was.
func TestOfRun(t *testing.T) {
	c, err := OfRun("")
	if err != nil || c.Transport != "local" {
		t.Errorf("OfRun(\"\") = %+v, %v", c, err)
	}
	c, err = OfRun(`{"Transport":"ssh","SSH":{"Host":"login1","Port":2222}}`)
	if err != nil || c.Transport != "ssh" || c.SSH.Host != "login1" || c.SSH.Port != 2222 {
		t.Errorf("OfRun = %+v, %v", c, err)
	}
	if _, err := OfRun("{"); err == nil || !strings.Contains(err.Error(), "recorded cluster configuration") {
		t.Errorf("OfRun of bad JSON: %v", err)
	}
}

func TestLocalName(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "slurm.conf")
	if err := os.WriteFile(conf, []byte("# x\nSlurmctldHost=a\n clustername = dev-cluster \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLURM_CONF", conf)
	if got := LocalName(); got != "dev-cluster" {
		t.Errorf("LocalName = %q", got)
	}
	t.Setenv("SLURM_CONF", filepath.Join(t.TempDir(), "none"))
	if got := LocalName(); got != "" {
		t.Errorf("LocalName without slurm.conf = %q", got)
	}
}

// TestOpenRecordsConfig: Open records the section as OfRun reads it back,
// and refuses an unknown transport.
func TestOpenRecordsConfig(t *testing.T) {
	c := jobs.Cluster{Transport: "local", Partition: "debug"}
	cl, err := Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	back, err := OfRun(cl.Config)
	if err != nil || back != c || cl.Where() != "this host" || cl.Client == nil || cl.Inspector == nil || cl.FS == nil {
		t.Errorf("Open: %+v; OfRun(Config) = %+v, %v", cl, back, err)
	}
	if _, err := Open(context.Background(), jobs.Cluster{Transport: "carrier-pigeon"}); err == nil {
		t.Error("an unknown transport opened")
	}
}

// TestCommandsHere: over REST, a Slurm command that is not there is
// ErrNotAvailable; one that ran and failed is not.
func TestCommandsHere(t *testing.T) {
	cmds := cmdline.New(commandsHere{local.Runner{}})
	t.Setenv("PATH", t.TempDir())
	if _, err := cmds.Partitions(context.Background()); !errors.Is(err, slurm.ErrNotAvailable) {
		t.Errorf("Partitions without scontrol: %v, want ErrNotAvailable", err)
	}
	_, err := commandsHere{local.Runner{}}.Run(context.Background(), cmdline.Command{Argv: []string{"/bin/sh", "-c", "exit 3"}})
	var ee *cmdline.ExitError
	if errors.Is(err, slurm.ErrNotAvailable) || !errors.As(err, &ee) {
		t.Errorf("a command that failed: %v", err)
	}
}
