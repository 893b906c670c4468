package main

import (
	"context"

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
	self      chain.Self
}

// self is this binary (chain.Self), its release builds found by release.
func (e *env) self() (chain.Self, error) {
	path, err := chain.SelfPath()
	return chain.Self{Path: path, Version: version, Log: e.log, FindBuild: func(self string, p chain.Platform) (string, error) {
		b, err := release.FindFrom(self, p.OS, p.Arch)
		return b.Path, err
	}}, err
}

// connect opens the transport a pipeline's cluster section names.
func connect(ctx context.Context, e *env, c jobs.Cluster) (*cluster, error) {
	cc, err := connectpkg.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	cl, err := e.onCluster(cc, c)
	if err != nil {
		cc.Close()
	}
	return cl, err
}

// onCluster is cc with the slurmtune binary the job scripts call there.
func (e *env) onCluster(cc *connectpkg.Cluster, c jobs.Cluster) (*cluster, error) {
	self, err := e.self()
	if err != nil {
		return nil, err
	}
	return &cluster{Cluster: cc, client: cc.Client, fs: cc.FS, slurmtune: self.OnCluster(c), self: self}, nil
}

func (cl *cluster) close() { cl.Close() }

// binaryPlan is how the compute nodes get slurmtune (nil: this binary).
func (cl *cluster) binaryPlan(ctx context.Context, workdir string) *chain.ComputeBinary {
	return cl.self.Plan(ctx, cl.slurmtune, workdir, cl.Where())
}

// computeBinary makes sure the compute nodes can run the slurmtune the job
// scripts call (uploading it when cluster.slurmtune says upload) and sets
// cl.slurmtune to that path; a binary that is missing or of another
// version is refused before anything is submitted.
func (cl *cluster) computeBinary(ctx context.Context, workdir string) (err error) {
	if b := cl.binaryPlan(ctx, workdir); b != nil {
		cl.slurmtune, err = b.Resolve(ctx, cl.Cluster, cl.fs)
	}
	return err
}

// checkFiles looks up the files the jobs will read where they will see
// them; missing ones are problems of the pipeline file (exit 2).
func (cl *cluster) checkFiles(ctx context.Context, p *jobs.Pipeline, file string) error {
	return preflight.CheckFiles(ctx, cl.fs, cl.Where(), p, file)
}

// clusterSet keeps one connection per distinct cluster configuration (a
// run's recorded one) for the duration of a command (connect.Set).
type clusterSet struct {
	e   *env
	st  *store.Store
	set *connectpkg.Set
}

func newClusterSet(e *env, st *store.Store) *clusterSet {
	return &clusterSet{e: e, st: st, set: connectpkg.NewSet()}
}

func (cs *clusterSet) get(ctx context.Context, config string) (*cluster, error) {
	c, err := connectpkg.OfRun(config)
	if err != nil {
		return nil, err
	}
	cc, err := cs.set.Get(ctx, config)
	if err != nil {
		return nil, err
	}
	return cs.e.onCluster(cc, c)
}

// add makes cl's connection the set's for its configuration (the set
// closes it).
func (cs *clusterSet) add(cl *cluster) { cs.set.Add(cl.Cluster) }

func (cs *clusterSet) service(ctx context.Context, config string) (*chain.Service, error) {
	cl, err := cs.get(ctx, config)
	if err != nil {
		return nil, err
	}
	return cs.e.service(cs.st, cl)
}

func (cs *clusterSet) close() { cs.set.Close() }

// refresh reconciles interrupted submissions and syncs every tracked live
// job (chain.Refresh), then reads the new output of the runs whose jobs
// were live (so also the last lines of the ones that just ended).
func (cs *clusterSet) refresh(ctx context.Context) (chain.SyncResult, error) {
	return chain.Refresh(ctx, cs.st, cs.e.log, cs.service, func(ctx context.Context, live []store.TrackedJob) {
		ingestRuns(ctx, cs.e, cs.st, cs, chain.RunsOf(ctx, cs.st, cs.e.log, live))
	})
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
