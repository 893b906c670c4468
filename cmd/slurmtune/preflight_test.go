package main

import (
	"context"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/templates"
)

// fakeSlurm answers preflight's commands like a small cluster: partitions
// debug (default, no limit) and short (30 min), two nodes of 8 CPUs, 8000 MB
// and 4 GPUs, account proj and QOS normal.
type fakeSlurm struct {
	down    bool
	testErr string // sbatch --test-only's stderr, when it refuses
	calls   []string
}

func (f *fakeSlurm) Run(_ context.Context, c cmdline.Command) ([]byte, error) {
	f.calls = append(f.calls, strings.Join(c.Argv, " "))
	switch c.Argv[0] {
	case "scontrol":
		state := "UP"
		if f.down {
			state = "DOWN"
		}
		return []byte("PartitionName=debug Default=YES MaxTime=UNLIMITED State=" + state + " TotalNodes=2\n" +
			"PartitionName=short Default=NO MaxTime=00:30:00 State=UP TotalNodes=2\n"), nil
	case "sinfo":
		return []byte("st-node1|8|8000|gpu:4|idle\nst-node2|8|8000|gpu:4(S:0)|mixed\n"), nil
	case "sacctmgr":
		switch c.Argv[len(c.Argv)-2] {
		case "proj", "normal":
			return []byte(c.Argv[len(c.Argv)-2] + "\n"), nil
		}
		return nil, nil
	case "sbatch":
		if len(c.Stdin) == 0 {
			return nil, &cmdline.ExitError{Argv: c.Argv, Code: 1, Stderr: "no script on stdin"}
		}
		if f.testErr != "" {
			return nil, &cmdline.ExitError{Argv: c.Argv, Code: 1, Stderr: f.testErr}
		}
		return nil, nil
	}
	return nil, &cmdline.ExitError{Argv: c.Argv, Code: 127, Stderr: "unknown command"}
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
		fake fakeSlurm
		want []string // each a whole problem line
	}{
		{name: "fits the default partition"},
		{name: "unknown partition", sets: []string{"cluster.partition=gpu"},
			want: []string{`p.yaml: --set cluster.partition: the cluster has no partition "gpu" (it has: debug, short)`}},
		{name: "down", fake: fakeSlurm{down: true}, want: []string{`p.yaml: cluster.partition: the default partition debug is DOWN, not UP`}},
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
		{name: "sbatch refuses", fake: fakeSlurm{testErr: "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n"},
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
			errs, warnings, err := preflight(context.Background(), &fake, p, "p.yaml", scripts)
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

func TestGPUCount(t *testing.T) {
	for in, want := range map[string]int{"gpu:4": 4, "gpu:a100:8(S:0-1)": 8, "gpu:a100:4,gpu:v100:2,shard:8": 6, "(null)": 0, "": 0,
		"gpu:tesla:2(S:0,1),mps:100": 2, "gpu:4(IDX:0-3)": 4} {
		if got := gpuCount(in); got != want {
			t.Errorf("gpuCount(%q) = %d, want %d", in, got, want)
		}
	}
	nodes, err := parseSinfoNodes([]byte("n1|8|8000|gpu:4|idle\nn1|8|8000|gpu:4|idle\nn2|16+|64000|(null)|down*\n"))
	if err != nil || len(nodes) != 2 || nodes[1].CPUs != 16 || nodes[1].GPUs != 0 || nodes[0].MemMB != 8000 {
		t.Errorf("parseSinfoNodes = %+v, %v", nodes, err)
	}
	if _, err := parseSinfoNodes([]byte("n1|8\n")); err == nil {
		t.Error("a short line parsed")
	}
}
