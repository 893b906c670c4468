package nvml

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func TestPollFullTelemetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		srv   *server.Server
		model string
		total float64
	}{
		{"dgxa100", dgxa100.New(), "Mock NVIDIA A100-SXM4-40GB", 40 * gib},
		{"dgxh100", dgxh100.New(), "NVIDIA H100 80GB HBM3", 80 * gib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.srv)
			var logs logBuffer
			p := startPoller(t, f, pollerConfig{Logger: logs.logger()})
			s := p.Poll(context.Background())
			if !s.Up || len(s.Devices) != 8 {
				t.Fatalf("snapshot up=%v devices=%d err=%q", s.Up, len(s.Devices), s.Err)
			}
			mfs := gather(t, p)
			uuid3 := f.devs[3].UUID
			checks := []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"slurmtune_nvml_up", nil, 1},
				{"slurmtune_gpu_lost", gpuLabel("3"), 0},
				{"slurmtune_gpu_utilization_ratio", map[string]string{"gpu": "3", "uuid": uuid3, "hostname": "node1"}, 0.35},
				{"slurmtune_gpu_memory_utilization_ratio", gpuLabel("3"), 0.20},
				{"slurmtune_gpu_memory_used_bytes", gpuLabel("3"), 4 * gib},
				{"slurmtune_gpu_memory_total_bytes", gpuLabel("3"), tc.total},
				{"slurmtune_gpu_power_watts", gpuLabel("3"), 130},
				{"slurmtune_gpu_energy_joules_total", gpuLabel("3"), 4000},
				{"slurmtune_gpu_temperature_celsius", gpuLabel("3"), 43},
				{"slurmtune_gpu_sm_clock_hertz", gpuLabel("3"), 1410e6},
				{"slurmtune_gpu_clock_event_reasons", map[string]string{"gpu": "3", "reason": "sw_power_cap"}, 1},
				{"slurmtune_gpu_clock_event_reasons", map[string]string{"gpu": "3", "reason": "hw_slowdown"}, 0},
				{"slurmtune_gpu_ecc_volatile_uncorrected_errors_total", gpuLabel("3"), 3},
				{"slurmtune_gpu_xid_events_total", gpuLabel("3"), 0},
				{"slurmtune_gpu_processes", gpuLabel("2"), 2},
				{"slurmtune_gpu_processes_memory_used_bytes", gpuLabel("2"), 1.5 * gib},
				{"slurmtune_gpu_processes", gpuLabel("3"), 0},
				// Job attribution from testdata/proc: pid 1001 cgroup job_123,
				// 1002 cgroup v2 job_4567, 1003 environ SLURM_JOB_ID=890.
				{"slurmtune_gpu_utilization_ratio", map[string]string{"gpu": "0", "job": "123", "model": tc.model}, 0.05},
				{"slurmtune_gpu_utilization_ratio", map[string]string{"gpu": "1", "job": "4567"}, 0.15},
				{"slurmtune_gpu_utilization_ratio", map[string]string{"gpu": "2", "job": "123,890"}, 0.25},
				{"slurmtune_gpu_utilization_ratio", map[string]string{"gpu": "3", "job": ""}, 0.35},
				{"slurmtune_gpu_job_memory_peak_bytes", map[string]string{"job": "123"}, 2.5 * gib},
				{"slurmtune_gpu_job_memory_peak_bytes", map[string]string{"job": "890"}, 1 * gib},
			}
			for _, c := range checks {
				got, ok := value(mfs, c.name, c.labels)
				if !ok {
					t.Errorf("%s%v: series missing", c.name, c.labels)
					continue
				}
				if diff := got - c.want; diff > 1e-9 || diff < -1e-9 {
					t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
				}
			}
			if strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("unexpected warnings:\n%s", logs.String())
			}
		})
	}
}

