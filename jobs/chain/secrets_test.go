package chain

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// recordingClient is a slurm.Client that records the submit requests.
type recordingClient struct {
	slurm.Client
	mu   sync.Mutex
	reqs []slurm.SubmitRequest
}

func (c *recordingClient) Submit(_ context.Context, req slurm.SubmitRequest) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	return strings.Repeat("1", len(c.reqs)), nil
}

// TestEnvSecretsSentNotWritten: a {env: VAR} secret is read at submit (and
// again at retry) and handed to the transport as SubmitRequest.Secrets; a
// missing one stops the submit before anything is recorded or written.
func TestEnvSecretsSentNotWritten(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(tmp, "st.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ts, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	const value = "wandb-secret-value-123"
	env := map[string]string{}
	rc := &recordingClient{}
	svc := &Service{Client: rc, FS: local.FS{}, Store: st, Templates: ts, Log: slog.New(slog.DiscardHandler),
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	p := preparePipeline(t, "workdir="+filepath.Join(tmp, "runs"), "cluster.transport=local",
		"environment.secrets.WANDB_API_KEY.env=MY_WANDB", "environment.secrets.HF_TOKEN.file=/home/u/.hf")

	_, err = svc.Submit(ctx, p, SubmitOptions{})
	if err == nil || !strings.Contains(err.Error(), "environment.secrets.WANDB_API_KEY: $MY_WANDB is not set") {
		t.Fatalf("submit without the variable: %v", err)
	}
	if runs, _ := st.ListRuns(ctx, 10); len(runs) != 0 || len(rc.reqs) != 0 {
		t.Fatalf("a failed submit left %d runs, %d jobs", len(runs), len(rc.reqs))
	}
	if _, err := os.Stat(filepath.Join(tmp, "runs")); err == nil {
		t.Error("a failed submit created the workdir")
	}

	env["MY_WANDB"] = value
	sub, err := svc.Submit(ctx, p, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.reqs) == 0 {
		t.Fatal("nothing submitted")
	}
	for _, r := range rc.reqs {
		if r.Secrets["WANDB_API_KEY"] != value || len(r.Secrets) != 1 || r.Env["WANDB_API_KEY"] != "" {
			t.Errorf("%s: secrets %v env %v", r.ScriptPath, r.Secrets, r.Env)
		}
	}
	dir := sub.Run.RunDir
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		want := fs.FileMode(0o600)
		switch {
		case d.IsDir():
			want = 0o700
		case strings.HasSuffix(path, ".sbatch"):
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		if !d.IsDir() {
			data, _ := os.ReadFile(path)
			if bytes.Contains(data, []byte(value)) {
				t.Errorf("the secret is in %s", path)
			}
			if strings.HasSuffix(path, "train.sbatch") && !bytes.Contains(data, []byte("slurmtune_secret HF_TOKEN /home/u/.hf")) {
				t.Errorf("train.sbatch does not read the file secret")
			}
		}
		return nil
	})
	if walkErr != nil {
		t.Fatal(walkErr)
	}

	// Retry reads the variable again.
	live, err := st.LiveJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range live {
		if _, err := st.UpdateJob(ctx, j, slurm.Job{ID: j.JobID, State: slurm.StateFailed, ExitCode: 1}); err != nil {
			t.Fatal(err)
		}
	}
	n := len(rc.reqs)
	env["MY_WANDB"] = value + "-rotated"
	if _, err := svc.Retry(ctx, sub.Run.ID, ""); err != nil {
		t.Fatal(err)
	}
	if len(rc.reqs) == n {
		t.Fatal("retry submitted nothing")
	}
	for _, r := range rc.reqs[n:] {
		if r.Secrets["WANDB_API_KEY"] != value+"-rotated" {
			t.Errorf("retry %s: secrets %v", r.ScriptPath, r.Secrets)
		}
	}
}
