package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/cmd/slurmtune/release"
	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/jobs/notify"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/slurm/rest"
	sshx "github.com/slurmtune/slurmtune/slurm/ssh"
	"github.com/slurmtune/slurmtune/store"
)

// cluster is a connected transport.
type cluster struct {
	client    slurm.Client
	fs        slurm.FileSystem
	runner    cmdline.Runner // Slurm's commands where they run; nil for REST without SSH
	transport string
	name      string
	// config is the pipeline's cluster section as JSON, recorded with
	// every run so later commands can reach the same cluster.
	config    string
	slurmtune string
	// sshHost is the login node that files and commands go through; ""
	// when they are this host's.
	sshHost string
	close   func() error
}

// connect opens the transport a pipeline's cluster section names:
//   - local: Slurm's commands on this host, files on this host;
//   - ssh: Slurm's commands over one SSH connection, files over SFTP on it;
//   - rest: slurmrestd for jobs; files over SSH when cluster.ssh.host is set,
//     else on this host (the run directory must be on a filesystem shared
//     with the cluster).
func connect(ctx context.Context, e *env, c jobs.Cluster) (*cluster, error) {
	cfg, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	cl := &cluster{transport: c.Transport, config: string(cfg), slurmtune: c.Slurmtune, close: func() error { return nil }}
	var conn *sshx.Conn
	if c.Transport == "ssh" || c.Transport == "rest" && c.SSH.Host != "" {
		conn, err = sshx.Dial(ctx, sshx.Config{Host: c.SSH.Host, Port: c.SSH.Port, User: c.SSH.User,
			IdentityFile: c.SSH.IdentityFile, KnownHosts: c.SSH.KnownHosts, ProxyJump: c.SSH.ProxyJump})
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", c.SSH.Host, err)
		}
		cl.close = conn.Close
		cl.fs, cl.runner, cl.sshHost = conn, conn, c.SSH.Host
	} else {
		cl.fs, cl.runner = local.FS{}, local.Runner{}
	}
	switch c.Transport {
	case "local", "ssh":
		cl.client = cmdline.New(cl.runner)
		if c.Transport == "local" {
			cl.name = localClusterName()
		} else {
			cl.name = c.SSH.Host
		}
	case "rest":
		url := c.REST.URL
		if url == "" {
			url = os.Getenv("SLURMTUNE_REST_URL")
		}
		runner := cl.runner
		rc, err := rest.New(rest.Config{URL: url, User: c.REST.User, TokenFile: c.REST.TokenFile,
			TokenSource: func(ctx context.Context) (string, error) {
				// scontrol would authenticate with the very token that was
				// rejected: mint the new one over munge.
				out, err := runner.Run(ctx, cmdline.Command{Argv: []string{"env", "-u", "SLURM_JWT", "scontrol", "token", "lifespan=3600"}})
				if err != nil {
					return "", fmt.Errorf("scontrol token: %w", err)
				}
				return string(out), nil
			}})
		if err != nil {
			cl.close()
			return nil, err
		}
		cl.client, cl.name = rc, url
	default:
		cl.close()
		return nil, fmt.Errorf("unknown cluster.transport %q", c.Transport)
	}
	if cl.slurmtune, err = slurmtuneOnCluster(c); err != nil {
		cl.close()
		return nil, err
	}
	return cl, nil
}

// slurmtuneOnCluster is the slurmtune binary as compute nodes see it:
// cluster.slurmtune, else this very binary for the local transport (the
// login node and compute nodes share its filesystem), else upload (this
// binary, copied to the workdir by computeBinary before a submission).
func slurmtuneOnCluster(c jobs.Cluster) (string, error) {
	switch {
	case c.Slurmtune != "":
		return c.Slurmtune, nil
	case c.Transport != "local":
		return chain.Upload, nil
	}
	return selfBinary()
}

// computeBinary makes sure the compute nodes can run the slurmtune the job
// scripts call (uploading it when cluster.slurmtune says upload) and sets
// cl.slurmtune to that path; a binary that is missing or of another
// version is refused before anything is submitted. The local transport's
// default, this very binary, needs no check.
func (cl *cluster) computeBinary(ctx context.Context, e *env, workdir string) error {
	b, err := cl.binaryPlan(ctx, e, workdir)
	if err != nil || b == nil {
		return err
	}
	path, err := b.Resolve(ctx, loginShell{cl.runner}, cl.fs)
	if err != nil {
		return err
	}
	cl.slurmtune = path
	return nil
}

