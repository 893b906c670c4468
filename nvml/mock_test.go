package nvml

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const gib = 1 << 30

// telemetry is what one mock GPU reports; tests mutate it between polls.
type telemetry struct {
	util, memUtil uint32
	used          uint64
	powerMW       uint32
	energyMJ      uint64
	tempC         uint32
	smMHz         uint32
	eventReasons  uint64
	throttle      uint64
	ecc           uint64
	procs         []gonvml.ProcessInfo
	// fail makes the named reads return the given code instead.
	fail map[string]gonvml.Return
}

// fixture wires go-nvml's DGX mock server with the telemetry calls its
// devices leave nil, a mock XID event set and symbol lookup.
type fixture struct {
	srv    *server.Server
	devs   []*server.Device
	tel    []*telemetry
	events chan gonvml.EventData

	mu      sync.Mutex
	missing map[string]bool // symbols LookupSymbol reports missing

	frees, shutdowns, inits atomic.Int32
}

func newFixture(t testing.TB, srv *server.Server) *fixture {
	t.Helper()
	f := &fixture{srv: srv, events: make(chan gonvml.EventData, 16), missing: map[string]bool{}}
	procs := map[int][]gonvml.ProcessInfo{
		0: {{Pid: 1001, UsedGpuMemory: 2 * gib}},                                      // job 123
		1: {{Pid: 1002, UsedGpuMemory: 1 * gib}},                                      // job 4567
		2: {{Pid: 1001, UsedGpuMemory: gib / 2}, {Pid: 1003, UsedGpuMemory: 1 * gib}}, // jobs 123, 890
	}
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		tel := &telemetry{
			util: uint32(10*i + 5), memUtil: 20, used: uint64(i+1) * gib,
			powerMW: uint32(100_000 + 10_000*i), energyMJ: uint64(1_000_000 * (i + 1)),
			tempC: uint32(40 + i), smMHz: 1410,
			eventReasons: gonvml.ClocksEventReasonSwPowerCap, throttle: gonvml.ClocksThrottleReasonHwSlowdown,
			ecc: uint64(i), procs: procs[i], fail: map[string]gonvml.Return{},
		}
		f.devs = append(f.devs, dev)
		f.tel = append(f.tel, tel)
		wireDevice(dev, tel)
	}
	srv.LookupSymbolFunc = func(name string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.missing[name] {
			return errors.New("undefined symbol: " + name)
		}
		return nil
	}
	srv.InitFunc = func() gonvml.Return { f.inits.Add(1); return gonvml.SUCCESS }
	srv.ShutdownFunc = func() gonvml.Return { f.shutdowns.Add(1); return gonvml.SUCCESS }
	srv.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(ms uint32) (gonvml.EventData, gonvml.Return) {
				select {
				case e := <-f.events:
					return e, gonvml.SUCCESS
				case <-time.After(min(time.Duration(ms)*time.Millisecond, 20*time.Millisecond)):
					return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
				}
			},
			FreeFunc: func() gonvml.Return { f.frees.Add(1); return gonvml.SUCCESS },
		}, gonvml.SUCCESS
	}
	return f
}

func (f *fixture) setMissing(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		f.missing[n] = true
	}
}

