package conformance_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/slurm/rest"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
	"github.com/slurmtune/slurmtune/slurm/slurmtest/conformance"
	sshx "github.com/slurmtune/slurmtune/slurm/ssh"
)

// The three transports of the dev cluster (scripts/dev-cluster.sh env and
// scripts/dev-sshd.sh env). A transport whose environment is missing skips,
// or fails under SLURMTUNE_TEST_STRICT=1.

func TestLocal(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) (slurm.Client, slurm.FileSystem) {
		slurmtest.RequireCluster(t)
		return local.NewClient(), local.FS{}
	})
}

func TestSSH(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) (slurm.Client, slurm.FileSystem) {
		conn := dialSSH(t)
		return sshx.NewClient(conn), conn
	})
}

// TestREST runs the suite over slurmrestd; the run directory is on a
// filesystem this host shares with the cluster, so files are local.
func TestREST(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) (slurm.Client, slurm.FileSystem) {
		return restClient(t), local.FS{}
	}, conformance.WithoutArrayTasks()) // REST submits arrays; asking about ARRAY_TASK ids is not done (issue 16)
}

// sshConfig is the dev sshd's address and credentials.
func sshConfig(t testing.TB) sshx.Config {
	t.Helper()
	host, key := os.Getenv("SLURMTUNE_SSH_HOST"), os.Getenv("SLURMTUNE_SSH_KEY")
	if host == "" || key == "" {
		slurmtest.Missing(t, "no dev sshd: SLURMTUNE_SSH_HOST/SLURMTUNE_SSH_KEY unset (eval \"$(scripts/dev-sshd.sh env)\")")
	}
	port, _ := strconv.Atoi(os.Getenv("SLURMTUNE_SSH_PORT"))
	return sshx.Config{Host: host, Port: port, User: os.Getenv("SLURMTUNE_SSH_USER"), IdentityFile: key,
		KnownHosts: os.Getenv("SLURMTUNE_SSH_KNOWN_HOSTS"), ConfigFile: "none", AgentSocket: "none", Timeout: 20 * time.Second}
}

