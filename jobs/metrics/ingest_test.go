package metrics

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/store"
)

func TestParseMetricsLine(t *testing.T) {
	p := newLineParser()
	l, ok := p.parse([]byte(`{"step": 3, "time": 1700000000.5, "loss": 2.5, "note": "x", "nan": null, "nested": {"a": 1}, "epoch": 0.1}`))
	if !ok || l.marker != nil || *l.step != 3 || l.at.UnixMilli() != 1700000000500 || len(l.values) != 2 || l.values[0] != (namedValue{"loss", 2.5}) || l.values[1].name != "epoch" {
		t.Errorf("line = %+v, %v", l, ok)
	}
	l, ok = p.parse([]byte(`{"slurmtune":{"job":"12","restart":1,"time":5}}`))
	if !ok || l.marker == nil || l.marker.Job != "12" || l.marker.Restart != 1 {
		t.Errorf("marker = %+v, %v", l, ok)
	}
	for _, bad := range []string{`[1,2]`, `nope`, `"s"`, `{"slurmtune": 3}`, `{"loss": 1} {"loss": 2}`, `{"loss": 1, "loss": 2}`, `{"loss": 1`} {
		if _, ok := p.parse([]byte(bad)); ok {
			t.Errorf("%s parsed", bad)
		}
	}
}

// TestReadMetricsFileSegments reads a real file in two goes: lines after a
// marker belong to its job and restart, a torn last line waits, a bad line
// is counted.
func TestReadMetricsFileSegments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train.jsonl")
	write := func(s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"slurmtune":{"job":"41","restart":0,"time":1}}` + "\n" + `{"step":1,"time":10,"loss":3}` + "\n" + `garbage` + "\n" + `{"step":2,"ti`)
	s := store.Stage{Name: "train", JobID: "41"}
	attempts := map[string]int{"41": 1}
	from := store.MetricFile{Path: path, Stage: "train"}
	to, pts, done, err := readMetricsFile(context.Background(), local.FS{}, s, from, attempts, time.Unix(99, 0), nil)
	if err != nil || !done || len(pts) != 1 || to.Bad != 1 || to.JobID != "41" || pts[0].Attempt != 1 || pts[0].Value != 3 {
		t.Fatalf("first read: %+v %+v %v %v", to, pts, done, err)
	}
	write(`me":11,"loss":2}` + "\n" + `{"slurmtune":{"job":"41","restart":1,"time":2}}` + "\n" + `{"step":1,"loss":2.8}` + "\n")
	to2, pts, _, err := readMetricsFile(context.Background(), local.FS{}, s, to, attempts, time.Unix(99, 0), nil)
	if err != nil || len(pts) != 2 {
		t.Fatalf("second read: %+v %+v %v", to2, pts, err)
	}
	if pts[0].Restart != 0 || *pts[0].Step != 2 || pts[1].Restart != 1 || pts[1].Time.Unix() != 99 || to2.Restart != 1 || to2.Bad != 1 {
		t.Errorf("segments: %+v %+v", pts, to2)
	}
	fi, _ := os.Stat(path)
	if to2.ReadTo != fi.Size() {
		t.Errorf("read to %d of %d", to2.ReadTo, fi.Size())
	}
}
