package nvml

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// symbols records which optional NVML entry points the loaded driver has.
// Older drivers lack some of them; calling a missing one through go-nvml
// would fail (or worse), so they are looked up once after Init.
type symbols struct {
	clockEventReasons    bool // nvmlDeviceGetCurrentClocksEventReasons (r535+)
	clockThrottleReasons bool // deprecated predecessor, may vanish in future drivers
	totalEnergy          bool // nvmlDeviceGetTotalEnergyConsumption (Volta+)
	mig                  bool // nvmlDeviceGetMigMode and nvmlDeviceGetMigDeviceHandleByIndex
	events               bool // nvmlEventSetCreate
}

// probeSymbols looks up the optional symbols. Only call it after a
// successful Init.
func probeSymbols(lib gonvml.Interface) symbols {
	ext := lib.Extensions()
	has := func(name string) bool {
		if ext == nil {
			return true // cannot tell: assume present, calls still degrade per metric
		}
		return ext.LookupSymbol(name) == nil
	}
	return symbols{
		clockEventReasons:    has("nvmlDeviceGetCurrentClocksEventReasons"),
		clockThrottleReasons: has("nvmlDeviceGetCurrentClocksThrottleReasons"),
		totalEnergy:          has("nvmlDeviceGetTotalEnergyConsumption"),
		mig:                  has("nvmlDeviceGetMigMode") && has("nvmlDeviceGetMigDeviceHandleByIndex"),
		events:               has("nvmlEventSetCreate"),
	}
}

// poller reads NVML into snapshots. Poll is called from a single goroutine;
// current may be called from any goroutine.
type poller struct {
	lib    gonvml.Interface
	log    *onceLogger
	procFS fs.FS
	ownJob string
	now    func() time.Time
	syms   symbols

	handles []gonvml.Device   // by index; nil until obtained
	ident   map[int][2]string // index -> {uuid, model}, cached
	pidJobs map[uint32]string // pid -> job id, for pids seen last poll
	xid     *xidWatcher       // nil when XID events are unavailable
	jobs    *jobAccounting    // per-job aggregates

	mu   sync.RWMutex
	snap *snapshot
}

type pollerConfig struct {
	Logger       *slog.Logger
	ProcFS       fs.FS  // rooted at /proc; nil disables process attribution
	OwnJob       string // the exporter's own SLURM_JOB_ID
	JobRetention time.Duration
	Now          func() time.Time
}

func newPoller(lib gonvml.Interface, cfg pollerConfig) *poller {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.JobRetention <= 0 {
		cfg.JobRetention = 15 * time.Minute
	}
	return &poller{
		lib:     lib,
		log:     newOnceLogger(cfg.Logger),
		procFS:  cfg.ProcFS,
		ownJob:  cfg.OwnJob,
		now:     cfg.Now,
		ident:   make(map[int][2]string),
		pidJobs: make(map[uint32]string),
		jobs:    newJobAccounting(cfg.JobRetention),
		snap:    &snapshot{Err: "no collection yet"},
	}
}

// current returns the latest published snapshot.
func (p *poller) current() *snapshot {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.snap
}

func (p *poller) publish(s *snapshot) {
	p.mu.Lock()
	p.snap = s
	p.mu.Unlock()
}

// markDown publishes a snapshot with Up false, e.g. after a failed Init.
func (p *poller) markDown(err error) {
	p.publish(&snapshot{Time: p.now(), Err: err.Error()})
}

// start prepares an initialised library for polling: it looks up optional
// symbols, obtains the device handles and, when supported, starts the XID
// event watcher. Call it only after a successful Init; stop with the
// returned function before Shutdown.
func (p *poller) start(ctx context.Context) (stop func()) {
	p.syms = probeSymbols(p.lib)
	n, ret := p.lib.DeviceGetCount()
	if ret != gonvml.SUCCESS {
		p.log.Warn("count", "NVML device count failed", "err", ret)
		return func() {}
	}
	p.handles = make([]gonvml.Device, n)
	for i := range n {
		// Only caches the handles: one that fails stays nil, and every
		// Poll retries it and reports the failure per device.
		_, _ = p.handle(i)
	}
	driver, _ := p.lib.SystemGetDriverVersion()
	p.log.log.Info("NVML initialised", "gpus", n, "driver", driver,
		"clock_event_reasons", p.syms.clockEventReasons, "total_energy", p.syms.totalEnergy, "mig", p.syms.mig)
	if !p.syms.events {
		p.log.Warn("xid-symbol", "NVML event sets unavailable in this driver; XID counting disabled")
		return func() {}
	}
	w, err := startXIDWatcher(ctx, p.lib, p.handles, p.log)
	if err != nil {
		p.log.Warn("xid-start", "XID event watcher not started", "err", err)
		return func() {}
	}
	p.xid = w
	return w.Stop
}

