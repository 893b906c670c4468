package cmdline

import (
	"reflect"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

func TestGPUCount(t *testing.T) {
	for in, want := range map[string]int{"gpu:4": 4, "gpu:a100:8(S:0-1)": 8, "gpu:a100:4,gpu:v100:2,shard:8": 6, "(null)": 0, "": 0,
		"gpu:tesla:2(S:0,1),mps:100": 2, "gpu:4(IDX:0-3)": 4} {
		if got := gpuCount(in); got != want {
			t.Errorf("gpuCount(%q) = %d, want %d", in, got, want)
		}
	}
	nodes, err := ParseNodes([]byte("n1|8|8000|gpu:4|idle\nn1|8|8000|gpu:4|idle\nn2|16+|64000|(null)|down*\n"))
	if err != nil || len(nodes) != 2 || nodes[1].CPUs != 16 || nodes[1].GPUs != 0 || nodes[0].MemMB != 8000 {
		t.Errorf("parseSinfoNodes = %+v, %v", nodes, err)
	}
	if _, err := ParseNodes([]byte("n1|8\n")); err == nil {
		t.Error("a short line parsed")
	}
}

// TestParseNodesFeatures: the sixth field is the features; the GPU types
// come from the gres.
func TestParseNodesFeatures(t *testing.T) {
	nodes, err := ParseNodes([]byte("n1|8|8000|gpu:a100:4(S:0-1),gpu:v100:2|idle|fast,ib\nn2|8|8000|gpu:2|idle|(null)\n"))
	if err != nil || len(nodes) != 2 {
		t.Fatalf("ParseNodes = %+v, %v", nodes, err)
	}
	if !reflect.DeepEqual(nodes[0].Features, []string{"fast", "ib"}) || !reflect.DeepEqual(nodes[0].GPUTypes, []string{"a100", "v100"}) ||
		nodes[0].GPUs != 6 || nodes[1].Features != nil || nodes[1].GPUTypes != nil {
		t.Errorf("ParseNodes = %+v", nodes)
	}
}

func TestParseReservations(t *testing.T) {
	out := "ReservationName=maint StartTime=2026-01-01T00:00:00 Nodes=n1\nReservationName=big Users=alice\n"
	if got := ParseReservations([]byte(out)); !reflect.DeepEqual(got, []string{"maint", "big"}) {
		t.Errorf("ParseReservations = %q", got)
	}
}

// TestParseSacctGPUs: a requeued job's runs add up; the most GPUs count;
// gres/gpu wins over typed entries.
func TestParseSacctGPUs(t *testing.T) {
	out := "10|REQUEUED|billing=8,cpu=8,gres/gpu=4,node=1|60\n10|COMPLETED|cpu=8,gres/gpu=4|30\n" +
		"11|RUNNING|cpu=2,gres/gpu:a100=2,gres/gpu:v100=1|5\nbad|line\n12|PENDING||x\n"
	want := map[string]slurm.GPUAllocation{"10": {GPUs: 4, Elapsed: 90 * time.Second, Ended: true}, "11": {GPUs: 3, Elapsed: 5 * time.Second}}
	if got := ParseSacctGPUs([]byte(out)); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSacctGPUs = %+v, want %+v", got, want)
	}
	for in, want := range map[string]int{"gres/gpu=2,gres/gpu:a100=2": 2, "gres/gpu:a100=1,gres/gpu:v100=2": 3, "cpu=4": 0, "": 0} {
		if got := TRESGPUs(in); got != want {
			t.Errorf("TRESGPUs(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestSbatchComplaint(t *testing.T) {
	in := "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n"
	if got := SbatchComplaint(in); got != "Batch job submission failed: Invalid account or account/partition combination specified" {
		t.Errorf("SbatchComplaint = %q", got)
	}
	if got := SbatchComplaint("\n"); got != "no reason given" {
		t.Errorf("SbatchComplaint(empty) = %q", got)
	}
}
