package nvml

import (
	"os"
	"testing"
)

func TestJobIDFromCgroup(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", ""},
		{"v1 slurm", "12:devices:/slurm/uid_0/job_123/step_0\n4:memory:/slurm/uid_0/job_123/step_0\n", "123"},
		{"v1 bare job dir", "3:cpuset:/job_42\n", "42"},
		{"v1 multiple slurmd", "5:freezer:/slurm_node7/uid_1000/job_9/step_extern/task_0\n", "9"},
		{"v2 slurmstepd scope", "0::/system.slice/slurmstepd.scope/job_4567/step_0/user/task_0\n", "4567"},
		{"first line without job, later with", "1:name=systemd:/user.slice\n0::/slurm/uid_5/job_8/step_0\n", "8"},
		{"not a slurm job", "0::/user.slice/user-1000.slice/session-2.scope\n", ""},
		{"job prefix but not numeric", "0::/kubepods/job_abc/step_0\n", ""},
		{"job_ as substring only", "0::/system.slice/myjob_12.service\n", ""},
		{"colon in path", "0::/weird:dir/job_5/step_0\n", "5"},
		{"malformed line", "garbage without colons\n", ""},
		{"no trailing newline", "0::/slurm/uid_0/job_77", "77"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := JobIDFromCgroup([]byte(tt.data)); got != tt.want {
				t.Errorf("JobIDFromCgroup(%q) = %q, want %q", tt.data, got, tt.want)
			}
		})
	}
}

func TestJobIDFromEnviron(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", ""},
		{"present", "PATH=/bin\x00SLURM_JOB_ID=123\x00HOME=/\x00", "123"},
		{"legacy only", "SLURM_JOBID=55\x00", "55"},
		{"current wins over legacy", "SLURM_JOBID=55\x00SLURM_JOB_ID=56\x00", "56"},
		{"no slurm", "PATH=/bin\x00HOME=/\x00", ""},
		{"prefix lookalike", "MY_SLURM_JOB_ID=1\x00SLURM_JOB_IDX=2\x00", ""},
		{"not numeric", "SLURM_JOB_ID=1;rm -rf\x00", ""},
		{"empty value", "SLURM_JOB_ID=\x00", ""},
		{"no trailing nul", "SLURM_JOB_ID=9", "9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := JobIDFromEnviron([]byte(tt.data)); got != tt.want {
				t.Errorf("JobIDFromEnviron(%q) = %q, want %q", tt.data, got, tt.want)
			}
		})
	}
}

func TestProcessJobID(t *testing.T) {
	procFS := os.DirFS("testdata/proc")
	tests := []struct {
		pid  uint32
		want string
	}{
		{1001, "123"},   // cgroup v1
		{1002, "4567"},  // cgroup v2
		{1003, "890"},   // not in a job cgroup, environ has SLURM_JOB_ID
		{1004, ""},      // neither
		{1005, "77"},    // cgroup wins over environ
		{1006, "31337"}, // no cgroup file, legacy SLURM_JOBID
		{4242, ""},      // process gone
	}
	for _, tt := range tests {
		if got := ProcessJobID(procFS, tt.pid); got != tt.want {
			t.Errorf("ProcessJobID(%d) = %q, want %q", tt.pid, got, tt.want)
		}
	}
}
