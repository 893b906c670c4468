package nvml

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metricsCollector is a prometheus.Collector that turns the poller's latest
// snapshot into const metrics. It never touches NVML, so a scrape costs the
// same whatever the GPUs are doing (and scrapeGatherer calls it once per
// snapshot, not once per scrape).
type metricsCollector struct {
	p    *poller
	log  *onceLogger
	up   *prometheus.Desc
	dur  *prometheus.Desc
	last *prometheus.Desc

	lost, util, memUtil, memUsed, memTotal, power, energy, temp, smClock *prometheus.Desc
	reasons, ecc, xid, procs, procMem                                    *prometheus.Desc

	jobBusy, jobEnergy, jobMem *prometheus.Desc
}

// newMetricsCollector describes every series. hostname is a constant label
// of all of them. Per-GPU series carry gpu (NVML index of the GPU), uuid,
// model, mig_instance ("" for a full GPU, "gi<N>/ci<M>" for a MIG device)
// and job (the Slurm job ids attributed to the device joined with ",", ""
// when none).
func newMetricsCollector(p *poller, host string) *metricsCollector {
	cl := prometheus.Labels{"hostname": host}
	gpu := func(name, help string, extra ...string) *prometheus.Desc {
		labels := append([]string{"gpu", "uuid", "model", "mig_instance", "job"}, extra...)
		return prometheus.NewDesc("slurmtune_gpu_"+name, help, labels, cl)
	}
	job := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("slurmtune_gpu_job_"+name, help, []string{"job"}, cl)
	}
	return &metricsCollector{
		p:    p,
		log:  p.log,
		up:   prometheus.NewDesc("slurmtune_nvml_up", "1 when NVML is initialised and the GPUs were enumerated by the last collection, else 0.", nil, cl),
		dur:  prometheus.NewDesc("slurmtune_nvml_collection_duration_seconds", "Duration of the last NVML collection.", nil, cl),
		last: prometheus.NewDesc("slurmtune_nvml_last_collection_timestamp_seconds", "Unix time of the last NVML collection; scrapes read this snapshot.", nil, cl),

		lost:     gpu("lost", "1 when NVML reports the GPU lost (ERROR_GPU_IS_LOST), else 0."),
		util:     gpu("utilization_ratio", "Fraction of the last sample period a kernel ran on the GPU (0-1)."),
		memUtil:  gpu("memory_utilization_ratio", "Fraction of the last sample period device memory was read or written (0-1)."),
		memUsed:  gpu("memory_used_bytes", "Device memory in use."),
		memTotal: gpu("memory_total_bytes", "Total device memory."),
		power:    gpu("power_watts", "Power draw."),
		energy:   gpu("energy_joules_total", "Energy consumed since the driver was loaded."),
		temp:     gpu("temperature_celsius", "GPU core temperature."),
		smClock:  gpu("sm_clock_hertz", "Current SM clock."),
		reasons:  gpu("clock_event_reasons", "1 when the clock event (throttle) reason is active, else 0.", "reason"),
		ecc:      gpu("ecc_volatile_uncorrected_errors_total", "Uncorrected ECC errors since the driver was loaded (volatile counter)."),
		xid:      gpu("xid_events_total", "XID critical error events seen since the exporter started."),
		procs:    gpu("processes", "Running compute processes."),
		procMem:  gpu("processes_memory_used_bytes", "Device memory used by the running compute processes, as reported by NVML."),

		jobBusy:   job("busy_seconds_total", "GPU-busy seconds of the job on this host: utilization ratio integrated over time, summed over its GPUs."),
		jobEnergy: job("energy_joules_total", "GPU energy attributed to the job on this host (shared GPUs split evenly between jobs)."),
		jobMem:    job("memory_peak_bytes", "Peak GPU memory used by the job's processes on this host."),
	}
}

func (c *metricsCollector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.up, c.dur, c.last, c.lost, c.util, c.memUtil, c.memUsed, c.memTotal,
		c.power, c.energy, c.temp, c.smClock, c.reasons, c.ecc, c.xid, c.procs, c.procMem,
		c.jobBusy, c.jobEnergy, c.jobMem}
}