func TestPollXIDEvents(t *testing.T) {
	f := newFixture(t, dgxh100.New())
	p := startPoller(t, f, pollerConfig{})
	if p.xid == nil {
		t.Fatal("XID watcher not started")
	}
	f.events <- gonvml.EventData{Device: f.devs[2], EventType: gonvml.EventTypeXidCriticalError, EventData: 79}
	f.events <- gonvml.EventData{Device: f.devs[2], EventType: gonvml.EventTypeXidCriticalError, EventData: 48}
	f.events <- gonvml.EventData{Device: f.devs[5], EventType: gonvml.EventTypeXidCriticalError, EventData: 13}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n2, _ := p.xid.Count(2)
		n5, _ := p.xid.Count(5)
		if n2 == 2 && n5 == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("XID counts gpu2=%d gpu5=%d, want 2 and 1", n2, n5)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Poll(context.Background())
	mfs := gather(t, p)
	for gpu, want := range map[string]float64{"0": 0, "2": 2, "5": 1, "7": 0} {
		if got, ok := value(mfs, "slurmtune_gpu_xid_events_total", gpuLabel(gpu)); !ok || got != want {
			t.Errorf("xid_events_total{gpu=%s} = %v (present %v), want %v", gpu, got, ok, want)
		}
	}
}

func TestXIDWatcherStopFreesEventSet(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	if ret := f.srv.Init(); ret != gonvml.SUCCESS {
		t.Fatalf("Init: %v", ret)
	}
	p := newPoller(f.srv, pollerConfig{})
	stop := p.start(context.Background())
	stop()
	stop() // idempotent
	if got := f.frees.Load(); got != 1 {
		t.Errorf("event set freed %d times, want 1", got)
	}
}

func TestPollXIDNotSupportedOnSomeGPUs(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	f.tel[4].fail["register events"] = gonvml.ERROR_NOT_SUPPORTED
	p := startPoller(t, f, pollerConfig{})
	p.Poll(context.Background())
	mfs := gather(t, p)
	if _, ok := value(mfs, "slurmtune_gpu_xid_events_total", gpuLabel("4")); ok {
		t.Error("xid_events_total present for a GPU without XID event support")
	}
	if _, ok := value(mfs, "slurmtune_gpu_xid_events_total", gpuLabel("3")); !ok {
		t.Error("xid_events_total missing for a supported GPU")
	}
}

func TestPollLostGPU(t *testing.T) {
	f := newFixture(t, dgxh100.New())
	var logs logBuffer
	p := startPoller(t, f, pollerConfig{Logger: logs.logger()})
	p.Poll(context.Background())

	// GPU 3 falls off the bus after start; GPU 5's handle cannot be had.
	f.tel[3].fail["utilization"] = gonvml.ERROR_GPU_IS_LOST
	f.tel[3].fail["power"] = gonvml.ERROR_GPU_IS_LOST
	p.handles[5] = nil
	f.srv.DeviceGetHandleByIndexFunc = func(i int) (gonvml.Device, gonvml.Return) {
		if i == 5 {
			return nil, gonvml.ERROR_GPU_IS_LOST
		}
		return f.srv.Devices[i], gonvml.SUCCESS
	}
	powerCalls := len(f.devs[3].GetPowerUsageCalls())
	s := p.Poll(context.Background())
	if !s.Up || len(s.Devices) != 8 {
		t.Fatalf("up=%v devices=%d, want up with 8 devices", s.Up, len(s.Devices))
	}
	if n := len(f.devs[3].GetPowerUsageCalls()); n != powerCalls {
		t.Errorf("lost GPU was queried further (%d power calls after the loss)", n-powerCalls)
	}
	mfs := gather(t, p)
	for gpu, want := range map[string]float64{"0": 0, "3": 1, "4": 0, "5": 1} {
		if got, ok := value(mfs, "slurmtune_gpu_lost", gpuLabel(gpu)); !ok || got != want {
			t.Errorf("gpu_lost{gpu=%s} = %v (present %v), want %v", gpu, got, ok, want)
		}
	}
	// The lost GPUs keep their identity labels from earlier polls...
	if _, ok := value(mfs, "slurmtune_gpu_lost", map[string]string{"gpu": "5", "uuid": f.devs[5].UUID}); !ok {
		t.Error("lost GPU 5 lost its uuid label")
	}
	// ...and report nothing else, while the others are unaffected.
	for _, name := range []string{"slurmtune_gpu_utilization_ratio", "slurmtune_gpu_memory_used_bytes", "slurmtune_gpu_temperature_celsius"} {
		for _, gpu := range []string{"3", "5"} {
			if _, ok := value(mfs, name, gpuLabel(gpu)); ok {
				t.Errorf("%s present for lost GPU %s", name, gpu)
			}
		}
		if _, ok := value(mfs, name, gpuLabel("4")); !ok {
			t.Errorf("%s missing for healthy GPU 4", name)
		}
	}
	if n := strings.Count(logs.String(), "GPU is lost"); n != 2 {
		t.Errorf("logged %d lost-GPU lines, want 2 (one per GPU):\n%s", n, logs.String())
	}
	p.Poll(context.Background())
	if n := strings.Count(logs.String(), "GPU is lost"); n != 2 {
		t.Errorf("lost-GPU line repeated on the next poll (%d lines)", n)
	}
}