// handle returns the cached device handle for index i, fetching it when
// missing. It returns the NVML status of the fetch.
func (p *poller) handle(i int) (gonvml.Device, gonvml.Return) {
	if i < len(p.handles) && p.handles[i] != nil {
		return p.handles[i], gonvml.SUCCESS
	}
	h, ret := p.lib.DeviceGetHandleByIndex(i)
	if ret != gonvml.SUCCESS {
		return nil, ret
	}
	if i < len(p.handles) {
		p.handles[i] = h
	}
	return h, gonvml.SUCCESS
}

// Poll collects one snapshot from NVML and publishes it. One failing metric
// or device never fails the poll; only a failing device count marks the
// snapshot down.
func (p *poller) Poll(ctx context.Context) *snapshot {
	start := p.now()
	s := &snapshot{Time: start}
	n, ret := p.lib.DeviceGetCount()
	if ret != gonvml.SUCCESS {
		p.log.Warn("count", "NVML device count failed", "err", ret)
		s.Err = fmt.Sprintf("device count: %v", ret)
		s.Duration = p.now().Sub(start)
		p.publish(s)
		return s
	}
	if n > len(p.handles) {
		p.handles = append(p.handles, make([]gonvml.Device, n-len(p.handles))...)
	}
	s.Up = true
	seen := make(map[uint32]string, len(p.pidJobs))
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		s.Devices = p.collectGPU(i, s.Devices, seen)
	}
	p.pidJobs = seen
	p.attributeAll(s.Devices)
	s.Jobs = p.jobs.update(start, s.Devices)
	s.Duration = p.now().Sub(start)
	p.publish(s)
	return s
}

// collectGPU appends the stats of GPU i and, when MIG is enabled, of its
// MIG devices to devs.
func (p *poller) collectGPU(i int, devs []deviceStats, seen map[uint32]string) []deviceStats {
	d := deviceStats{Index: i}
	id, cached := p.ident[i]
	d.UUID, d.Model = id[0], id[1]
	key := fmt.Sprintf("gpu%d", i)
	h, ret := p.handle(i)
	if ret != gonvml.SUCCESS {
		p.check(key, &d, "handle", ret)
		if !d.Lost {
			return devs // unknown failure, already logged: skip the device
		}
		return append(devs, d)
	}
	if !cached {
		if v, ret := h.GetUUID(); p.check(key, &d, "uuid", ret) {
			d.UUID = labelSafe(v)
		}
		if v, ret := h.GetName(); p.check(key, &d, "name", ret) {
			d.Model = labelSafe(v)
		}
		if d.UUID != "" && d.Model != "" {
			p.ident[i] = [2]string{d.UUID, d.Model}
		}
	}
	p.readGPU(key, h, &d, seen)
	if p.xid != nil && !d.Lost {
		if v, ok := p.xid.Count(i); ok {
			d.XID = some(v)
		}
	}
	devs = append(devs, d)
	if d.Lost || !p.syms.mig {
		return devs
	}
	mode, _, ret := h.GetMigMode()
	if !p.check(key, &d, "mig mode", ret) || mode != gonvml.DEVICE_MIG_ENABLE {
		return devs
	}
	return p.collectMIG(key, i, h, d.Model, devs, seen)
}