// binaryPlan is how the compute nodes get slurmtune; nil when they run
// this very binary (the local transport's default).
func (cl *cluster) binaryPlan(ctx context.Context, e *env, workdir string) (*chain.ComputeBinary, error) {
	self, err := selfBinary()
	if err != nil || cl.slurmtune == self {
		return nil, err
	}
	return &chain.ComputeBinary{Setting: cl.slurmtune, Workdir: workdir, Where: cl.where(), Version: version,
		BuildFor: func(p chain.Platform) (chain.Build, error) { return releaseBuild(ctx, e, self, p) }, ReadFile: os.ReadFile}, nil
}

// where names the login side in messages: the SSH host, or this host
// (local, and REST without cluster.ssh: it shares the workdir with the
// cluster).
func (cl *cluster) where() string {
	if cl.sshHost != "" {
		return cl.sshHost
	}
	return "this host"
}

// checkFiles looks up the files the jobs will read where they will see
// them; missing ones are problems of the pipeline file (exit 2).
func (cl *cluster) checkFiles(ctx context.Context, p *jobs.Pipeline, file string) error {
	st, ok := cl.fs.(chain.Stater)
	if !ok {
		return nil
	}
	errs, err := chain.CheckFiles(ctx, p, file, cl.where(), st)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// loginShell runs commands where the transport runs Slurm's.
type loginShell struct{ r cmdline.Runner }

func (l loginShell) Output(ctx context.Context, argv ...string) ([]byte, error) {
	return l.r.Run(ctx, cmdline.Command{Argv: argv})
}

// releaseBuild is the slurmtune build for p (release.FindFrom: the
// release build next to this binary or in dist/, else this binary). A
// build other than this binary must be of this version: one for this
// host's platform is asked (--version); another platform's cannot be run
// here, and is taken as it is, with a warning.
func releaseBuild(ctx context.Context, e *env, self string, p chain.Platform) (chain.Build, error) {
	b, err := release.FindFrom(self, p.OS, p.Arch)
	if err != nil {
		return chain.Build{}, fmt.Errorf("%w; or set cluster.slurmtune to slurmtune %s on the cluster", err, version)
	}
	if b.Path == self {
		return chain.Build{Path: self, Version: version}, nil
	}
	if p.OS != runtime.GOOS || p.Arch != runtime.GOARCH {
		e.log.Warn("cannot run the build for another platform to check its version: uploading it as this version",
			"build", b.Path, "version", version)
		return chain.Build{Path: b.Path, Version: version}, nil
	}
	out, err := loginShell{local.Runner{}}.Output(ctx, b.Path, "--version")
	if err != nil {
		return chain.Build{}, fmt.Errorf("%s --version: %w", b.Path, err)
	}
	if v := chain.ParseVersion(string(out)); v != version {
		return chain.Build{}, fmt.Errorf("%s is slurmtune %s, this is %s: run make release again", b.Path, v, version)
	}
	return chain.Build{Path: b.Path, Version: version}, nil
}

// selfBinary is this binary's path, links resolved.
func selfBinary() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return "", fmt.Errorf("find slurmtune binary: %w", err)
	}
	return exe, nil
}

func isUnavailable(err error) bool { return errors.Is(err, slurm.ErrUnavailable) }

// localClusterName names the local cluster by its slurm.conf, for the record.
func localClusterName() string {
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		conf = "/etc/slurm/slurm.conf"
	}
	data, err := os.ReadFile(conf)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "ClusterName") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// clusterOfRun is the cluster section a run was submitted with (runs from
// before it was recorded used the local transport).
func clusterOfRun(config string) (jobs.Cluster, error) {
	var c jobs.Cluster
	if config == "" {
		return jobs.Cluster{Transport: "local"}, nil
	}
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		return c, fmt.Errorf("recorded cluster configuration: %w", err)
	}
	return c, nil
}

// clusterSet keeps one connection per distinct cluster configuration for
// the duration of a command.
type clusterSet struct {
	e     *env
	st    *store.Store
	conns map[string]*cluster
}

func newClusterSet(e *env, st *store.Store) *clusterSet {
	return &clusterSet{e: e, st: st, conns: map[string]*cluster{}}
}

func (cs *clusterSet) get(ctx context.Context, config string) (*cluster, error) {
	if cl, ok := cs.conns[config]; ok {
		return cl, nil
	}
	c, err := clusterOfRun(config)
	if err != nil {
		return nil, err
	}
	cl, err := connect(ctx, cs.e, c)
	if err != nil {
		return nil, err
	}
	cs.conns[config] = cl
	return cl, nil
}

func (cs *clusterSet) service(ctx context.Context, config string) (*chain.Service, error) {
	cl, err := cs.get(ctx, config)
	if err != nil {
		return nil, err
	}
	return cs.e.service(cs.st, cl)
}

