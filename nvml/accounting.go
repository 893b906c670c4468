package nvml

import (
	"context"
	"maps"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// GPU-hour accounting of a run's jobs: Slurm accounting's allocated GPUs x
// elapsed, else the pipeline's train nodes x gpus_per_node.

// allocations returns the recorded GPU allocations of every job of the
// runs, first (with ask) asking accounting, with one sacct per cluster,
// about the jobs whose figures are not final yet.
func (g *Telemetry) allocations(ctx context.Context, runs []*store.Run, ask bool) map[string][]store.GPUAlloc {
	out := make(map[string][]store.GPUAlloc, len(runs))
	type pending struct {
		r    *store.Run
		jobs []store.JobRecord
	}
	byConfig := map[string][]pending{}
	for _, r := range runs {
		recorded, err := g.st.GPUAllocs(ctx, r.ID)
		if err != nil {
			g.log.Warn("GPU allocations", "run", r.ID, "err", err)
			continue
		}
		out[r.ID] = recorded
		if !ask {
			continue
		}
		jobs, err := g.st.RunJobs(ctx, r.ID)
		if err != nil {
			g.log.Warn("GPU allocations", "run", r.ID, "err", err)
			continue
		}
		final := map[string]bool{}
		for _, a := range recorded {
			if a.Final {
				final[a.Stage+"/"+a.JobID] = true
			}
		}
		var need []store.JobRecord
		for _, j := range jobs {
			if !final[j.Stage+"/"+j.JobID] {
				need = append(need, j)
			}
		}
		if len(need) > 0 {
			byConfig[r.ClusterConfig] = append(byConfig[r.ClusterConfig], pending{r, need})
		}
	}
	for _, cfg := range slices.Sorted(maps.Keys(byConfig)) {
		cl := g.cluster(ctx, cfg)
		if cl == nil {
			continue
		}
		var ids []string
		for _, p := range byConfig[cfg] {
			for _, j := range p.jobs {
				ids = append(ids, j.JobID)
			}
		}
		acct, err := cl.JobGPUs(ctx, dedupeIDs(ids))
		if err != nil {
			g.log.Debug("sacct for GPU allocations", "err", err)
		}
		for _, p := range byConfig[cfg] {
			if err := recordAllocations(ctx, g.st, cl, p.r, p.jobs, acct); err != nil {
				g.log.Warn("GPU allocations", "run", p.r.ID, "err", err)
				continue
			}
			if recorded, err := g.st.GPUAllocs(ctx, p.r.ID); err == nil {
				out[p.r.ID] = recorded
			}
		}
	}
	return out
}

func dedupeIDs(ids []string) []string {
	slices.Sort(ids)
	return slices.Compact(ids)
}

// recordAllocations records the allocations of a run's jobs from what
// accounting said (acct), or for the train stage from the pipeline.
func recordAllocations(ctx context.Context, st *store.Store, cl Cluster, r *store.Run, ask []store.JobRecord, acct map[string]JobGPUs) error {
	var pipe *pipelineGPUs
	for _, j := range ask {
		a := store.GPUAlloc{RunID: r.ID, Stage: j.Stage, JobID: j.JobID}
		cur := stageNamed(r, j.Stage)
		isCurrent := cur != nil && cur.JobID == j.JobID
		row, ok := acct[j.JobID]
		switch {
		case ok:
			a.Elapsed = row.Elapsed
		case isCurrent:
			a.Elapsed = cur.Elapsed
		}
		if a.Elapsed <= 0 && (!ok || !row.Ended) {
			continue // not started
		}
		if ok && row.GPUs == 0 || !ok {
			if pipe == nil {
				pipe = readPipelineGPUs(ctx, cl, r)
			}
		}
		switch {
		case ok && row.GPUs > 0:
			a.GPUs, a.Source = row.GPUs, "sacct"
		case j.Stage == "train" && pipe != nil && pipe.gpusPerNode > 0:
			// Accounting cannot say or has no gres/gpu: the pipeline says
			// what the train stage asked for.
			a.GPUs, a.Source = pipe.nodes*pipe.gpusPerNode, "pipeline"
		case ok:
			a.Source = "sacct" // accounting says: no GPU
		default:
			continue // neither accounting nor the pipeline knows
		}
		// Once accounting has answered about an ended job, it is final.
		a.Final = ok && row.Ended
		if err := st.SetGPUAlloc(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

type pipelineGPUs struct{ nodes, gpusPerNode int }

// readPipelineGPUs reads train.nodes and train.gpus_per_node from the run's
// pipeline snapshot; zero when there is none (a `slurmtune sbatch` job).
func readPipelineGPUs(ctx context.Context, cl Cluster, r *store.Run) *pipelineGPUs {
	p := &pipelineGPUs{}
	b, err := cl.Files().ReadFile(ctx, templates.LayoutOf(r.RunDir).Pipeline)
	if err != nil {
		return p
	}
	var doc struct {
		Train struct {
			Nodes       int `yaml:"nodes"`
			GPUsPerNode int `yaml:"gpus_per_node"`
		} `yaml:"train"`
	}
	if yaml.Unmarshal(b, &doc) != nil {
		return p
	}
	p.nodes, p.gpusPerNode = max(doc.Train.Nodes, 1), doc.Train.GPUsPerNode
	return p
}
