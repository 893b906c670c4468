package ssh

import (
	"context"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/cmdline"
)

// TestRunRefusesSecrets: the ssh transport would have to put secrets on
// the login node's command line (env K=V sbatch ...), where every user
// sees them in ps; it refuses before connecting.
func TestRunRefusesSecrets(t *testing.T) {
	c := &Conn{}
	_, err := c.Run(context.Background(), cmdline.Command{Argv: []string{"sbatch", "x.sbatch"}, Secrets: map[string]string{"HF_TOKEN": "hf_secretvalue"}})
	if err == nil || !strings.Contains(err.Error(), "HF_TOKEN") || strings.Contains(err.Error(), "hf_secretvalue") {
		t.Fatalf("Run with secrets: %v", err)
	}
}