// dialSSH connects to the dev sshd; the connection is closed when t ends.
func dialSSH(t testing.TB) *sshx.Conn {
	t.Helper()
	cfg := sshConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := sshx.Dial(ctx, cfg)
	if err != nil {
		if errors.Is(err, slurm.ErrUnavailable) {
			slurmtest.Missing(t, "dev sshd not reachable: %v", err)
		}
		t.Fatalf("ssh dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// restClient is a client of the dev cluster's slurmrestd.
func restClient(t testing.TB) *rest.Client {
	t.Helper()
	url := os.Getenv("SLURMTUNE_REST_URL")
	if url == "" || os.Getenv("SLURM_JWT") == "" {
		slurmtest.Missing(t, "no dev slurmrestd: SLURMTUNE_REST_URL/SLURM_JWT unset (eval \"$(scripts/dev-cluster.sh env)\")")
	}
	c, err := rest.New(rest.Config{URL: url, User: os.Getenv("SLURMTUNE_REST_USER"), Version: os.Getenv("SLURMTUNE_REST_VERSION")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		if errors.Is(err, slurm.ErrUnavailable) {
			slurmtest.Missing(t, "dev slurmrestd not usable: %v", err)
		}
		t.Fatalf("slurmrestd ping: %v", err)
	}
	return c
}

// TestRESTExpiredToken: a token past its exp claim is refused with the token
// message before anything is sent, whether slurmctld issued it (scontrol
// token lifespan=1, then waiting it out) or it was forged.
func TestRESTExpiredToken(t *testing.T) {
	t.Parallel()
	restClient(t) // skips without slurmrestd
	out := slurmtest.Run(t, "scontrol", "token", "lifespan=1")
	tok := strings.TrimPrefix(strings.TrimSpace(out), "SLURM_JWT=")
	time.Sleep(2100 * time.Millisecond)
	c, err := rest.New(rest.Config{URL: os.Getenv("SLURMTUNE_REST_URL"), Token: tok, NoEnv: true, Version: os.Getenv("SLURMTUNE_REST_VERSION")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Jobs(ctx, []string{"1", "2"})
	if !errors.Is(err, rest.ErrTokenRejected) || !strings.Contains(err.Error(), "expired at") ||
		!strings.Contains(err.Error(), "scontrol token") {
		t.Fatalf("Jobs with an expired token: %v; want the token message (ErrTokenRejected, expired at ...)", err)
	}
	if strings.Contains(err.Error(), tok) {
		t.Errorf("the error shows the token: %v", err)
	}
	t.Logf("expired token: %v (%d requests sent)", err, c.RoundTrips())
}

// countingRunner counts the commands (SSH session execs for the SSH
// transport) a cmdline client runs.
type countingRunner struct {
	inner cmdline.Runner
	mu    sync.Mutex
	argv0 []string
}

func (c *countingRunner) Run(ctx context.Context, cmd cmdline.Command) ([]byte, error) {
	c.mu.Lock()
	c.argv0 = append(c.argv0, cmd.Argv[0])
	c.mu.Unlock()
	return c.inner.Run(ctx, cmd)
}

func (c *countingRunner) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.argv0
	c.argv0 = nil
	return out
}

// transport is one way to the cluster with its round-trip counter.
type transport struct {
	name   string
	client slurm.Client
	fs     slurm.FileSystem
	// trips returns the round trips since the last call and what they were.
	trips func() (int, string)
}

func countingCmdline(name string, r cmdline.Runner, fs slurm.FileSystem) transport {
	cr := &countingRunner{inner: r}
	return transport{name: name, client: cmdline.New(cr), fs: fs, trips: func() (int, string) {
		a := cr.take()
		return len(a), strings.Join(a, "+")
	}}
}

// transports returns the transports that are available, each with a
// counter; missing ones are skipped (or fail when strict) as subtests.
func transports() []func(testing.TB) transport {
	return []func(testing.TB) transport{
		func(t testing.TB) transport {
			slurmtest.RequireCluster(t)
			return countingCmdline("local", local.Runner{}, local.FS{})
		},
		func(t testing.TB) transport {
			conn := dialSSH(t)
			return countingCmdline("ssh", conn, conn)
		},
		func(t testing.TB) transport {
			c := restClient(t)
			last := c.RoundTrips()
			return transport{name: "rest", client: c, fs: local.FS{}, trips: func() (int, string) {
				n := c.RoundTrips()
				d := n - last
				last = n
				return int(d), "http"
			}}
		},
	}
}

var transportNames = []string{"local", "ssh", "rest"}

// heldJobs submits n held jobs with the local tools (cancelled when tb
// ends) and returns their ids.
func heldJobs(tb testing.TB, n int, comment string) []string {
	tb.Helper()
	slurmtest.RequireCluster(tb)
	c := local.NewClient()
	var ids []string
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Cancel(ctx, ids); err != nil {
			tb.Errorf("cancel held jobs: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < n; i++ {
		id, err := c.Submit(ctx, slurm.SubmitRequest{
			Script:    []byte("#!/bin/sh\ntrue\n"),
			Comment:   comment,
			WorkDir:   os.TempDir(),
			ExtraArgs: []string{"--hold", "--output=/dev/null", "--job-name=st-conf-held", "--time=1", "--mem=10M"},
		})
		if err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// trackedIDs is what a refresh of n tracked jobs asks about: the live held
// jobs first, then jobs that finished long ago (from accounting), then ids
// that never existed.
func trackedIDs(tb testing.TB, live []string, n int) []string {
	tb.Helper()
	ids := append([]string(nil), live...)
	seen := map[string]bool{}
	for _, id := range live {
		seen[id] = true
	}
	out := slurmtest.Run(tb, "sacct", "--noheader", "--allocations", "--allusers", "--starttime=now-30days",
		"--endtime=now-10minutes", "--state=CD,F,CA,TO", "--format=JobID%20")
	for _, f := range strings.Fields(out) {
		if len(ids) >= n/2 {
			break
		}
		if _, err := strconv.Atoi(f); err == nil && !seen[f] {
			seen[f] = true
			ids = append(ids, f)
		}
	}
	for i := 0; len(ids) < n; i++ {
		ids = append(ids, strconv.Itoa(900000000+i))
	}
	return ids
}

// TestRefreshRoundTrips checks, for each transport, the constant number of
// round trips of a status refresh: one (squeue, one SSH exec, one HTTP
// request) when every tracked job is still in the controller, and one more
// (sacct or the slurmdb request) for 1,000 tracked jobs most of which left
// it. BenchmarkRefresh measures the time.
func TestRefreshRoundTrips(t *testing.T) {
	held := heldJobs(t, 20, "slurmtune-conformance:refresh")
	all := trackedIDs(t, held, 1000)
	for i, mk := range transports() {
		t.Run(transportNames[i], func(t *testing.T) {
			tr := mk(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// Warm up (the REST client detects the API version once).
			if _, err := tr.client.Jobs(ctx, held); err != nil {
				t.Fatal(err)
			}
			tr.trips()
			for _, c := range []struct {
				name string
				ids  []string
				want int
			}{{"20 live", held, 1}, {"1000 tracked", all, 2}} {
				start := time.Now()
				js, err := tr.client.Jobs(ctx, c.ids)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				n, what := tr.trips()
				t.Logf("%s %s: %d round trips (%s) in %s, %d jobs answered", tr.name, c.name, n, what, time.Since(start).Round(time.Millisecond), len(js))
				if n != c.want {
					t.Errorf("%s %s: %d round trips (%s), want %d", tr.name, c.name, n, what, c.want)
				}
				live := 0
				for _, j := range js {
					if j.State == slurm.StatePending && j.Reason == "JobHeldUser" {
						live++
					}
				}
				if live != len(held) {
					t.Errorf("%s %s: %d of the %d held jobs answered PENDING/JobHeldUser", tr.name, c.name, live, len(held))
				}
			}
		})
	}
}

// sbatchRaw is the baseline of the submit benchmark: sbatch run directly.
func sbatchRaw(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "sbatch", append([]string{"--parsable"}, args...)...).Output()
	if err != nil {
		return "", err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	return id, nil
}