// readGPU reads the full-GPU metrics into d. It stops at the first
// ERROR_GPU_IS_LOST.
func (p *poller) readGPU(key string, h gonvml.Device, d *deviceStats, seen map[uint32]string) {
	if u, ret := h.GetUtilizationRates(); p.check(key, d, "utilization", ret) {
		d.UtilGPU, d.UtilMem = some(u.Gpu), some(u.Memory)
	}
	if d.Lost {
		return
	}
	if m, ret := h.GetMemoryInfo(); p.check(key, d, "memory", ret) {
		d.MemUsed, d.MemTotal = some(m.Used), some(m.Total)
	}
	if d.Lost {
		return
	}
	if v, ret := h.GetPowerUsage(); p.check(key, d, "power", ret) {
		d.PowerMW = some(v)
	}
	if d.Lost {
		return
	}
	if p.syms.totalEnergy {
		if v, ret := h.GetTotalEnergyConsumption(); p.check(key, d, "energy", ret) {
			d.EnergyMJ = some(v)
		}
		if d.Lost {
			return
		}
	}
	if v, ret := h.GetTemperature(gonvml.TEMPERATURE_GPU); p.check(key, d, "temperature", ret) {
		d.TempC = some(v)
	}
	if d.Lost {
		return
	}
	if v, ret := h.GetClockInfo(gonvml.CLOCK_SM); p.check(key, d, "sm clock", ret) {
		d.SMClockMHz = some(v)
	}
	if d.Lost {
		return
	}
	p.readClockReasons(key, h, d)
	if d.Lost {
		return
	}
	if v, ret := h.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC); p.check(key, d, "ecc", ret) {
		d.ECCUncorrected = some(v)
	}
	if d.Lost {
		return
	}
	p.readProcesses(key, h, d, seen)
}

// readClockReasons prefers nvmlDeviceGetCurrentClocksEventReasons and falls
// back to the deprecated throttle-reasons call on drivers that lack it.
func (p *poller) readClockReasons(key string, h gonvml.Device, d *deviceStats) {
	if p.syms.clockEventReasons {
		v, ret := h.GetCurrentClocksEventReasons()
		if ret != gonvml.ERROR_FUNCTION_NOT_FOUND {
			if p.check(key, d, "clock event reasons", ret) {
				d.ClockReasons = some(v)
			}
			return
		}
	}
	if p.syms.clockThrottleReasons {
		if v, ret := h.GetCurrentClocksThrottleReasons(); p.check(key, d, "clock throttle reasons", ret) {
			d.ClockReasons = some(v)
		}
	}
}

func (p *poller) readProcesses(key string, h gonvml.Device, d *deviceStats, seen map[uint32]string) {
	procs, ret := h.GetComputeRunningProcesses()
	if !p.check(key, d, "processes", ret) {
		return
	}
	d.ProcsOK = true
	d.Procs = make([]process, 0, len(procs))
	for _, pr := range procs {
		mem := pr.UsedGpuMemory
		if mem == ^uint64(0) { // NVML_VALUE_NOT_AVAILABLE (e.g. Windows WDDM, some MIG setups)
			mem = 0
		}
		d.Procs = append(d.Procs, process{PID: pr.Pid, UsedMemory: mem, Job: p.pidJob(pr.Pid, seen)})
	}
}

// pidJob returns the job of pid, reading /proc only for pids not seen in the
// previous poll.
func (p *poller) pidJob(pid uint32, seen map[uint32]string) string {
	if job, ok := seen[pid]; ok {
		return job
	}
	job, ok := p.pidJobs[pid]
	if !ok && p.procFS != nil {
		job = ProcessJobID(p.procFS, pid)
	}
	seen[pid] = job
	return job
}

