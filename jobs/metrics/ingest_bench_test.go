package metrics

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/store"
)

// benchmarkIngest reads 100,000 new lines of a metrics file into a fresh
// database, as sync does after a long train stage; each line is what the
// payload writes at a logging step (names are its metrics).
func benchmarkIngest(b *testing.B, names []string) {
	const lines = 100_000
	dir := b.TempDir()
	path := filepath.Join(dir, "train.jsonl")
	var sb strings.Builder
	sb.WriteString(`{"slurmtune":{"job":"41","restart":0,"time":1700000000}}` + "\n")
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&sb, `{"step": %d, "time": %.3f`, i, 1700000000+float64(i)*0.5)
		for k, n := range names {
			fmt.Fprintf(&sb, `, %q: %.6g`, n, 5/float64(i)+float64(k))
		}
		sb.WriteString("}\n")
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	stage := store.Stage{Name: "train", JobID: "41", State: "COMPLETED"}
	b.SetBytes(int64(sb.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := store.Open(ctx, filepath.Join(dir, fmt.Sprintf("st-%d.db", i)), nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.CreateRun(ctx, store.Run{ID: "r1", Name: "bench", RunDir: dir, Transport: "local"}, []string{"train"}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := ingestMetricsFile(ctx, st, local.FS{}, "r1", stage, store.MetricFile{Path: path, Stage: "train"}, map[string]int{"41": 1}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		pts, err := st.MetricSeriesOf(ctx, "r1")
		if err != nil || len(pts) != len(names) || pts[0].Points != lines {
			b.Fatalf("series %+v, %v", pts, err)
		}
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(lines), "lines/op")
}

// BenchmarkIngestMetricLines: lines of the tiny payload (loss, learning
// rate, tokens per second).
func BenchmarkIngestMetricLines(b *testing.B) {
	benchmarkIngest(b, []string{"loss", "learning_rate", "tokens_per_second"})
}

// BenchmarkIngestMetricLinesLossOnly: one metric a line.
func BenchmarkIngestMetricLinesLossOnly(b *testing.B) {
	benchmarkIngest(b, []string{"loss"})
}

// BenchmarkIngestMetricLinesHF: lines of the HF payload (six metrics).
func BenchmarkIngestMetricLinesHF(b *testing.B) {
	benchmarkIngest(b, []string{"loss", "learning_rate", "grad_norm", "epoch", "tokens_per_second", "samples_per_second"})
}