func TestPollNotSupported(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	for _, m := range []string{"power", "energy", "temperature", "ecc", "event reasons", "processes", "utilization"} {
		f.tel[1].fail[m] = gonvml.ERROR_NOT_SUPPORTED
	}
	f.tel[6].fail["clock"] = gonvml.ERROR_UNKNOWN // an unexpected error: absent and logged once
	var logs logBuffer
	p := startPoller(t, f, pollerConfig{Logger: logs.logger()})
	p.Poll(context.Background())
	p.Poll(context.Background())
	mfs := gather(t, p)
	for _, name := range []string{
		"slurmtune_gpu_power_watts", "slurmtune_gpu_energy_joules_total", "slurmtune_gpu_temperature_celsius",
		"slurmtune_gpu_ecc_volatile_uncorrected_errors_total", "slurmtune_gpu_clock_event_reasons",
		"slurmtune_gpu_processes", "slurmtune_gpu_utilization_ratio",
	} {
		if _, ok := value(mfs, name, gpuLabel("1")); ok {
			t.Errorf("%s present for GPU 1 where NVML returns NOT_SUPPORTED", name)
		}
		if _, ok := value(mfs, name, gpuLabel("0")); !ok {
			t.Errorf("%s missing for GPU 0", name)
		}
	}
	for _, gpu := range []string{"1", "6"} {
		if v, ok := value(mfs, "slurmtune_gpu_lost", gpuLabel(gpu)); !ok || v != 0 {
			t.Errorf("GPU %s: lost=%v present=%v, want 0", gpu, v, ok)
		}
	}
	if _, ok := value(mfs, "slurmtune_gpu_memory_used_bytes", gpuLabel("1")); !ok {
		t.Error("supported metric missing on a GPU with unsupported ones")
	}
	if _, ok := value(mfs, "slurmtune_gpu_sm_clock_hertz", gpuLabel("6")); ok {
		t.Error("sm clock present although NVML failed")
	}
	log := logs.String()
	if strings.Contains(log, "gpu=1 ") {
		t.Errorf("NOT_SUPPORTED was logged:\n%s", log)
	}
	if n := strings.Count(log, "read sm clock: ERROR_UNKNOWN"); n != 1 {
		t.Errorf("unexpected error logged %d times over two polls, want once:\n%s", n, log)
	}
}

func TestPollMissingSymbols(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	f.setMissing("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetTotalEnergyConsumption")
	for _, d := range f.devs {
		d.GetCurrentClocksEventReasonsFunc = func() (uint64, gonvml.Return) {
			t.Error("GetCurrentClocksEventReasons called although the symbol is missing")
			return 0, gonvml.ERROR_FUNCTION_NOT_FOUND
		}
		d.GetTotalEnergyConsumptionFunc = func() (uint64, gonvml.Return) {
			t.Error("GetTotalEnergyConsumption called although the symbol is missing")
			return 0, gonvml.ERROR_FUNCTION_NOT_FOUND
		}
	}
	p := startPoller(t, f, pollerConfig{})
	p.Poll(context.Background())
	mfs := gather(t, p)
	// Fell back to the throttle-reasons call (HwSlowdown in the fixture).
	if v, ok := value(mfs, "slurmtune_gpu_clock_event_reasons", map[string]string{"gpu": "0", "reason": "hw_slowdown"}); !ok || v != 1 {
		t.Errorf("throttle fallback: hw_slowdown = %v (present %v), want 1", v, ok)
	}
	if v, _ := value(mfs, "slurmtune_gpu_clock_event_reasons", map[string]string{"gpu": "0", "reason": "sw_power_cap"}); v != 0 {
		t.Errorf("sw_power_cap = %v, want 0 (event reasons must not be read)", v)
	}
	if _, ok := value(mfs, "slurmtune_gpu_energy_joules_total", gpuLabel("0")); ok {
		t.Error("energy present although nvmlDeviceGetTotalEnergyConsumption is missing")
	}
	if _, ok := value(mfs, "slurmtune_gpu_power_watts", gpuLabel("0")); !ok {
		t.Error("power missing")
	}
}

