package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/slurm/local"
	sshx "github.com/slurmtune/slurmtune/slurm/ssh"
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

// gpuClusters gives nvml the clusters of runs. Listing a directory and
// asking accounting go by transport here until the slurm package's
// Inspector does them.
type gpuClusters struct{ cs *clusterSet }

func (g gpuClusters) Cluster(ctx context.Context, config string) (nvml.Cluster, error) {
	cl, err := g.cs.get(ctx, config)
	if err != nil {
		return nil, err
	}
	return gpuCluster{cl}, nil
}

type gpuCluster struct{ cl *cluster }

func (g gpuCluster) Files() slurm.FileSystem { return g.cl.fs }

func (g gpuCluster) JobGPUs(ctx context.Context, ids []string) (map[string]nvml.JobGPUs, error) {
	return sacctGPUs(ctx, g.cl, ids)
}

func (g gpuCluster) ListFiles(ctx context.Context, dir string) ([]string, error) {
	var names []string
	switch f := g.cl.fs.(type) {
	case local.FS:
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, en := range entries {
			if en.Type().IsRegular() {
				names = append(names, en.Name())
			}
		}
	case *sshx.Conn:
		sc, err := f.SFTP()
		if err != nil {
			return nil, err
		}
		entries, err := sc.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) || os.IsNotExist(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, en := range entries {
			if en.Mode().IsRegular() {
				names = append(names, en.Name())
			}
		}
	default:
		return nil, fmt.Errorf("cannot list %s on a %T filesystem", dir, g.cl.fs)
	}
	return names, nil
}

// sacctGPUs asks accounting for the allocated GPUs and elapsed time of
// jobs, summed over requeues (--duplicates).
func sacctGPUs(ctx context.Context, cl *cluster, ids []string) (map[string]nvml.JobGPUs, error) {
	if cl.runner == nil {
		return nil, errors.New("no way to run sacct on this cluster")
	}
	out, err := cl.runner.Run(ctx, cmdline.Command{Argv: []string{"sacct", "--noheader", "--parsable2", "--allocations", "--duplicates",
		"--format=JobIDRaw,State,AllocTRES,ElapsedRaw", "--jobs=" + strings.Join(ids, ",")}})
	if err != nil {
		return nil, err
	}
	return parseSacctGPUs(out), nil
}

func parseSacctGPUs(out []byte) map[string]nvml.JobGPUs {
	rows := map[string]nvml.JobGPUs{}
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 4 || f[0] == "" {
			continue
		}
		el, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			continue
		}
		row := rows[f[0]]
		row.GPUs = max(row.GPUs, tresGPUs(f[2]))
		row.Elapsed += time.Duration(el) * time.Second
		row.Ended = slurm.ParseState(f[1]).Terminal()
		rows[f[0]] = row
	}
	return rows
}

// tresGPUs is N of gres/gpu=N in a TRES list, else the sum of typed
// gres/gpu:TYPE=N, else 0.
func tresGPUs(tres string) int {
	typed := 0
	for kv := range strings.SplitSeq(tres, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		switch {
		case k == "gres/gpu":
			return n
		case strings.HasPrefix(k, "gres/gpu:"):
			typed += n
		}
	}
	return typed
}
