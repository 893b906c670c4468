package nvml

import (
	"log/slog"
	"sync"
	"time"
)

// optional is a value that may be absent (ERROR_NOT_SUPPORTED, a missing
// symbol, or a failed read). Absent values produce no series and no JSON key.
type optional[T any] struct {
	V  T
	OK bool
}

func some[T any](v T) optional[T] { return optional[T]{V: v, OK: true} }

// snapshot is the result of one collection. It is immutable once published:
// scrapes and the sample writer only read it.
type snapshot struct {
	Time     time.Time
	Duration time.Duration
	Up       bool   // NVML initialised and the devices enumerated
	Err      string // why Up is false
	Devices  []deviceStats
	Jobs     []jobStats
}

// deviceStats is one GPU, or one MIG device of a GPU, in a snapshot.
type deviceStats struct {
	Index int    // NVML index of the (parent) GPU
	UUID  string // GPU-... or MIG-...
	Model string
	MIG   string // "" for a full GPU, "gi<N>/ci<M>" for a MIG device
	Lost  bool   // ERROR_GPU_IS_LOST seen; no other values are set

	UtilGPU        optional[uint32] // percent
	UtilMem        optional[uint32] // percent
	MemUsed        optional[uint64] // bytes
	MemTotal       optional[uint64] // bytes
	PowerMW        optional[uint32]
	EnergyMJ       optional[uint64]
	TempC          optional[uint32]
	SMClockMHz     optional[uint32]
	ClockReasons   optional[uint64] // NVML clocks event reasons mask
	ECCUncorrected optional[uint64] // volatile
	XID            optional[uint64] // XID critical errors seen since start

	ProcsOK bool
	Procs   []process
	// Jobs are the distinct Slurm job ids attributed to the device, sorted;
	// JobLabel is them joined with ",". OwnJob is set when the attribution
	// came from the exporter's own SLURM_JOB_ID rather than from processes.
	Jobs     []string
	JobLabel string
	OwnJob   bool
}

// process is one running compute process on a device.
type process struct {
	PID        uint32
	UsedMemory uint64 // bytes; 0 when NVML does not report it
	Job        string
}

// jobStats are the per-job aggregates since the exporter started.
type jobStats struct {
	Job             string
	BusySeconds     float64 // integral of GPU utilization ratio over time
	EnergyJoules    float64
	MemoryPeakBytes uint64
}

// onceLogger logs each distinct key once, so a persistent per-metric failure
// does not flood the log at the collection interval.
type onceLogger struct {
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]struct{}
}

func newOnceLogger(log *slog.Logger) *onceLogger {
	return &onceLogger{log: log, seen: make(map[string]struct{})}
}

func (o *onceLogger) Warn(key, msg string, args ...any) {
	o.mu.Lock()
	_, dup := o.seen[key]
	if !dup {
		o.seen[key] = struct{}{}
	}
	o.mu.Unlock()
	if !dup {
		o.log.Warn(msg, args...)
	}
}
