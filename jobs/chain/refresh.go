package chain

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/slurmtune/slurmtune/jobs/notify"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

// ServiceFor opens the chain service on the cluster a run's recorded
// cluster configuration names.
type ServiceFor func(ctx context.Context, clusterConfig string) (*Service, error)

// Refresh reconciles interrupted submissions and syncs every tracked live
// job, with one constant-size refresh per cluster, across every cluster
// the store's runs were submitted to; then it queues the webhook events
// the refresh revealed (local and cheap: sync and submit --wait deliver
// them). Before that, ingest (when not nil) gets the jobs that were live
// before the refresh: their runs' new output (metrics, and the last lines
// of those that just ended) is worth reading.
func Refresh(ctx context.Context, st *store.Store, log *slog.Logger, service ServiceFor,
	ingest func(context.Context, []store.TrackedJob)) (SyncResult, error) {
	var total SyncResult
	submitting, err := st.SubmittingRuns(ctx)
	if err != nil {
		return total, err
	}
	configs := map[string]bool{}
	for _, r := range submitting {
		configs[r.ClusterConfig] = true
	}
	for _, cfg := range slices.Sorted(maps.Keys(configs)) {
		svc, err := service(ctx, cfg)
		if err != nil {
			return total, err
		}
		if _, err := svc.Reconcile(ctx); err != nil {
			return total, err
		}
	}
	live, err := st.LiveJobs(ctx)
	if err != nil {
		return total, err
	}
	byConfig := map[string][]store.TrackedJob{}
	for _, t := range live {
		byConfig[t.ClusterConfig] = append(byConfig[t.ClusterConfig], t)
	}
	for _, cfg := range slices.Sorted(maps.Keys(byConfig)) {
		svc, err := service(ctx, cfg)
		if err != nil {
			return total, err
		}
		res, err := slurm.ReadRetrying(ctx, log, func() (SyncResult, error) { return svc.SyncJobs(ctx, byConfig[cfg]) })
		if err != nil {
			return total, err
		}
		total.Tracked += res.Tracked
		total.Changed += res.Changed
		total.Missing += res.Missing
	}
	if ingest != nil {
		ingest(ctx, live)
	}
	if _, err := notify.Queue(ctx, st, time.Now()); err != nil {
		log.Warn("queue notifications", "err", err)
	}
	return total, nil
}

// RunsOf is the runs of the given jobs, each once, in the jobs' order; a
// run that cannot be read is logged and left out.
func RunsOf(ctx context.Context, st *store.Store, log *slog.Logger, tracked []store.TrackedJob) []*store.Run {
	seen := map[string]bool{}
	var runs []*store.Run
	for _, t := range tracked {
		if seen[t.RunID] {
			continue
		}
		seen[t.RunID] = true
		r, err := st.GetRun(ctx, t.RunID)
		if err != nil {
			log.Warn("metrics", "run", t.RunID, "err", err)
			continue
		}
		runs = append(runs, r)
	}
	return runs
}
