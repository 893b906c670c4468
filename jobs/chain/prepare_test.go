package chain

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/templates"
)

// partitionClient is a slurm.Client that also lists partitions.
type partitionClient struct {
	slurm.Client
	parts []slurm.Partition
	asked int
}

func (c *partitionClient) Partitions(context.Context) ([]slurm.Partition, error) {
	c.asked++
	return c.parts, nil
}

func preparePipeline(t *testing.T, sets ...string) *jobs.Pipeline {
	t.Helper()
	src := "name: p\ndata: {inputs: [d.jsonl]}\ntrain: {script: t.py, nodes: 2, tasks_per_node: 2, time: 3h}\n"
	p, err := jobs.Parse("p.yaml", "/srv/p/p.yaml", []byte(src), jobs.LoadOptions{Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func trainScript(t *testing.T, pr *Prepared) string {
	t.Helper()
	for _, sc := range pr.Scripts {
		if sc.Stage == jobs.StageTrain {
			return string(sc.Body)
		}
	}
	t.Fatal("no train script")
	return ""
}

// TestPrepareChainedTimeLimit: with train.chain_time_limit, the train job
// asks for the partition's MaxTime when train.time is longer.
func TestPrepareChainedTimeLimit(t *testing.T) {
	ts, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	parts := []slurm.Partition{{Name: "debug", Default: true}, {Name: "short", MaxTime: 30 * time.Minute}}
	tests := []struct {
		name  string
		sets  []string
		want  string
		asked int
	}{
		{"not chained", []string{"cluster.partition=short"}, "#SBATCH --time=03:00:00", 0},
		{"chained", []string{"cluster.partition=short", "train.chain_time_limit=true"}, "#SBATCH --time=00:30:00", 1},
		{"default partition without a limit", []string{"train.chain_time_limit=true"}, "#SBATCH --time=03:00:00", 1},
	}
	for _, tt := range tests {
		c := &partitionClient{parts: parts}
		s := &Service{Client: c, Inspector: c, Templates: ts, Slurmtune: "/bin/slurmtune", Now: time.Now}
		pr, err := s.Prepare(context.Background(), preparePipeline(t, tt.sets...))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if body := trainScript(t, pr); !strings.Contains(body, "\n"+tt.want+"\n") || c.asked != tt.asked {
			t.Errorf("%s: want %q (asked %d times, want %d):\n%s", tt.name, tt.want, c.asked, tt.asked, body)
		}
	}
}

// TestPrepareDSConfig: the run directory gets ds_config.json with DeepSpeed.
func TestPrepareDSConfig(t *testing.T) {
	ts, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Templates: ts, Slurmtune: "/bin/slurmtune"}
	pr, err := s.Prepare(context.Background(), preparePipeline(t, "train.deepspeed.zero_stage=1", "train.deepspeed.micro_batch_size=2"))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := pr.files[filepath.Join(pr.Dir, "ds_config.json")]
	var cfg map[string]any
	if !ok || json.Unmarshal(b, &cfg) != nil || cfg["train_batch_size"] != 8.0 {
		t.Errorf("ds_config.json: %v %s", ok, b)
	}
	pr, err = s.Prepare(context.Background(), preparePipeline(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pr.files[filepath.Join(pr.Dir, "ds_config.json")]; ok {
		t.Error("ds_config.json without DeepSpeed")
	}
}

// TestPrepareChainedNeedsInspector: a chained train stage is not rendered
// uncapped when there is nothing to ask the partition's limit.
func TestPrepareChainedNeedsInspector(t *testing.T) {
	ts, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Templates: ts, Slurmtune: "/bin/slurmtune", Now: time.Now}
	if _, err := s.Prepare(context.Background(), preparePipeline(t, "cluster.partition=short", "train.chain_time_limit=true")); err == nil ||
		!strings.Contains(err.Error(), "train.chain_time_limit: partition time limit") {
		t.Errorf("Prepare without an Inspector: %v", err)
	}
}
