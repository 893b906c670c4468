// Package nvml is slurmtune's GPU telemetry: a Prometheus exporter and a
// JSON-lines sample writer fed by NVML; the report over samples, computed
// by one running aggregate (Agg) whether over a set of samples
// (BuildReport) or kept per stage and GPU in the database; and a run's
// telemetry: reading its samples files by byte offset (State, persisted by
// the store), attributing each line to a stage, GPU-hour accounting from
// Slurm accounting or the pipeline, and what `slurmtune gpu` and `status`
// show (run.go).
//
// The NVML library is always injected as a go-nvml Interface
// (github.com/NVIDIA/go-nvml/pkg/nvml), never reached through go-nvml's
// package-level functions, so the whole package runs against go-nvml's mock
// servers in tests. Collection runs on its own interval and publishes an
// immutable snapshot; Prometheus scrapes only read the latest one, so a scrape
// never waits on NVML.
//
// Failure model (k8s-device-plugin / node_exporter style):
//   - NVML missing or failing Init: one log line, slurmtune_nvml_up 0, the
//     exporter keeps serving and never calls NVML again.
//   - ERROR_NOT_SUPPORTED (or a symbol the driver lacks): that metric is
//     absent for that device; nothing else changes.
//   - ERROR_GPU_IS_LOST: that device is reported with slurmtune_gpu_lost 1;
//     the other devices are unaffected.
//   - Any other per-metric error is logged once and the metric is absent.
//
// Exposition (own registry; hostname is a label of every series; per-GPU
// series also carry gpu, uuid, model, mig_instance and job):
//
//	slurmtune_nvml_up                                   1/0
//	slurmtune_nvml_collection_duration_seconds          last collection
//	slurmtune_nvml_last_collection_timestamp_seconds    staleness check
//	slurmtune_gpu_lost                                  1/0
//	slurmtune_gpu_utilization_ratio                     0-1
//	slurmtune_gpu_memory_utilization_ratio              0-1
//	slurmtune_gpu_memory_used_bytes, _memory_total_bytes
//	slurmtune_gpu_power_watts
//	slurmtune_gpu_energy_joules_total
//	slurmtune_gpu_temperature_celsius
//	slurmtune_gpu_sm_clock_hertz
//	slurmtune_gpu_clock_event_reasons{reason}           0/1 per documented reason
//	slurmtune_gpu_ecc_volatile_uncorrected_errors_total
//	slurmtune_gpu_xid_events_total
//	slurmtune_gpu_processes, _processes_memory_used_bytes
//	slurmtune_gpu_job_busy_seconds_total{job}           compact per-job aggregates,
//	slurmtune_gpu_job_energy_joules_total{job}          kept 15 min after the job
//	slurmtune_gpu_job_memory_peak_bytes{job}            was last seen
//
// plus the exporter's go_* runtime metrics.
//
// Slurm job attribution comes from the running compute processes'
// /proc/PID/cgroup (slurm cgroup paths) or /proc/PID/environ (SLURM_JOB_ID),
// falling back to the exporter's own SLURM_JOB_ID when it runs inside a job.
// The /proc parsing is pure and works on an fs.FS.
package nvml
