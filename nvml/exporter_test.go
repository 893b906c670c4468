package nvml

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
)

// exporterRun is a RunExporter started in the background on a loopback
// port.
type exporterRun struct {
	url    string
	cancel context.CancelFunc
	done   chan error
}

func startExporter(t *testing.T, opts ExporterOptions, lib gonvml.Interface) *exporterRun {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener = ln
	if opts.Hostname == "" {
		opts.Hostname = "node1"
	}
	if opts.ProcFS == nil {
		opts.ProcFS = os.DirFS("testdata/proc")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &exporterRun{url: "http://" + ln.Addr().String() + "/metrics", cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- RunExporter(ctx, opts, lib) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the exporter and waits for it, failing on a non-nil error.
func (r *exporterRun) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("RunExporter: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunExporter did not stop after cancel")
	}
}

// scrape fetches /metrics, retrying until the server answers and the body
// contains want.
func (r *exporterRun) scrape(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(r.url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if resp.StatusCode == http.StatusOK && strings.Contains(last, want) {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("scrape never contained %q; last body:\n%s", want, last)
	return ""
}

// noLibrary is an NVML whose Init fails like a node without the driver.
// Every other call panics (nil mock func), proving none happens.
func noLibrary() *mock.Interface {
	return &mock.Interface{InitFunc: func() gonvml.Return { return gonvml.ERROR_LIBRARY_NOT_FOUND }}
}

func TestRunExporterNoLibrary(t *testing.T) {
	lib := noLibrary()
	samples := filepath.Join(t.TempDir(), "samples.jsonl")
	var logs logBuffer
	r := startExporter(t, ExporterOptions{Interval: 100 * time.Millisecond, SamplesPath: samples, Logger: logs.logger()}, lib)
	body := r.scrape(t, "slurmtune_nvml_up")
	if !strings.Contains(body, `slurmtune_nvml_up{hostname="node1"} 0`) {
		t.Errorf("want slurmtune_nvml_up 0, got:\n%s", grepLines(body, "slurmtune_"))
	}
	if strings.Contains(body, "slurmtune_gpu_") {
		t.Errorf("GPU series without NVML:\n%s", grepLines(body, "slurmtune_gpu_"))
	}
	checkPromtool(t, body)
	time.Sleep(300 * time.Millisecond) // a few intervals: still no NVML call, still one line
	r.stop(t)

	if n := len(lib.InitCalls()); n != 1 {
		t.Errorf("Init called %d times, want 1", n)
	}
	if n := strings.Count(logs.String(), "NVML unavailable"); n != 1 {
		t.Errorf("want one log line about NVML, got %d:\n%s", n, logs.String())
	}
	data, err := os.ReadFile(samples)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1 {
		t.Fatalf("samples file has %d lines, want 1:\n%s", len(lines), data)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || m["nvml"] != "unavailable" || m["host"] != "node1" || m["error"] != "ERROR_LIBRARY_NOT_FOUND" || m["time"] == nil {
		t.Errorf("status line = %s", lines[0])
	}
	ss, err := LoadSamples(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rep := BuildReport(ss)
	if rep.Telemetry || !strings.Contains(rep.Message, "NVML was not available on node1 (ERROR_LIBRARY_NOT_FOUND)") {
		t.Errorf("report = %+v", rep)
	}
}

func TestRunExporterEndToEnd(t *testing.T) {
	f := newFixture(t, dgxh100.New())
	f.tel[6].fail["utilization"] = gonvml.ERROR_GPU_IS_LOST
	samples := filepath.Join(t.TempDir(), "samples.jsonl")
	r := startExporter(t, ExporterOptions{Interval: 100 * time.Millisecond, SamplesPath: samples, JobID: "555"}, f.srv)
	r.scrape(t, `slurmtune_gpu_xid_events_total{gpu="2"`) // the watcher is registered
	f.events <- gonvml.EventData{Device: f.devs[2], EventType: gonvml.EventTypeXidCriticalError, EventData: 79}
	body := r.scrape(t, `slurmtune_gpu_xid_events_total{gpu="2",hostname="node1",job="123,890",mig_instance="",model="NVIDIA H100 80GB HBM3",uuid="`+f.devs[2].UUID+`"} 1`)
	for _, want := range []string{
		`slurmtune_nvml_up{hostname="node1"} 1`,
		`slurmtune_gpu_lost{gpu="6",hostname="node1",job="",mig_instance=""`,
		`slurmtune_gpu_power_watts{gpu="7",hostname="node1",job="555",`,
		`slurmtune_gpu_job_busy_seconds_total{hostname="node1",job="123"}`,
		`slurmtune_gpu_job_energy_joules_total{hostname="node1",job="555"}`,
		`slurmtune_gpu_job_memory_peak_bytes{hostname="node1",job="4567"} 1.073741824e+09`,
		"go_goroutines", "go_memstats_heap_inuse_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	checkPromtool(t, body)
	r.stop(t)

	if f.inits.Load() != 1 || f.shutdowns.Load() != 1 || f.frees.Load() != 1 {
		t.Errorf("init=%d shutdown=%d event-set frees=%d, want 1 each", f.inits.Load(), f.shutdowns.Load(), f.frees.Load())
	}
	fh, err := os.Open(samples)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	ss, err := LoadSamples(fh)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) < 16 || len(ss)%8 != 0 {
		t.Fatalf("%d samples, want whole collections of 8 GPUs", len(ss))
	}
	s0 := ss[0]
	if s0.Host != "node1" || s0.UUID != f.devs[0].UUID || s0.UtilPct == nil || *s0.UtilPct != 5 || s0.Job != "123" ||
		s0.PowerW == nil || *s0.PowerW != 100 || s0.EnergyJ == nil || *s0.EnergyJ != 1000 || len(s0.Throttle) != 1 {
		t.Errorf("first sample = %+v", s0)
	}
	rep := BuildReport(ss)
	if !rep.Telemetry || len(rep.GPUs) != 8 {
		t.Fatalf("report telemetry=%v gpus=%d", rep.Telemetry, len(rep.GPUs))
	}
	if !rep.GPUs[6].Lost || rep.GPUs[2].XIDEvents != 1 {
		t.Errorf("report gpu6 lost=%v gpu2 xid=%d", rep.GPUs[6].Lost, rep.GPUs[2].XIDEvents)
	}
}

func TestRunExporterSamplesOnly(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	samples := filepath.Join(t.TempDir(), "s.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunExporter(ctx, ExporterOptions{Interval: 100 * time.Millisecond, SamplesPath: samples, Hostname: "n", ProcFS: os.DirFS("testdata/proc"), Logger: slog.New(slog.DiscardHandler)}, f.srv)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(samples); bytes.Count(b, []byte("\n")) >= 16 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no samples written")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(samples)
	if !bytes.HasSuffix(b, []byte("}\n")) {
		t.Error("samples file not flushed to a whole line on stop")
	}
	if f.shutdowns.Load() != 1 {
		t.Error("NVML not shut down")
	}
}

func TestRunExporterErrors(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	if err := RunExporter(ctx, ExporterOptions{Interval: time.Millisecond, Logger: quiet}, noLibrary()); err == nil {
		t.Error("interval below the minimum accepted")
	}
	err := RunExporter(ctx, ExporterOptions{SamplesPath: filepath.Join(t.TempDir(), "no", "such", "dir", "s.jsonl"), Logger: quiet}, noLibrary())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad samples path: err = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := RunExporter(ctx, ExporterOptions{Listen: ln.Addr().String(), Logger: quiet}, noLibrary()); err == nil {
		t.Error("busy listen address accepted")
	}
}

// checkPromtool runs `promtool check metrics` on an exposition. Without
// promtool on PATH the check is skipped, unless SLURMTUNE_TEST_STRICT=1.
func checkPromtool(t *testing.T, exposition string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("SLURMTUNE_TEST_STRICT") == "1" {
			t.Fatal("promtool not on PATH and SLURMTUNE_TEST_STRICT=1 (apt-get install prometheus)")
		}
		t.Log("promtool not on PATH: exposition lint skipped")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestExporterClosesIdleConnections: a scraper's keep-alive connection that
// goes quiet is closed after IdleTimeout instead of being held forever.
func TestExporterClosesIdleConnections(t *testing.T) {
	r := startExporter(t, ExporterOptions{Interval: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond}, noLibrary())
	r.scrape(t, "slurmtune_nvml_up")
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(r.url, "/metrics"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Idle now: the server must hang up well before this deadline.
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("idle keep-alive connection still open after %v", time.Since(start))
	}
	if err != io.EOF {
		t.Errorf("read on idle connection: %v, want EOF", err)
	}
}
