package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// liveClient returns a client for the dev cluster's slurmrestd
// (scripts/dev-cluster.sh env exports SLURMTUNE_REST_URL and SLURM_JWT). Without
// them the live tests skip, or fail under SLURMTUNE_TEST_STRICT=1.
func liveClient(t *testing.T) *Client {
	t.Helper()
	url, tok := os.Getenv("SLURMTUNE_REST_URL"), os.Getenv("SLURM_JWT")
	if url == "" || tok == "" {
		if os.Getenv("SLURMTUNE_TEST_STRICT") == "1" {
			t.Fatal("SLURMTUNE_REST_URL and SLURM_JWT must be set (eval \"$(scripts/dev-cluster.sh env)\") under SLURMTUNE_TEST_STRICT=1")
		}
		t.Skip("no live slurmrestd: SLURMTUNE_REST_URL and SLURM_JWT unset")
	}
	c, err := New(Config{URL: url, User: os.Getenv("SLURMTUNE_REST_USER"), Version: os.Getenv("SLURMTUNE_REST_VERSION")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// liveDir is a directory the jobs' slurmd (same machine) can write.
func liveDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "slurmtune-rest-live-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := f()
		if ok {
			return
		}
		last = state
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: still %s after %v", what, last, timeout)
}

func TestLiveSubmitDependencyCancel(t *testing.T) {
	c := liveClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := c.APIVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("slurmrestd at %s speaks %s", c.cfg.URL, v)

	dir := liveDir(t)
	tag := make([]byte, 4)
	rand.Read(tag)
	prefix := "slurmtune-rest-live:" + hex.EncodeToString(tag) + ":"
	script := func(name string) []byte {
		return []byte(fmt.Sprintf("#!/bin/bash\n#SBATCH --time=1\n#SBATCH --output=%s/%s-%%j.out\nhostname\n", dir, name))
	}
	var submitted []string
	defer func() {
		// Whatever happened, leave nothing queued.
		if len(submitted) > 0 {
			if err := c.Cancel(context.Background(), submitted); err != nil {
				t.Errorf("cancel %v: %v", submitted, err)
			}
		}
	}()

	held, err := c.Submit(ctx, slurm.SubmitRequest{Script: script("held"), WorkDir: dir, Comment: prefix + "held",
		ExtraArgs: []string{"--hold"}, Env: map[string]string{"SLURMTUNE_LIVE": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	submitted = append(submitted, held)
	dep, err := c.Submit(ctx, slurm.SubmitRequest{Script: script("dep"), WorkDir: dir, Comment: prefix + "dep", AfterOK: []string{held}})
	if err != nil {
		t.Fatal(err)
	}
	submitted = append(submitted, dep)
	t.Logf("held job %s, dependent job %s", held, dep)

	waitFor(t, "dependent job pending on its dependency", 20*time.Second, func() (bool, string) {
		jobs, err := c.Jobs(ctx, []string{held, dep})
		if err != nil {
			t.Fatal(err)
		}
		m := byID(jobs)
		d, h := m[dep], m[held]
		if d.Comment != prefix+"dep" || h.Comment != prefix+"held" {
			t.Fatalf("comments not as submitted: %+v / %+v", h, d)
		}
		return d.State == slurm.StatePending && d.Reason == "Dependency" && h.State == slurm.StatePending,
			fmt.Sprintf("held %s/%s, dep %s/%s", h.State, h.Reason, d.State, d.Reason)
	})

	byComment, err := c.JobsByComment(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if got := byID(byComment); len(got) != 2 || got[held].ID == "" || got[dep].ID == "" {
		t.Errorf("JobsByComment(%q) = %+v", prefix, byComment)
	}

	if err := c.Cancel(ctx, []string{dep, held}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both jobs cancelled", 30*time.Second, func() (bool, string) {
		jobs, err := c.Jobs(ctx, []string{held, dep})
		if err != nil {
			t.Fatal(err)
		}
		m := byID(jobs)
		return m[held].State == slurm.StateCancelled && m[dep].State == slurm.StateCancelled,
			fmt.Sprintf("held %s, dep %s", m[held].State, m[dep].State)
	})
	// Cancelling again is not an error.
	if err := c.Cancel(ctx, []string{held}); err != nil {
		t.Errorf("second cancel: %v", err)
	}
}

func TestLiveCompletes(t *testing.T) {
	c := liveClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := liveDir(t)
	tag := make([]byte, 4)
	rand.Read(tag)
	comment := "slurmtune-rest-live:" + hex.EncodeToString(tag) + ":ok"
	id, err := c.Submit(ctx, slurm.SubmitRequest{
		Script:  []byte(fmt.Sprintf("#!/bin/bash\n#SBATCH --time=1\n#SBATCH --job-name=rest-live-ok\n#SBATCH --output=%s/ok-%%j.out\necho \"live $SLURMTUNE_LIVE\"\nhostname\n", dir)),
		WorkDir: dir, Comment: comment, Env: map[string]string{"SLURMTUNE_LIVE": "yes"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("job %s", id)
	var done slurm.Job
	waitFor(t, "job completed", 60*time.Second, func() (bool, string) {
		jobs, err := c.Jobs(ctx, []string{id}) // one id: GET /job/ID
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 1 {
			return false, "unknown"
		}
		done = jobs[0]
		return done.State.Terminal(), string(done.State)
	})
	if done.State != slurm.StateCompleted || done.ExitCode != 0 || done.Signal != 0 || done.Name != "rest-live-ok" ||
		done.Comment != comment || done.Nodes == "" || done.Start.IsZero() || done.End.IsZero() {
		t.Errorf("finished job: %+v", done)
	}
	// The script's #SBATCH --output was honoured (slurmrestd itself ignores
	// #SBATCH lines; Submit maps them), and the environment reached the job.
	out, err := os.ReadFile(filepath.Join(dir, "ok-"+id+".out"))
	if err != nil {
		t.Errorf("job output not where #SBATCH --output said: %v", err)
	} else if !strings.Contains(string(out), "live yes") {
		t.Errorf("job output %q: environment not passed", out)
	}

	// Accounting has it too (what Jobs falls back to once slurmctld purges
	// the job after MinJobAge).
	a, _ := c.getAPI(ctx)
	waitFor(t, "job in accounting", 30*time.Second, func() (bool, string) {
		acct, err := c.accounting(ctx, a, dbQuery{ids: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range acct {
			// slurmdbd may first record the job as "allocation" and
			// rename it when the batch step's record arrives.
			if j.ID == id && j.State == slurm.StateCompleted && j.Name == "rest-live-ok" {
				if j.ExitCode != 0 || j.Source != sourceAccounting || j.Comment != comment {
					t.Errorf("accounting record: %+v", j)
				}
				return true, ""
			}
		}
		return false, fmt.Sprint(acct)
	})
}

func TestLiveBadTokens(t *testing.T) {
	live := liveClient(t)
	ctx := context.Background()
	good := os.Getenv("SLURM_JWT")
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(good), "SLURM_JWT="), ".")
	if len(parts) != 3 {
		t.Fatal("SLURM_JWT is not a JWT")
	}
	// Same claims, another signature: what a token from another cluster (or
	// a rotated key) looks like to slurmctld.
	forged := parts[0] + "." + parts[1] + "." + b64url("not the cluster's signature")
	expired := makeJWT(fmt.Sprintf(`{"exp":%d,"iat":%d,"sun":"root"}`, time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()))
	for name, tok := range map[string]string{"forged": forged, "expired": expired} {
		t.Run(name, func(t *testing.T) {
			c, err := New(Config{URL: live.cfg.URL, Token: tok, User: os.Getenv("SLURMTUNE_REST_USER"), Version: live.cfg.Version, NoEnv: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Jobs(ctx, []string{"1", "2"})
			if !errors.Is(err, ErrTokenRejected) {
				t.Fatalf("want the token message, got %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "token rejected or expired: refresh it with `scontrol token` or set SLURM_JWT") {
				t.Errorf("message %q", msg)
			}
			if strings.Contains(msg, tok) || strings.Contains(msg, parts[1]) || strings.Contains(msg, "\n") {
				t.Errorf("token in the message %q", msg)
			}
			t.Logf("%s token: %s (%d round trips)", name, msg, c.RoundTrips())
		})
	}
}

// TestLiveStageOptionsReadBack: the Slurm options a stage can set reach
// the job as slurmrestd 22.05 reads them, checked in the controller's
// record of the (held) job: typed GPUs, features, reservation, exclusive,
// mail, partition, account, QOS.
func TestLiveStageOptionsReadBack(t *testing.T) {
	c := liveClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := liveDir(t)
	script := "#!/bin/bash\n#SBATCH --time=2\n#SBATCH --partition=debug\n#SBATCH --gres=gpu:a100:1\n#SBATCH --constraint=ib\n" +
		"#SBATCH --reservation=st-dev\n#SBATCH --exclusive\n#SBATCH --mail-type=END,FAIL\n#SBATCH --mail-user=root\n" +
		"#SBATCH --account=slurmtune\n#SBATCH --qos=normal\n" +
		"#SBATCH --output=" + dir + "/opts-%j.out\ntrue\n"
	id, err := c.Submit(ctx, slurm.SubmitRequest{Script: []byte(script), WorkDir: dir, Comment: "slurmtune-rest-live:opts", ExtraArgs: []string{"--hold"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Cancel(context.Background(), []string{id}); err != nil {
			t.Errorf("cancel %s: %v", id, err)
		}
	}()
	for key, want := range map[string]string{"TresPerNode": "gres:gpu:a100:1", "Features": "ib", "Reservation": "st-dev",
		"OverSubscribe": "NO", "MailType": "END,FAIL", "MailUser": "root", "Partition": "debug", "Account": "slurmtune", "QOS": "normal"} {
		if got := slurmtest.JobField(t, id, key); got != want {
			t.Errorf("job %s: %s=%q, want %q", id, key, got, want)
		}
	}
}