// Describe implements prometheus.Collector.
func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it emits the latest snapshot.
func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.build(c.p.current(), nil) {
		ch <- m
	}
}

func (c *metricsCollector) build(s *snapshot, out []prometheus.Metric) []prometheus.Metric {
	out = c.emit(out, c.up, prometheus.GaugeValue, b2f(s.Up))
	if !s.Up {
		return out
	}
	out = c.emit(out, c.dur, prometheus.GaugeValue, s.Duration.Seconds())
	out = c.emit(out, c.last, prometheus.GaugeValue, float64(s.Time.UnixNano())/1e9)
	for i := range s.Devices {
		out = c.buildDevice(out, &s.Devices[i])
	}
	for _, j := range s.Jobs {
		out = c.emit(out, c.jobBusy, prometheus.CounterValue, j.BusySeconds, j.Job)
		out = c.emit(out, c.jobEnergy, prometheus.CounterValue, j.EnergyJoules, j.Job)
		out = c.emit(out, c.jobMem, prometheus.GaugeValue, float64(j.MemoryPeakBytes), j.Job)
	}
	return out
}

func (c *metricsCollector) buildDevice(out []prometheus.Metric, d *deviceStats) []prometheus.Metric {
	lv := []string{strconv.Itoa(d.Index), d.UUID, d.Model, d.MIG, d.JobLabel}
	gauge := func(desc *prometheus.Desc, v float64) { out = c.emit(out, desc, prometheus.GaugeValue, v, lv...) }
	counter := func(desc *prometheus.Desc, v float64) { out = c.emit(out, desc, prometheus.CounterValue, v, lv...) }
	gauge(c.lost, b2f(d.Lost))
	if d.Lost {
		return out
	}
	if d.UtilGPU.OK {
		gauge(c.util, float64(d.UtilGPU.V)/100)
	}
	if d.UtilMem.OK {
		gauge(c.memUtil, float64(d.UtilMem.V)/100)
	}
	if d.MemUsed.OK {
		gauge(c.memUsed, float64(d.MemUsed.V))
	}
	if d.MemTotal.OK {
		gauge(c.memTotal, float64(d.MemTotal.V))
	}
	if d.PowerMW.OK {
		gauge(c.power, float64(d.PowerMW.V)/1000)
	}
	if d.EnergyMJ.OK {
		counter(c.energy, float64(d.EnergyMJ.V)/1000)
	}
	if d.TempC.OK {
		gauge(c.temp, float64(d.TempC.V))
	}
	if d.SMClockMHz.OK {
		gauge(c.smClock, float64(d.SMClockMHz.V)*1e6)
	}
	if d.ClockReasons.OK {
		rlv := append(lv[:len(lv):len(lv)], "")
		for _, r := range clockReasons {
			rlv[len(rlv)-1] = r.name
			out = c.emit(out, c.reasons, prometheus.GaugeValue, b2f(d.ClockReasons.V&r.bit != 0), rlv...)
		}
	}
	if d.ECCUncorrected.OK {
		counter(c.ecc, float64(d.ECCUncorrected.V))
	}
	if d.XID.OK {
		counter(c.xid, float64(d.XID.V))
	}
	if d.ProcsOK {
		var mem uint64
		for _, p := range d.Procs {
			mem += p.UsedMemory
		}
		gauge(c.procs, float64(len(d.Procs)))
		gauge(c.procMem, float64(mem))
	}
	return out
}

// emit appends one const metric. A metric that cannot be built (say, a
// label value NVML returned that is not valid UTF-8) is dropped and logged
// once; it never fails the scrape.
func (c *metricsCollector) emit(out []prometheus.Metric, desc *prometheus.Desc, typ prometheus.ValueType, v float64, lv ...string) []prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, typ, v, lv...)
	if err != nil {
		c.log.Warn("metric/"+desc.String(), "dropping invalid metric", "err", err)
		return out
	}
	return append(out, m)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