func TestPollEventReasonsFunctionNotFoundFallsBack(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	f.tel[0].fail["event reasons"] = gonvml.ERROR_FUNCTION_NOT_FOUND
	f.setMissing("nvmlDeviceGetCurrentClocksThrottleReasons") // both gone on GPU 7 below
	f.tel[7].fail["event reasons"] = gonvml.ERROR_FUNCTION_NOT_FOUND
	p := startPoller(t, f, pollerConfig{})
	p.Poll(context.Background())
	mfs := gather(t, p)
	if _, ok := value(mfs, "slurmtune_gpu_clock_event_reasons", gpuLabel("0")); ok {
		t.Error("reasons present although neither call is available")
	}
	if v, ok := value(mfs, "slurmtune_gpu_clock_event_reasons", map[string]string{"gpu": "1", "reason": "sw_power_cap"}); !ok || v != 1 {
		t.Error("other GPUs lost their event reasons")
	}
}

func TestPollMIG(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	parent := f.devs[0]
	if ret, _ := parent.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	migs := []*mock.Device{newMIGDevice(1, 0, 5*gib, 1002), newMIGDevice(2, 0, 10*gib, 1003)}
	parent.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) { return 7, gonvml.SUCCESS }
	parent.GetMigDeviceHandleByIndexFunc = func(j int) (gonvml.Device, gonvml.Return) {
		switch j {
		case 0, 3:
			return migs[min(j, 1)], gonvml.SUCCESS
		default:
			return nil, gonvml.ERROR_NOT_FOUND
		}
	}
	p := startPoller(t, f, pollerConfig{})
	s := p.Poll(context.Background())
	if len(s.Devices) != 10 {
		t.Fatalf("got %d devices, want 8 GPUs + 2 MIG devices", len(s.Devices))
	}
	mfs := gather(t, p)
	mig1 := map[string]string{"gpu": "0", "mig_instance": "gi1/ci0", "uuid": "MIG-1-0", "model": "NVIDIA A100-SXM4-40GB MIG 1g.5gb", "job": "4567"}
	if v, ok := value(mfs, "slurmtune_gpu_memory_used_bytes", mig1); !ok || v != 5*gib {
		t.Errorf("MIG memory used = %v (present %v), want 5 GiB", v, ok)
	}
	if v, ok := value(mfs, "slurmtune_gpu_processes", mig1); !ok || v != 1 {
		t.Errorf("MIG processes = %v (present %v), want 1", v, ok)
	}
	// Utilization is NOT_SUPPORTED on MIG devices: absent, not 0.
	if _, ok := value(mfs, "slurmtune_gpu_utilization_ratio", map[string]string{"mig_instance": "gi1/ci0"}); ok {
		t.Error("utilization present on a MIG device")
	}
	if _, ok := value(mfs, "slurmtune_gpu_memory_used_bytes", map[string]string{"gpu": "0", "mig_instance": "gi2/ci0", "job": "890"}); !ok {
		t.Error("second MIG device missing")
	}
	// The parent carries its own telemetry and its MIG devices' jobs.
	if _, ok := value(mfs, "slurmtune_gpu_power_watts", map[string]string{"gpu": "0", "mig_instance": "", "job": "123,4567,890"}); !ok {
		t.Error("parent GPU power missing or without its MIG devices' jobs")
	}
	if got := len(s.Devices[0].Jobs); got != 3 {
		t.Errorf("parent jobs = %v", s.Devices[0].Jobs)
	}
}

