package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/slurmtune/slurmtune/cmd/slurmtune/release"
	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/jobs/notify"
	"github.com/slurmtune/slurmtune/jobs/preflight"
	"github.com/slurmtune/slurmtune/slurm"
	connectpkg "github.com/slurmtune/slurmtune/slurm/connect"
	"github.com/slurmtune/slurmtune/store"
)

// cluster is a connection (slurm/connect) and the slurmtune binary the
// job scripts call there; client and fs are the connection's Client and FS.
type cluster struct {
	*connectpkg.Cluster
	client    slurm.Client
	fs        slurm.FileSystem
	slurmtune string
}

// connect opens the transport a pipeline's cluster section names.
func connect(ctx context.Context, e *env, c jobs.Cluster) (*cluster, error) {
	bin, err := slurmtuneOnCluster(c)
	if err != nil {
		return nil, err
	}
	cc, err := connectpkg.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	return &cluster{Cluster: cc, client: cc.Client, fs: cc.FS, slurmtune: bin}, nil
}

func (cl *cluster) close() { cl.Close() }

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
// version is refused before anything is submitted.
func (cl *cluster) computeBinary(ctx context.Context, e *env, workdir string) error {
	b, err := cl.binaryPlan(ctx, e, workdir)
	if err != nil || b == nil {
		return err
	}
	path, err := b.Resolve(ctx, cl.Cluster, cl.fs)
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
	return &chain.ComputeBinary{Setting: cl.slurmtune, Workdir: workdir, Where: cl.Where(), Version: version,
		BuildFor: func(p chain.Platform) (chain.Build, error) { return releaseBuild(ctx, e, self, p) }, ReadFile: os.ReadFile}, nil
}

// checkFiles looks up the files the jobs will read where they will see
// them; missing ones are problems of the pipeline file (exit 2).
func (cl *cluster) checkFiles(ctx context.Context, p *jobs.Pipeline, file string) error {
	return preflight.CheckFiles(ctx, cl.fs, cl.Where(), p, file)
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
	out, err := connectpkg.Here(ctx, b.Path, "--version")
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

// clusterSet keeps one connection per distinct cluster configuration for
// the duration of a command (connect.Set, with each one's binary).
type clusterSet struct {
	e     *env
	st    *store.Store
	set   *connectpkg.Set
	conns map[string]*cluster
}

func newClusterSet(e *env, st *store.Store) *clusterSet {
	return &clusterSet{e: e, st: st, set: connectpkg.NewSet(), conns: map[string]*cluster{}}
}

func (cs *clusterSet) get(ctx context.Context, config string) (*cluster, error) {
	if cl, ok := cs.conns[config]; ok {
		return cl, nil
	}
	c, err := connectpkg.OfRun(config)
	if err != nil {
		return nil, err
	}
	bin, err := slurmtuneOnCluster(c)
	if err != nil {
		return nil, err
	}
	cc, err := cs.set.Get(ctx, config)
	if err != nil {
		return nil, err
	}
	cl := &cluster{Cluster: cc, client: cc.Client, fs: cc.FS, slurmtune: bin}
	cs.conns[config] = cl
	return cl, nil
}

// add makes cl the set's connection for its configuration.
func (cs *clusterSet) add(cl *cluster) {
	cs.set.Add(cl.Cluster)
	cs.conns[cl.Config] = cl
}

func (cs *clusterSet) service(ctx context.Context, config string) (*chain.Service, error) {
	cl, err := cs.get(ctx, config)
	if err != nil {
		return nil, err
	}
	return cs.e.service(cs.st, cl)
}

func (cs *clusterSet) close() { cs.set.Close() }

// refresh reconciles interrupted submissions and syncs every tracked live
// job (chain.Refresh), reading the new output of the runs that were live.
func (cs *clusterSet) refresh(ctx context.Context) (chain.SyncResult, error) {
	return chain.Refresh(ctx, cs.st, cs.e.log, cs.service, cs.ingestLive)
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
