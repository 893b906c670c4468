package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/store"
)

// The benchmark database: 1,000 runs and 1,000,000 train loss points (999
// runs of 900 points and one of 100,900, whose curve LTTB cuts to 2,000).
const (
	benchRuns      = 1000
	benchPoints    = 900
	benchBigPoints = 1_000_000 - (benchRuns-1)*benchPoints
	benchBigRun    = "bench-big"
)

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

func benchDB(b *testing.B) string {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "slurmtune-ui-bench-")
		if benchErr != nil {
			return
		}
		path := filepath.Join(benchDir, "st.db")
		st, err := store.Open(ctx, path, nil)
		if err != nil {
			benchErr = err
			return
		}
		defer st.Close()
		start := time.Now().Add(-24 * time.Hour)
		for i := 0; i < benchRuns; i++ {
			id, n := fmt.Sprintf("bench-%04d", i), benchPoints
			if i == 0 {
				id, n = benchBigRun, benchBigPoints
			}
			if err := st.CreateRun(ctx, store.Run{ID: id, Name: fmt.Sprintf("sweep-%d", i%7), RunDir: "/r/" + id, Transport: "local"}, []string{"prep", "train", "eval"}); err != nil {
				benchErr = err
				return
			}
			pts := make([]store.MetricPoint, n)
			for k := range pts {
				s := int64(k + 1)
				pts[k] = store.MetricPoint{Stage: "train", Name: "loss", Offset: int64(k) * 64, Step: &s, Value: 5 / float64(k+1), Time: start.Add(time.Duration(k) * time.Second), JobID: "1", Attempt: 1}
			}
			if _, err := st.SaveMetricLines(ctx, id, store.MetricFile{Path: "/m"}, store.MetricFile{Path: "/m", Stage: "train", ReadTo: int64(n) * 64}, pts); err != nil {
				benchErr = err
				return
			}
			ppl := 10.0
			if err := st.SaveEvalReport(ctx, id, store.EvalRecord{JobID: "3", Passed: i%3 != 0, Metrics: map[string]float64{"perplexity": ppl},
				Gates: []store.GateRecord{{Metric: "perplexity", Op: "<=", Threshold: 12, Value: &ppl, Passed: true}}}); err != nil {
				benchErr = err
				return
			}
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return filepath.Join(benchDir, "st.db")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchGet serves url b.N times and reports the p50 and p99 latency.
func benchGet(b *testing.B, url string, check func(*httptest.ResponseRecorder)) {
	st, err := store.OpenReadOnly(ctx, benchDB(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := New(Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+url, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("%s: %d %s", url, w.Code, w.Body)
	}
	check(w)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(w, req)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*50/100])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)*99/100, len(lat)-1)])/1e6, "p99-ms")
}

// BenchmarkRunsPage is the runs page as it opens: every run filtered and
// sorted, the first page of defaultPageRows shown.
func BenchmarkRunsPage(b *testing.B) {
	benchGet(b, "/", func(w *httptest.ResponseRecorder) {
		if n := countRows(w.Body.String()); n != defaultPageRows {
			b.Fatalf("runs page shows %d runs, want %d", n, defaultPageRows)
		}
	})
}

// BenchmarkRunsPageAll shows all 1,000 runs on one page (?limit=0).
func BenchmarkRunsPageAll(b *testing.B) {
	benchGet(b, "/?limit=0", func(w *httptest.ResponseRecorder) {
		if n := countRows(w.Body.String()); n != benchRuns {
			b.Fatalf("runs page shows %d runs, want %d", n, benchRuns)
		}
	})
}

// BenchmarkRunsAPI is the JSON the runs page polls for live states.
func BenchmarkRunsAPI(b *testing.B) {
	benchGet(b, "/api/runs", func(w *httptest.ResponseRecorder) {
		var runs []apiRun
		if err := json.Unmarshal(w.Body.Bytes(), &runs); err != nil || len(runs) != benchRuns {
			b.Fatalf("api/runs: %d runs, %v", len(runs), err)
		}
	})
}

func BenchmarkCurveJSONBigRun(b *testing.B) {
	benchGet(b, "/api/runs/"+benchBigRun+"/charts", func(w *httptest.ResponseRecorder) {
		checkLoss(b, w, MaxPoints)
	})
}

func BenchmarkCurveJSON(b *testing.B) {
	benchGet(b, "/api/runs/bench-0500/charts", func(w *httptest.ResponseRecorder) {
		checkLoss(b, w, benchPoints)
	})
}

func countRows(html string) int { return strings.Count(html, `<tr data-run=`) }

func checkLoss(b *testing.B, w *httptest.ResponseRecorder, want int) {
	var charts []Chart
	if err := json.Unmarshal(w.Body.Bytes(), &charts); err != nil {
		b.Fatal(err)
	}
	if len(charts[0].X) != want || len(charts[0].Series) != 1 {
		b.Fatalf("loss curve has %d points, want %d", len(charts[0].X), want)
	}
}
