package nvml

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// benchDevice forwards the argument-taking calls straight to the mock's
// funcs: the generated mock records every call's arguments forever, which
// would grow without bound in a benchmark and pollute its RSS.
type benchDevice struct{ *server.Device }

func (d benchDevice) GetTemperature(s gonvml.TemperatureSensors) (uint32, gonvml.Return) {
	return d.GetTemperatureFunc(s)
}

func (d benchDevice) GetClockInfo(c gonvml.ClockType) (uint32, gonvml.Return) {
	return d.GetClockInfoFunc(c)
}

func (d benchDevice) GetTotalEccErrors(t gonvml.MemoryErrorType, c gonvml.EccCounterType) (uint64, gonvml.Return) {
	return d.GetTotalEccErrorsFunc(t, c)
}

func (d benchDevice) RegisterEvents(t uint64, s gonvml.EventSet) gonvml.Return {
	return d.RegisterEventsFunc(t, s)
}

// benchFixture is the 8-GPU DGX H100 mock with full telemetry and jobs.
func benchFixture(b *testing.B) *fixture {
	f := newFixture(b, dgxh100.New())
	for i, d := range f.devs {
		f.srv.Devices[i] = benchDevice{d}
	}
	// Like nvmlEventSetWait: block for the whole timeout when nothing
	// happens (the test fixture returns early to keep tests fast).
	f.srv.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(ms uint32) (gonvml.EventData, gonvml.Return) {
				select {
				case e := <-f.events:
					return e, gonvml.SUCCESS
				case <-time.After(time.Duration(ms) * time.Millisecond):
					return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
				}
			},
			FreeFunc: func() gonvml.Return { f.frees.Add(1); return gonvml.SUCCESS },
		}, gonvml.SUCCESS
	}
	return f
}

// cpuTime is the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatusMB returns a "VmRSS"/"VmHWM" line of /proc/self/status in MB.
func procStatusMB(b *testing.B, field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("%s not in /proc/self/status", field)
	return 0
}

// BenchmarkCollect8GPU is one NVML collection of 8 GPUs (mock), including
// /proc job attribution and job accounting. core-%@1s is the share of one
// core the collection loop costs at the default 1 s interval (target < 0.5).
func BenchmarkCollect8GPU(b *testing.B) {
	f := benchFixture(b)
	p := startPoller(b, f, pollerConfig{})
	ctx := context.Background()
	p.Poll(ctx)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	n := 0
	for b.Loop() {
		if s := p.Poll(ctx); len(s.Devices) != 8 {
			b.Fatal("bad snapshot")
		}
		n++
	}
	perColl := (cpuTime(b) - cpu0) / time.Duration(n)
	b.ReportMetric(float64(perColl.Microseconds()), "cpu-us/collection")
	b.ReportMetric(perColl.Seconds()/DefaultInterval.Seconds()*100, "core-%@1s")
}

// BenchmarkScrape8GPU scrapes GET /metrics of a running exporter (8 mock
// GPUs, 1 s collection interval) over loopback, with Prometheus's request
// headers. It reports client-observed latency percentiles (target p99 <
// 2 ms), the scrape's CPU cost and the process RSS at the end.
func BenchmarkScrape8GPU(b *testing.B) {
	f := benchFixture(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunExporter(ctx, ExporterOptions{
			Listener: ln, Hostname: "node1", ProcFS: os.DirFS("testdata/proc"),
			Logger: slog.New(slog.DiscardHandler),
		}, f.srv)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	url := "http://" + ln.Addr().String() + "/metrics"
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	scrape := func() int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return int(n)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p := f.srv.Devices; len(p) == 8 && scrapeOK(url) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("exporter did not come up")
		}
	}
	for range 20 { // warm connections and buffers
		scrape()
	}
	var lat []time.Duration
	var bytesOut int
	cpu0 := cpuTime(b)
	for b.Loop() {
		t := time.Now()
		bytesOut = scrape()
		lat = append(lat, time.Since(t))
	}
	cpu := (cpuTime(b) - cpu0) / time.Duration(len(lat))
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(int(q*float64(len(lat))), len(lat)-1)].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
	b.ReportMetric(float64(cpu.Microseconds()), "cpu-us/scrape")
	b.ReportMetric(float64(bytesOut), "bytes")
	b.ReportMetric(procStatusMB(b, "VmRSS"), "rss-MB")
}

func scrapeOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return bytes.Contains(body, []byte(`slurmtune_nvml_up{hostname="node1"} 1`)) &&
		bytes.Contains(body, []byte("slurmtune_gpu_power_watts"))
}

// BenchmarkExporterSteady runs the whole exporter (8 mock GPUs, 1 s
// interval, XID watcher, samples file, one scrape every 15 s scaled down)
// for 3 s per iteration and reports its CPU share of one core and RSS.
// Use -benchtime=1x.
func BenchmarkExporterSteady(b *testing.B) {
	f := benchFixture(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	samples := b.TempDir() + "/s.jsonl"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunExporter(ctx, ExporterOptions{
			Listener: ln, Hostname: "node1", ProcFS: os.DirFS("testdata/proc"), SamplesPath: samples,
			Logger: slog.New(slog.DiscardHandler),
		}, f.srv)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	url := "http://" + ln.Addr().String() + "/metrics"
	for deadline := time.Now().Add(5 * time.Second); !scrapeOK(url); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("exporter did not come up")
		}
	}
	const window = 3 * time.Second
	var total, wall time.Duration
	for b.Loop() {
		cpu0, t0 := cpuTime(b), time.Now()
		time.Sleep(window)
		scrapeOK(url) // one scrape per window
		total += cpuTime(b) - cpu0
		wall += time.Since(t0)
	}
	b.ReportMetric(total.Seconds()/wall.Seconds()*100, "core-%")
	b.ReportMetric(procStatusMB(b, "VmRSS"), "rss-MB")
}

// BenchmarkScrapeHandler8GPU is the server side of one scrape of 8 mock
// GPUs (no network, no client): the exporter's own scrape latency.
func BenchmarkScrapeHandler8GPU(b *testing.B) {
	f := benchFixture(b)
	p := startPoller(b, f, pollerConfig{})
	p.Poll(context.Background())
	h := newHTTPServer(p, "node1", slog.New(slog.DiscardHandler)).Handler
	req, _ := http.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	req.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	var lat []time.Duration
	w := &discardResponse{header: http.Header{}}
	for b.Loop() {
		clear(w.header)
		w.code = 0
		t := time.Now()
		h.ServeHTTP(w, req)
		lat = append(lat, time.Since(t))
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[min(len(lat)*99/100, len(lat)-1)].Microseconds()), "p99-us")
}

// discardResponse is an http.ResponseWriter that drops the body, like a
// socket write would leave nothing behind in the process.
type discardResponse struct {
	header http.Header
	code   int
}

func (d *discardResponse) Header() http.Header { return d.header }

func (d *discardResponse) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = http.StatusOK
	}
	return len(p), nil
}

func (d *discardResponse) WriteHeader(code int) { d.code = code }