func (cs *clusterSet) close() {
	for _, cl := range cs.conns {
		cl.close()
	}
}

// refresh reconciles interrupted submissions and syncs every tracked live
// job, one constant-size refresh per cluster.
func (cs *clusterSet) refresh(ctx context.Context) (chain.SyncResult, error) {
	var total chain.SyncResult
	submitting, err := cs.st.SubmittingRuns(ctx)
	if err != nil {
		return total, err
	}
	configs := map[string]bool{}
	for _, r := range submitting {
		configs[r.ClusterConfig] = true
	}
	for _, cfg := range sortedKeys(configs) {
		svc, err := cs.service(ctx, cfg)
		if err != nil {
			return total, err
		}
		if _, err := svc.Reconcile(ctx); err != nil {
			return total, err
		}
	}
	live, err := cs.st.LiveJobs(ctx)
	if err != nil {
		return total, err
	}
	byConfig := map[string][]store.TrackedJob{}
	for _, t := range live {
		byConfig[t.ClusterConfig] = append(byConfig[t.ClusterConfig], t)
	}
	for _, cfg := range sortedKeys(byConfig) {
		svc, err := cs.service(ctx, cfg)
		if err != nil {
			return total, err
		}
		res, err := withReadRetries(ctx, cs.e, func() (chain.SyncResult, error) { return svc.SyncJobs(ctx, byConfig[cfg]) })
		if err != nil {
			return total, err
		}
		total.Tracked += res.Tracked
		total.Changed += res.Changed
		total.Missing += res.Missing
	}
	cs.ingestLive(ctx, live)
	// Queue the webhook events the refresh revealed (local, cheap); sync
	// and submit --wait deliver them.
	if _, err := notify.Queue(ctx, cs.st, time.Now()); err != nil {
		cs.e.log.Warn("queue notifications", "err", err)
	}
	return total, nil
}

// deliverNotifications posts the webhook events that are due, within
// notify's time budget; a receiver that fails is retried by a later call.
func deliverNotifications(ctx context.Context, e *env, st *store.Store) {
	res, err := notify.DefaultDelivery().Deliver(ctx, st)
	if err != nil {
		e.log.Warn("deliver notifications", "err", err)
	}
	if res.Failed > 0 {
		e.log.Warn("webhook notifications failed; they are retried with backoff", "failed", res.Failed, "gave_up", res.GaveUp, "sent", res.Sent)
	}
}

// ingestLive reads the new metrics and eval results of the runs whose jobs
// were live before the refresh (so also the last lines of the ones that
// just ended).
func (cs *clusterSet) ingestLive(ctx context.Context, live []store.TrackedJob) {
	seen := map[string]bool{}
	var runs []*store.Run
	for _, t := range live {
		if seen[t.RunID] {
			continue
		}
		seen[t.RunID] = true
		r, err := cs.st.GetRun(ctx, t.RunID)
		if err != nil {
			cs.e.log.Warn("metrics", "run", t.RunID, "err", err)
			continue
		}
		runs = append(runs, r)
	}
	ingestRuns(ctx, cs.e, cs.st, cs, runs)
}

// withReadRetries retries a read while the controller is unreachable, with
// a short backoff, so a command fails fast but rides out a restart.
func withReadRetries[T any](ctx context.Context, e *env, f func() (T, error)) (T, error) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		v, err := f()
		if err == nil || attempt == 2 || !isUnavailable(err) {
			return v, err
		}
		e.log.Warn("cluster unavailable, retrying", "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// runSession is what a command about one run needs: the store, the run and
// a connection set that reaches the run's cluster. Close it when done.
type runSession struct {
	st  *store.Store
	run *store.Run
	cs  *clusterSet
}

// openRun opens the store and finds the run (id or unique prefix).
func openRun(ctx context.Context, e *env, runID string) (*runSession, error) {
	st, err := e.openStore(ctx)
	if err != nil {
		return nil, err
	}
	r, err := st.GetRun(ctx, runID)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &runSession{st: st, run: r, cs: newClusterSet(e, st)}, nil
}

// cluster connects to the run's cluster.
func (rs *runSession) cluster(ctx context.Context) (*cluster, error) {
	return rs.cs.get(ctx, rs.run.ClusterConfig)
}

// service is the chain service on the run's cluster.
func (rs *runSession) service(ctx context.Context) (*chain.Service, error) {
	return rs.cs.service(ctx, rs.run.ClusterConfig)
}

func (rs *runSession) close() {
	rs.cs.close()
	rs.st.Close()
}