// collectMIG appends the MIG devices of GPU i. MIG devices report what NVML
// supports on MIG handles (memory, processes; utilization is usually
// ERROR_NOT_SUPPORTED); power, energy, clocks, temperature and ECC stay on
// the parent GPU.
func (p *poller) collectMIG(key string, i int, h gonvml.Device, model string, devs []deviceStats, seen map[uint32]string) []deviceStats {
	var parent deviceStats
	n, ret := h.GetMaxMigDeviceCount()
	if !p.check(key, &parent, "mig device count", ret) {
		return devs
	}
	for j := range n {
		mh, ret := h.GetMigDeviceHandleByIndex(j)
		if ret == gonvml.ERROR_NOT_FOUND || ret == gonvml.ERROR_INVALID_ARGUMENT {
			continue // no MIG device in this slot
		}
		mkey := fmt.Sprintf("%s/mig%d", key, j)
		m := deviceStats{Index: i, Model: model, MIG: fmt.Sprintf("slot%d", j)}
		if !p.check(mkey, &m, "mig handle", ret) {
			if m.Lost {
				devs = append(devs, m)
			}
			continue
		}
		if v, ret := mh.GetUUID(); p.check(mkey, &m, "uuid", ret) {
			m.UUID = labelSafe(v)
		}
		if v, ret := mh.GetName(); p.check(mkey, &m, "name", ret) {
			m.Model = labelSafe(v)
		}
		gi, ret1 := mh.GetGpuInstanceId()
		ci, ret2 := mh.GetComputeInstanceId()
		if p.check(mkey, &m, "gpu instance id", ret1) && p.check(mkey, &m, "compute instance id", ret2) {
			m.MIG = fmt.Sprintf("gi%d/ci%d", gi, ci)
		}
		if !m.Lost {
			if u, ret := mh.GetUtilizationRates(); p.check(mkey, &m, "utilization", ret) {
				m.UtilGPU, m.UtilMem = some(u.Gpu), some(u.Memory)
			}
		}
		if !m.Lost {
			if mem, ret := mh.GetMemoryInfo(); p.check(mkey, &m, "memory", ret) {
				m.MemUsed, m.MemTotal = some(mem.Used), some(mem.Total)
			}
		}
		if !m.Lost {
			p.readProcesses(mkey, mh, &m, seen)
		}
		devs = append(devs, m)
	}
	return devs
}

// check reports whether ret is SUCCESS. ERROR_NOT_SUPPORTED and
// ERROR_FUNCTION_NOT_FOUND mean "metric absent" and are silent;
// ERROR_GPU_IS_LOST marks d lost; anything else is logged once per device
// and metric.
func (p *poller) check(key string, d *deviceStats, metric string, ret gonvml.Return) bool {
	switch ret {
	case gonvml.SUCCESS:
		return true
	case gonvml.ERROR_NOT_SUPPORTED, gonvml.ERROR_FUNCTION_NOT_FOUND:
		return false
	case gonvml.ERROR_GPU_IS_LOST:
		d.Lost = true
		p.log.Warn(key+"/lost", "GPU is lost; reporting slurmtune_gpu_lost 1 until the GPU is reset",
			"gpu", d.Index, "uuid", d.UUID, "mig", d.MIG)
		return false
	default:
		p.log.Warn(key+"/"+metric, "NVML read failed; metric absent", "gpu", d.Index, "mig", d.MIG,
			"err", fmt.Errorf("read %s: %w", metric, ret))
		return false
	}
}

// attributeAll sets the Slurm job ids of every device from its processes.
// A MIG-enabled GPU also carries the jobs of its MIG devices (its power and
// energy are shared by them). Devices without attributable processes fall
// back to the exporter's own job.
func (p *poller) attributeAll(devs []deviceStats) {
	parent := -1
	for i := range devs {
		d := &devs[i]
		for _, pr := range d.Procs {
			if pr.Job != "" && !slices.Contains(d.Jobs, pr.Job) {
				d.Jobs = append(d.Jobs, pr.Job)
			}
		}
		if d.MIG == "" {
			parent = i
			continue
		}
		if parent >= 0 && devs[parent].Index == d.Index {
			for _, j := range d.Jobs {
				if !slices.Contains(devs[parent].Jobs, j) {
					devs[parent].Jobs = append(devs[parent].Jobs, j)
				}
			}
		}
	}
	for i := range devs {
		d := &devs[i]
		if len(d.Jobs) == 0 && p.ownJob != "" && !d.Lost {
			d.Jobs, d.OwnJob = []string{p.ownJob}, true
		}
		slices.Sort(d.Jobs)
		d.JobLabel = strings.Join(d.Jobs, ",")
	}
}

// labelSafe makes a string from the driver usable as a label value and in
// JSON: valid UTF-8, no NULs or surrounding blanks.
func labelSafe(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	return strings.TrimSpace(s)
}
