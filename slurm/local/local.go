// Package local runs Slurm's command-line tools on this host (a login node),
// for slurm/cmdline. Commands inherit this process's environment, so
// SLURM_CONF works as it does for Slurm's own tools.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"

	"github.com/slurmtune/slurmtune/slurm/cmdline"
)

// Runner runs commands with os/exec.
type Runner struct{}

// NewClient returns a slurm client that runs Slurm's tools on this host.
func NewClient() *cmdline.Client { return cmdline.New(Runner{}) }

// Run runs cmd and returns its stdout.
func (Runner) Run(ctx context.Context, cmd cmdline.Command) ([]byte, error) {
	if len(cmd.Argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	c := exec.CommandContext(ctx, cmd.Argv[0], cmd.Argv[1:]...)
	if len(cmd.Env) > 0 || len(cmd.Secrets) > 0 {
		// Through the process environment (readable by this user only),
		// which sbatch exports to the job.
		env := os.Environ()
		for _, m := range []map[string]string{cmd.Env, cmd.Secrets} {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				env = append(env, k+"="+m[k])
			}
		}
		c.Env = env
	}
	if cmd.Stdin != nil {
		c.Stdin = bytes.NewReader(cmd.Stdin)
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			return stdout.Bytes(), &cmdline.ExitError{Argv: cmd.Argv, Code: ee.ExitCode(), Stderr: stderr.String()}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", cmd.Argv[0], ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", cmd.Argv[0], err)
	}
	return stdout.Bytes(), nil
}