func wireDevice(dev *server.Device, tel *telemetry) {
	failed := func(name string) (gonvml.Return, bool) {
		r, ok := tel.fail[name]
		return r, ok
	}
	dev.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) {
		if r, ok := failed("utilization"); ok {
			return gonvml.Utilization{}, r
		}
		return gonvml.Utilization{Gpu: tel.util, Memory: tel.memUtil}, gonvml.SUCCESS
	}
	dev.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
		if r, ok := failed("memory"); ok {
			return gonvml.Memory{}, r
		}
		total := dev.MemoryInfo.Total
		return gonvml.Memory{Total: total, Used: tel.used, Free: total - tel.used}, gonvml.SUCCESS
	}
	dev.GetPowerUsageFunc = func() (uint32, gonvml.Return) {
		if r, ok := failed("power"); ok {
			return 0, r
		}
		return tel.powerMW, gonvml.SUCCESS
	}
	dev.GetTotalEnergyConsumptionFunc = func() (uint64, gonvml.Return) {
		if r, ok := failed("energy"); ok {
			return 0, r
		}
		return tel.energyMJ, gonvml.SUCCESS
	}
	dev.GetTemperatureFunc = func(s gonvml.TemperatureSensors) (uint32, gonvml.Return) {
		if r, ok := failed("temperature"); ok {
			return 0, r
		}
		if s != gonvml.TEMPERATURE_GPU {
			return 0, gonvml.ERROR_INVALID_ARGUMENT
		}
		return tel.tempC, gonvml.SUCCESS
	}
	dev.GetClockInfoFunc = func(c gonvml.ClockType) (uint32, gonvml.Return) {
		if r, ok := failed("clock"); ok {
			return 0, r
		}
		if c != gonvml.CLOCK_SM {
			return 0, gonvml.ERROR_INVALID_ARGUMENT
		}
		return tel.smMHz, gonvml.SUCCESS
	}
	dev.GetCurrentClocksEventReasonsFunc = func() (uint64, gonvml.Return) {
		if r, ok := failed("event reasons"); ok {
			return 0, r
		}
		return tel.eventReasons, gonvml.SUCCESS
	}
	dev.GetCurrentClocksThrottleReasonsFunc = func() (uint64, gonvml.Return) {
		if r, ok := failed("throttle reasons"); ok {
			return 0, r
		}
		return tel.throttle, gonvml.SUCCESS
	}
	dev.GetTotalEccErrorsFunc = func(t gonvml.MemoryErrorType, c gonvml.EccCounterType) (uint64, gonvml.Return) {
		if r, ok := failed("ecc"); ok {
			return 0, r
		}
		if t != gonvml.MEMORY_ERROR_TYPE_UNCORRECTED || c != gonvml.VOLATILE_ECC {
			return 0, gonvml.ERROR_INVALID_ARGUMENT
		}
		return tel.ecc, gonvml.SUCCESS
	}
	dev.GetComputeRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) {
		if r, ok := failed("processes"); ok {
			return nil, r
		}
		return tel.procs, gonvml.SUCCESS
	}
	dev.RegisterEventsFunc = func(types uint64, _ gonvml.EventSet) gonvml.Return {
		if r, ok := failed("register events"); ok {
			return r
		}
		if types != gonvml.EventTypeXidCriticalError {
			return gonvml.ERROR_INVALID_ARGUMENT
		}
		return gonvml.SUCCESS
	}
}

// logBuffer is a concurrency-safe log sink for asserting on log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startPoller initialises the fixture's library and starts a poller the way
// RunExporter does, with /proc from testdata. The returned stop frees the
// event set and shuts NVML down.
func startPoller(t testing.TB, f *fixture, cfg pollerConfig) *poller {
	t.Helper()
	if cfg.ProcFS == nil {
		cfg.ProcFS = os.DirFS("testdata/proc")
	}
	if ret := f.srv.Init(); ret != gonvml.SUCCESS {
		t.Fatalf("Init: %v", ret)
	}
	p := newPoller(f.srv, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	stop := p.start(ctx)
	t.Cleanup(func() {
		cancel()
		stop()
		if ret := f.srv.Shutdown(); ret != gonvml.SUCCESS {
			t.Errorf("Shutdown: %v", ret)
		}
	})
	return p
}

// gather collects the GPU metrics of p through a fresh registry.
func gather(t testing.TB, p *poller) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newMetricsCollector(p, "node1"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}

// value returns the value of the series of family name whose labels include
// want.
func value(mfs []*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Untyped != nil:
				return m.GetUntyped().GetValue(), true
			}
		}
	}
	return 0, false
}

func gpuLabel(i string) map[string]string { return map[string]string{"gpu": i, "mig_instance": ""} }