// newMIGDevice is a MIG device handle as NVML presents it: identity,
// memory and processes, no utilization.
func newMIGDevice(gi, ci int, used uint64, pid uint32) *mock.Device {
	return &mock.Device{
		GetUUIDFunc: func() (string, gonvml.Return) { return fmt.Sprintf("MIG-%d-%d", gi, ci), gonvml.SUCCESS },
		GetNameFunc: func() (string, gonvml.Return) {
			return "NVIDIA A100-SXM4-40GB MIG 1g.5gb", gonvml.SUCCESS
		},
		GetGpuInstanceIdFunc:     func() (int, gonvml.Return) { return gi, gonvml.SUCCESS },
		GetComputeInstanceIdFunc: func() (int, gonvml.Return) { return ci, gonvml.SUCCESS },
		GetUtilizationRatesFunc: func() (gonvml.Utilization, gonvml.Return) {
			return gonvml.Utilization{}, gonvml.ERROR_NOT_SUPPORTED
		},
		GetMemoryInfoFunc: func() (gonvml.Memory, gonvml.Return) {
			return gonvml.Memory{Total: 5 * gib, Used: used}, gonvml.SUCCESS
		},
		GetComputeRunningProcessesFunc: func() ([]gonvml.ProcessInfo, gonvml.Return) {
			return []gonvml.ProcessInfo{{Pid: pid, UsedGpuMemory: used, GpuInstanceId: uint32(gi)}}, gonvml.SUCCESS
		},
	}
}

func TestPollMIGSymbolsMissing(t *testing.T) {
	f := newFixture(t, dgxa100.New())
	if ret, _ := f.devs[0].SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	f.setMissing("nvmlDeviceGetMigDeviceHandleByIndex")
	f.devs[0].GetMigModeFunc = func() (int, int, gonvml.Return) {
		t.Error("GetMigMode called on a driver without MIG symbols")
		return 0, 0, gonvml.ERROR_FUNCTION_NOT_FOUND
	}
	p := startPoller(t, f, pollerConfig{})
	if s := p.Poll(context.Background()); len(s.Devices) != 8 {
		t.Errorf("devices = %d, want 8", len(s.Devices))
	}
}

func TestPollOwnJobFallback(t *testing.T) {
	f := newFixture(t, dgxh100.New())
	p := startPoller(t, f, pollerConfig{OwnJob: "555"})
	s := p.Poll(context.Background())
	got := map[int]string{}
	for _, d := range s.Devices {
		got[d.Index] = d.JobLabel
	}
	want := map[int]string{0: "123", 1: "4567", 2: "123,890", 3: "555", 7: "555"}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("gpu %d job = %q, want %q", i, got[i], w)
		}
	}
}

func TestJobAccounting(t *testing.T) {
	f := newFixture(t, dgxh100.New())
	now := time.Unix(1_700_000_000, 0)
	p := startPoller(t, f, pollerConfig{Now: func() time.Time { return now }, JobRetention: time.Minute})
	p.Poll(context.Background())
	// One second later: GPU 0 (job 123 alone) used 250 J by its counter;
	// GPU 2 (jobs 123 and 890) has no energy counter, 120 W for 1 s.
	now = now.Add(time.Second)
	f.tel[0].energyMJ += 250_000
	f.tel[0].procs = []gonvml.ProcessInfo{{Pid: 1001, UsedGpuMemory: 3 * gib}}
	f.tel[2].fail["energy"] = gonvml.ERROR_NOT_SUPPORTED
	s := p.Poll(context.Background())
	jobs := map[string]jobStats{}
	for _, j := range s.Jobs {
		jobs[j.Job] = j
	}
	if !slices.Equal(slices.Sorted(maps.Keys(jobs)), []string{"123", "4567", "890"}) {
		t.Fatalf("jobs = %v", s.Jobs)
	}
	approx := func(name string, got, want float64) {
		t.Helper()
		if d := got - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// busy: GPU0 5% * 1s + GPU2 25% * 1s / 2
	approx("busy 123", jobs["123"].BusySeconds, 0.05+0.125)
	approx("busy 890", jobs["890"].BusySeconds, 0.125)
	// energy: GPU0 250 J + GPU2 120 W * 1 s / 2
	approx("energy 123", jobs["123"].EnergyJoules, 250+60)
	approx("energy 890", jobs["890"].EnergyJoules, 60)
	if got := jobs["123"].MemoryPeakBytes; got != 3*gib+gib/2 {
		t.Errorf("peak 123 = %v, want 3.5 GiB", got)
	}
	// Jobs that are gone are kept for the retention period, then dropped.
	for _, tel := range f.tel {
		tel.procs = nil
	}
	now = now.Add(30 * time.Second)
	if s := p.Poll(context.Background()); len(s.Jobs) != 3 {
		t.Errorf("jobs dropped before retention: %v", s.Jobs)
	}
	now = now.Add(2 * time.Minute)
	if s := p.Poll(context.Background()); len(s.Jobs) != 0 {
		t.Errorf("jobs kept after retention: %v", s.Jobs)
	}
}
