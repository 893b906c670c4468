package main

import (
	"context"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

// `slurmtune gpu`: GPU telemetry of a run (package nvml reads, attributes,
// accounts and reports it); this file parses the command and adapts the
// cluster connections to what nvml needs of them.

type gpuOptions struct {
	arg          string
	json, noSync bool
}

func gpuCommand() *cli.Command {
	return &cli.Command{
		Name:      "gpu",
		Usage:     "show what every GPU of a run or job did: utilization, memory, energy, idle time, throttling, XIDs",
		ArgsUsage: "RUN|JOBID",
		Description: "Reads the run's GPU samples (<run dir>/gpu/samples-<host>.jsonl, written by\n" +
			"`slurmtune exporter --samples`) into the database and reports, per stage and GPU,\n" +
			"mean and p95 utilization, peak memory, energy, the longest idle streak (under 10%\n" +
			"while memory is held), throttle reasons and XID events, and flags a stage whose\n" +
			"GPUs averaged under 15% for more than 5 minutes. Says so plainly, and exits 0,\n" +
			"when there was no GPU telemetry. GPU-hours come from Slurm accounting.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "no-sync", Usage: "do not ask Slurm first (samples are still read)"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("gpu: want one RUN or JOBID")
			}
			return gpuShow(c.Context, e, gpuOptions{arg: c.Args().First(), json: c.Bool("json"), noSync: c.Bool("no-sync")})
		},
	}
}

func isJobID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func gpuShow(ctx context.Context, e *env, o gpuOptions) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r, onlyStage, err := st.RunOrJob(ctx, o.arg)
	if err != nil {
		return err
	}
	if !o.noSync {
		syncQuietly(ctx, e, st)
		if r, err = st.GetRun(ctx, r.ID); err != nil {
			return err
		}
	}
	cs := newClusterSet(e, st)
	defer cs.close()
	out := nvml.NewTelemetry(st, gpuClusters{cs}, e.log).Show(ctx, r, onlyStage, !o.noSync)
	if o.json {
		return printJSON(e.stdout, out)
	}
	return out.WriteText(e.stdout)
}

// gpuSummaries is what status shows of the runs' GPUs: with fresh set,
// new samples are read and accounting is asked first.
func gpuSummaries(ctx context.Context, e *env, st *store.Store, runs []*store.Run, fresh bool) map[string]*nvml.RunGPU {
	cs := newClusterSet(e, st)
	defer cs.close()
	return nvml.NewTelemetry(st, gpuClusters{cs}, e.log).Summarize(ctx, runs, fresh, fresh)
}

// gpuClusters gives nvml the clusters of runs.
type gpuClusters struct{ cs *clusterSet }

func (g gpuClusters) Cluster(ctx context.Context, config string) (nvml.Cluster, error) {
	cl, err := g.cs.get(ctx, config)
	if err != nil {
		return nil, err
	}
	return gpuCluster{cl}, nil
}

// gpuCluster is a connection as nvml needs it: files, and accounting's GPU
// allocations (slurm.Inspector).
type gpuCluster struct{ *cluster }

func (g gpuCluster) Files() slurm.FileSystem { return g.fs }

func (g gpuCluster) JobGPUs(ctx context.Context, ids []string) (map[string]nvml.JobGPUs, error) {
	allocs, err := g.Inspector.GPUAllocations(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]nvml.JobGPUs, len(allocs))
	for id, a := range allocs {
		out[id] = nvml.JobGPUs{GPUs: a.GPUs, Elapsed: a.Elapsed, Ended: a.Ended}
	}
	return out, nil
}
