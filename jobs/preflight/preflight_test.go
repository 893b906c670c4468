package preflight

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/templates"
)

// fakeInspector answers like a small cluster: partitions debug (default,
// no limit) and short (30 min), two nodes of 8 CPUs, 8000 MB and 4 GPUs,
// account proj and QOS normal.
type fakeInspector struct {
	down   bool
	refuse string // sbatch --test-only's complaint, when it refuses
}

func (f *fakeInspector) Partitions(context.Context) ([]slurm.Partition, error) {
	state := "UP"
	if f.down {
		state = "DOWN"
	}
	return []slurm.Partition{{Name: "debug", Default: true, State: state, TotalNodes: 2},
		{Name: "short", MaxTime: 30 * time.Minute, State: "UP", TotalNodes: 2}}, nil
}

func (f *fakeInspector) Nodes(context.Context, string) ([]slurm.Node, error) {
	return []slurm.Node{{Name: "st-node1", CPUs: 8, MemMB: 8000, GPUs: 4, State: "idle"},
		{Name: "st-node2", CPUs: 8, MemMB: 8000, GPUs: 4, State: "mixed"}}, nil
}

func (f *fakeInspector) Reservations(context.Context) ([]string, error) { return nil, nil }

func (f *fakeInspector) HasAccount(_ context.Context, name string) (bool, error) {
	return name == "proj", nil
}

func (f *fakeInspector) HasQOS(_ context.Context, name string) (bool, error) {
	return name == "normal", nil
}

func (f *fakeInspector) TestSubmit(_ context.Context, req slurm.SubmitRequest) error {
	switch {
	case len(req.Script) == 0:
		return &slurm.RefusedError{Reason: "no script"}
	case f.refuse != "":
		return &slurm.RefusedError{Reason: f.refuse}
	}
	return nil
}

func TestPreflight(t *testing.T) {
	src := `name: pf
data: {inputs: [d.jsonl]}
train:
  script: train.py
  nodes: 2
  gpus_per_node: 4
  cpus: 2
  time: "01:00:00"
`
	tests := []struct {
		name string
		sets []string
		fake fakeInspector
		want []string // each a whole problem line
	}{
		{name: "fits the default partition"},
		{name: "unknown partition", sets: []string{"cluster.partition=gpu"},
			want: []string{`p.yaml: --set cluster.partition: the cluster has no partition "gpu" (it has: debug, short)`}},
		{name: "down", fake: fakeInspector{down: true}, want: []string{`p.yaml: cluster.partition: the default partition debug is DOWN, not UP`}},
		{name: "too many nodes", sets: []string{"train.nodes=3"},
			want: []string{`p.yaml: --set train.nodes: 3 nodes with 4 GPUs, 8 CPUs and 2048M of memory each do not fit the default partition debug: 2 of its 2 nodes have that`}},
		{name: "too many GPUs", sets: []string{"train.gpus_per_node=8", "train.tasks_per_node=8", "train.cpus=1"},
			want: []string{`p.yaml:5:10: train.nodes: 2 nodes with 8 GPUs, 8 CPUs and 2048M of memory each do not fit the default partition debug: 0 of its 2 nodes have that`}},
		{name: "time above MaxTime", sets: []string{"cluster.partition=short"},
			want: []string{`p.yaml:8:9: train.time: 01:00:00 is above the MaxTime of partition short (00:30:00) (or set train.chain_time_limit: true to run it as a chain of requeued jobs)`}},
		{name: "chained", sets: []string{"cluster.partition=short", "train.chain_time_limit=true"}},
		{name: "chained, too few restarts", sets: []string{"cluster.partition=short", "train.chain_time_limit=true", "train.time=3h"},
			want: []string{`p.yaml: --set train.chain_time_limit: train.max_restarts: 3 restarts of partition short jobs (00:30:00 each) cover 02:00:00, less than train.time 03:00:00: allow at least 5`}},
		{name: "other stages cannot chain", sets: []string{"cluster.partition=short", "train.time=10", "eval.time=2h"},
			want: []string{`p.yaml: --set eval.time: 02:00:00 is above the MaxTime of partition short (00:30:00)`}},
		{name: "account and qos", sets: []string{"cluster.account=nope", "cluster.qos=normal"},
			want: []string{`p.yaml: --set cluster.account: the cluster has no account "nope"`}},
		{name: "sbatch refuses", fake: fakeInspector{refuse: "Batch job submission failed: Invalid account or account/partition combination specified"},
			want: []string{
				`p.yaml: prep: sbatch --test-only refuses the prep script: Batch job submission failed: Invalid account or account/partition combination specified`,
				`p.yaml:4:3: train: sbatch --test-only refuses the train script: Batch job submission failed: Invalid account or account/partition combination specified`,
				`p.yaml: eval: sbatch --test-only refuses the eval script: Batch job submission failed: Invalid account or account/partition combination specified`,
				`p.yaml: deploy: sbatch --test-only refuses the deploy script: Batch job submission failed: Invalid account or account/partition combination specified`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := jobs.Parse("p.yaml", "/srv/p/p.yaml", []byte(src), jobs.LoadOptions{Sets: tt.sets})
			if err != nil {
				t.Fatal(err)
			}
			ts, err := templates.New()
			if err != nil {
				t.Fatal(err)
			}
			scripts, err := ts.Render(p, templates.Run{ID: "r", Dir: "/srv/runs/r", Slurmtune: "/bin/slurmtune"})
			if err != nil {
				t.Fatal(err)
			}
			fake := tt.fake
			errs, warnings, err := Check(context.Background(), &fake, p, "p.yaml", scripts)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %q", warnings)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
