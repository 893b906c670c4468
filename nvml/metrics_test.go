package nvml

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsOddDriverStrings(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	f.devs[0].GetNameFunc = func() (string, gonvml.Return) { return " NVIDIA \xff\xfeA100\x00 ", gonvml.SUCCESS }
	p := startPoller(t, f, pollerConfig{})
	p.Poll(context.Background())
	mfs := gather(t, p) // pedantic registry: fails on any invalid metric
	if _, ok := value(mfs, "slurmtune_gpu_power_watts", map[string]string{"gpu": "0", "model": "NVIDIA \uFFFDA100"}); !ok {
		t.Error("GPU with an odd model name lost its series")
	}
}

func TestMetricsBeforeFirstCollection(t *testing.T) {
	p := newPoller(noLibrary(), pollerConfig{})
	mfs := gather(t, p)
	if v, ok := value(mfs, "slurmtune_nvml_up", nil); !ok || v != 0 {
		t.Errorf("nvml_up = %v (present %v), want 0", v, ok)
	}
	if len(mfs) != 1 {
		t.Errorf("%d families before any collection, want only slurmtune_nvml_up", len(mfs))
	}
}

// TestScrapesDuringCollection runs scrapes concurrently with collections;
// run with -race.
func TestScrapesDuringCollection(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	p := startPoller(t, f, pollerConfig{})
	c := newMetricsCollector(p, "node1")
	p.Poll(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				ch := make(chan prometheus.Metric, 1024)
				c.Collect(ch)
				close(ch)
				n := 0
				for m := range ch {
					if strings.Contains(m.Desc().String(), "slurmtune_gpu_power_watts") {
						n++
					}
				}
				if n != 8 {
					t.Errorf("%d power series, want 8", n)
					return
				}
			}
		})
	}
	for range 50 {
		p.Poll(context.Background())
	}
	wg.Wait()
}

// TestHandlerScrapesDuringCollection scrapes the HTTP handler (shared,
// per-snapshot families) concurrently with collections; run with -race.
func TestHandlerScrapesDuringCollection(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	p := startPoller(t, f, pollerConfig{})
	p.Poll(context.Background())
	h := newHTTPServer(p, "node1", slog.New(slog.DiscardHandler)).Handler
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 30 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				if n := strings.Count(rec.Body.String(), "\nslurmtune_gpu_power_watts{"); rec.Code != 200 || n != 8 {
					t.Errorf("status %d, %d power series, want 200 and 8", rec.Code, n)
					return
				}
			}
		})
	}
	for range 30 {
		p.Poll(context.Background())
	}
	wg.Wait()
}
