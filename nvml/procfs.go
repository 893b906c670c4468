package nvml

import (
	"bytes"
	"io/fs"
	"strconv"
)

// JobIDFromCgroup returns the Slurm job id found in the contents of a
// /proc/PID/cgroup file, or "" when the process is not in a Slurm job cgroup.
//
// Each line is "hierarchy-ID:controllers:path" (cgroup v1) or "0::path"
// (v2). Slurm's cgroup plugins put job steps under a path component
// "job_<id>", e.g. "/slurm/uid_1000/job_123/step_0/task_0" (v1) or
// "/system.slice/slurmstepd.scope/job_123/step_0/user/task_0" (v2). The first
// such component wins.
func JobIDFromCgroup(data []byte) string {
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		// Skip "hierarchy-ID:" and "controllers:"; the path may itself contain ':'.
		_, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		_, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok {
			continue
		}
		for comp := range bytes.SplitSeq(path, []byte{'/'}) {
			if id, ok := bytes.CutPrefix(comp, []byte("job_")); ok && validJobID(id) {
				return string(id)
			}
		}
	}
	return ""
}

// JobIDFromEnviron returns SLURM_JOB_ID (or the legacy SLURM_JOBID) from the
// NUL-separated contents of a /proc/PID/environ file, or "" when absent or
// not a numeric job id.
func JobIDFromEnviron(data []byte) string {
	var legacy string
	for kv := range bytes.SplitSeq(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("SLURM_JOB_ID=")); ok && validJobID(v) {
			return string(v)
		}
		if v, ok := bytes.CutPrefix(kv, []byte("SLURM_JOBID=")); ok && validJobID(v) && legacy == "" {
			legacy = string(v)
		}
	}
	return legacy
}

// ProcessJobID returns the Slurm job id of process pid, reading
// "<pid>/cgroup" and then "<pid>/environ" from procFS (a file system rooted at
// /proc, e.g. os.DirFS("/proc")). It returns "" when neither attributes the
// process to a job or the files cannot be read (the process exited, or its
// environ is not readable by the exporter's user).
func ProcessJobID(procFS fs.FS, pid uint32) string {
	dir := strconv.FormatUint(uint64(pid), 10)
	if data, err := fs.ReadFile(procFS, dir+"/cgroup"); err == nil {
		if id := JobIDFromCgroup(data); id != "" {
			return id
		}
	}
	if data, err := fs.ReadFile(procFS, dir+"/environ"); err == nil {
		return JobIDFromEnviron(data)
	}
	return ""
}

// validJobID reports whether b looks like a Slurm job id: 1 to 20 ASCII
// digits. Anything else is rejected so it never reaches a label value.
func validJobID(b []byte) bool {
	if len(b) == 0 || len(b) > 20 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
