package cmdline

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseSqueue(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []slurm.Job
		wantErr string
	}{
		{name: "empty", out: "", want: nil},
		{name: "blank lines only", out: "\n  \n", want: nil},
		{name: "running", out: "3|RUNNING|None|st-node[1-2]|0:06|2026-11-26T23:16:31|0|0|st-gloo-check|(null)\n", want: []slurm.Job{{
			ID: "3", State: slurm.StateRunning, Nodes: "st-node[1-2]", Elapsed: 6 * time.Second,
			Start: at("2026-11-26T23:16:31"), Name: "st-gloo-check", Source: "squeue",
		}}},
		{name: "pending on a dependency, requeued twice", out: "4|PENDING|Dependency||0:00|N/A|2|0|st-tiny-eval|slurmtune:tiny-20261126-231500-3fa9:eval\n", want: []slurm.Job{{
			ID: "4", State: slurm.StatePending, Reason: "Dependency", Restarts: 2, Name: "st-tiny-eval",
			Comment: "slurmtune:tiny-20261126-231500-3fa9:eval", Source: "squeue",
		}}},
		{name: "several, long elapsed, comment holding the separator", out: "" +
			"10|COMPLETING|None|st-node1|1-02:03:04|2026-11-25T21:13:27|0|0|st-tiny-train|slurmtune:r1:train\n" +
			"11|CANCELLED|None|None assigned|INVALID|Unknown|0|15|job with spaces|a|b|c\n" +
			"12|CD|None|(null)|5:00|2026-11-26T23:16:31|0|0|x|\n", want: []slurm.Job{
			{ID: "10", State: slurm.StateCompleting, Nodes: "st-node1", Elapsed: 26*time.Hour + 3*time.Minute + 4*time.Second,
				Start: at("2026-11-25T21:13:27"), Name: "st-tiny-train", Comment: "slurmtune:r1:train", Source: "squeue"},
			{ID: "11", State: slurm.StateCancelled, Signal: 15, Name: "job with spaces", Comment: "a|b|c", Source: "squeue"},
			{ID: "12", State: slurm.StateCompleted, Elapsed: 5 * time.Minute, Start: at("2026-11-26T23:16:31"), Name: "x", Source: "squeue"},
		}},
		// squeue's exit_code is the raw wait status (Slurm 22.05) or CODE:SIGNAL;
		// only an ended job has one.
		{name: "exit codes of ended jobs", out: "" +
			"7|FAILED|NonZeroExitCode|st-node2|0:03|2026-11-26T23:17:00|0|768|st-tiny-train|slurmtune:r1:train\n" +
			"8|CANCELLED|None|st-node1|0:10|2026-11-26T23:17:00|0|9|st-tiny-eval|slurmtune:r1:eval\n" +
			"9|FAILED|NonZeroExitCode|st-node1|0:10|2026-11-26T23:17:00|0|2:0|p|c\n" +
			"10|RUNNING|None|st-node1|0:10|2026-11-26T23:17:00|0|256|r|c\n",
			want: []slurm.Job{
				{ID: "7", State: slurm.StateFailed, Reason: "NonZeroExitCode", ExitCode: 3, Nodes: "st-node2", Elapsed: 3 * time.Second,
					Start: at("2026-11-26T23:17:00"), Name: "st-tiny-train", Comment: "slurmtune:r1:train", Source: "squeue"},
				{ID: "8", State: slurm.StateCancelled, Signal: 9, Nodes: "st-node1", Elapsed: 10 * time.Second,
					Start: at("2026-11-26T23:17:00"), Name: "st-tiny-eval", Comment: "slurmtune:r1:eval", Source: "squeue"},
				{ID: "9", State: slurm.StateFailed, Reason: "NonZeroExitCode", ExitCode: 2, Nodes: "st-node1", Elapsed: 10 * time.Second,
					Start: at("2026-11-26T23:17:00"), Name: "p", Comment: "c", Source: "squeue"},
				{ID: "10", State: slurm.StateRunning, Nodes: "st-node1", Elapsed: 10 * time.Second,
					Start: at("2026-11-26T23:17:00"), Name: "r", Comment: "c", Source: "squeue"},
			}},
		{name: "padded id and restart count", out: "  5 |RUNNING|None|n1|0:01|2026-11-26T23:16:31| 1 |0|j|c\n", want: []slurm.Job{{
			ID: "5", State: slurm.StateRunning, Nodes: "n1", Elapsed: time.Second, Start: at("2026-11-26T23:16:31"), Restarts: 1, Name: "j", Comment: "c", Source: "squeue",
		}}},
		{name: "too few fields", out: "3|RUNNING|None|st-node1|0:06|2026-11-26T23:16:31|0|st-gloo-check|(null)\n", wantErr: "squeue output line 1: want 10 fields, got 9"},
		{name: "error names the line", out: "3|RUNNING|None|n|0:06|N/A|0|0|x|c\n\nnot squeue output\n", wantErr: "squeue output line 3: want 10 fields, got 1"},
		{name: "empty id", out: " |RUNNING|None|n|0:06|N/A|0|0|x|c\n", wantErr: "squeue output line 1: empty job id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSqueue([]byte(tt.out))
			checkParse(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func checkParse(t *testing.T, got []slurm.Job, err error, want []slurm.Job, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || err.Error() != wantErr {
			t.Fatalf("err = %v, want %s", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseSacct(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []slurm.Job
		wantErr string
	}{
		{name: "empty", out: "", want: nil},
		{name: "completed", out: "3|COMPLETED|0:0|None|st-node[1-2]|7|2026-11-26T23:16:31|2026-11-26T23:16:38|st-gloo-check|slurmtune:r1:train\n", want: []slurm.Job{{
			ID: "3", State: slurm.StateCompleted, Nodes: "st-node[1-2]", Elapsed: 7 * time.Second,
			Start: at("2026-11-26T23:16:31"), End: at("2026-11-26T23:16:38"), Name: "st-gloo-check", Comment: "slurmtune:r1:train", Source: "sacct",
		}}},
		{name: "failures", out: "" +
			"7|FAILED|1:0|NonZeroExitCode|st-node2|3|2026-11-26T23:17:00|2026-11-26T23:17:03|st-tiny-train|slurmtune:r1:train\n" +
			"8|CANCELLED by 1000|0:15|None|None assigned|0|Unknown|2026-11-26T23:20:00|st-tiny-eval|slurmtune:r1:eval\n" +
			"9|OUT_OF_MEMORY|0:125|OutOfMemory|st-node1|61|2026-11-26T23:21:00|2026-11-26T23:22:01|st-tiny-prep|(null)\n" +
			"10|TIMEOUT|0:0|TimeLimit|st-node1|600|2026-11-26T23:21:00|2026-11-26T23:31:00|t|\n" +
			"11|RUNNING|0:0|None|st-node1|42|2026-11-26T23:21:00|Unknown|r|slurmtune:r2:train\n",
			want: []slurm.Job{
				{ID: "7", State: slurm.StateFailed, ExitCode: 1, Reason: "NonZeroExitCode", Nodes: "st-node2", Elapsed: 3 * time.Second,
					Start: at("2026-11-26T23:17:00"), End: at("2026-11-26T23:17:03"), Name: "st-tiny-train", Comment: "slurmtune:r1:train", Source: "sacct"},
				{ID: "8", State: slurm.StateCancelled, Signal: 15, End: at("2026-11-26T23:20:00"), Name: "st-tiny-eval", Comment: "slurmtune:r1:eval", Source: "sacct"},
				{ID: "9", State: slurm.StateOutOfMemory, Signal: 125, Reason: "OutOfMemory", Nodes: "st-node1", Elapsed: 61 * time.Second,
					Start: at("2026-11-26T23:21:00"), End: at("2026-11-26T23:22:01"), Name: "st-tiny-prep", Source: "sacct"},
				{ID: "10", State: slurm.StateTimeout, Reason: "TimeLimit", Nodes: "st-node1", Elapsed: 10 * time.Minute,
					Start: at("2026-11-26T23:21:00"), End: at("2026-11-26T23:31:00"), Name: "t", Source: "sacct"},
				{ID: "11", State: slurm.StateRunning, Nodes: "st-node1", Elapsed: 42 * time.Second, Start: at("2026-11-26T23:21:00"),
					Name: "r", Comment: "slurmtune:r2:train", Source: "sacct"},
			}},
		{name: "requeued twice: the last record is current", out: "" +
			"5|NODE_FAIL|0:0|None|st-node1|12|2026-11-26T23:00:00|2026-11-26T23:00:12|st-tiny-train|slurmtune:r1:train\n" +
			"6|COMPLETED|0:0|None|st-node2|1|2026-11-26T23:00:00|2026-11-26T23:00:01|other|\n" +
			"5|REQUEUED|0:0|None|st-node2|5|2026-11-26T23:01:00|2026-11-26T23:01:05|st-tiny-train|slurmtune:r1:train\n" +
			"5|RUNNING|0:0|None|st-node[1-2]|30|2026-11-26T23:02:00|Unknown|st-tiny-train|slurmtune:r1:train\n",
			want: []slurm.Job{
				{ID: "5", State: slurm.StateRunning, Restarts: 2, Nodes: "st-node[1-2]", Elapsed: 30 * time.Second,
					Start: at("2026-11-26T23:02:00"), Name: "st-tiny-train", Comment: "slurmtune:r1:train", Source: "sacct"},
				{ID: "6", State: slurm.StateCompleted, Nodes: "st-node2", Elapsed: time.Second,
					Start: at("2026-11-26T23:00:00"), End: at("2026-11-26T23:00:01"), Name: "other", Source: "sacct"},
			}},
		{name: "steps and het components are skipped", out: "" +
			"12|COMPLETED|0:0|None|n1|1|2026-11-26T23:00:00|2026-11-26T23:00:01|j|c\n" +
			"12.batch|COMPLETED|0:0||n1|1|2026-11-26T23:00:00|2026-11-26T23:00:01|batch|\n" +
			"12.0|FAILED|1:0||n1|1|2026-11-26T23:00:00|2026-11-26T23:00:01|python3|\n" +
			"13+0|RUNNING|0:0||n1|1|2026-11-26T23:00:00|Unknown|het|\n",
			want: []slurm.Job{{ID: "12", State: slurm.StateCompleted, Nodes: "n1", Elapsed: time.Second,
				Start: at("2026-11-26T23:00:00"), End: at("2026-11-26T23:00:01"), Name: "j", Comment: "c", Source: "sacct"}}},
		{name: "comment holding the separator", out: "14|PENDING|0:0|Dependency|None assigned|0|Unknown|Unknown|j|a|b\n",
			want: []slurm.Job{{ID: "14", State: slurm.StatePending, Reason: "Dependency", Name: "j", Comment: "a|b", Source: "sacct"}}},
		{name: "too few fields", out: "3|COMPLETED|0:0|None|n|7|x|y|z\n", wantErr: "sacct output line 1: want 10 fields, got 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSacct([]byte(tt.out))
			checkParse(t, got, err, tt.want, tt.wantErr)
		})
	}
}

const scontrolCompleted = "JobId=3 JobName=st-gloo-check UserId=slurm(64030) GroupId=slurm(64030) MCS_label=N/A Priority=1 Nice=0 Account=(null) QOS=(null) " +
	"JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:07 TimeLimit=UNLIMITED TimeMin=N/A " +
	"SubmitTime=2026-11-26T23:16:30 EligibleTime=2026-11-26T23:16:30 AccrueTime=2026-11-26T23:16:30 StartTime=2026-11-26T23:16:31 EndTime=2026-11-26T23:16:38 " +
	"Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T23:16:31 Scheduler=Main Partition=debug AllocNode:Sid=login:1234 " +
	"ReqNodeList=(null) ExcNodeList=(null) NodeList=st-node[1-2] BatchHost=st-node1 NumNodes=2 NumCPUs=2 NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:* " +
	"ReqTRES=cpu=2,mem=1G,node=2,billing=2 AllocTRES=cpu=2,mem=1G,node=2,billing=2 Socks/Node=* NtasksPerN:B:S:C=1:0:*:* CoreSpec=* " +
	"MinCPUsNode=1 MinMemoryNode=512M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) " +
	"Command=/scratch/runs/r1/train.sbatch WorkDir=/scratch/runs/r1 Comment=slurmtune:r1:train StdErr=/scratch/runs/r1/logs/train.log " +
	"StdIn=/dev/null StdOut=/scratch/runs/r1/logs/train.log Power="

const scontrolRunning = "JobId=21 JobName=st-tiny-train UserId=alice(1000) GroupId=alice(1000) JobState=RUNNING Reason=None Dependency=(null) " +
	"Requeue=1 Restarts=1 BatchFlag=1 ExitCode=0:0 RunTime=1-02:03:04 TimeLimit=2-00:00:00 StartTime=2026-11-25T21:13:27 EndTime=2026-11-27T21:13:27 " +
	"Partition=debug NodeList=st-node1 NumNodes=1 Command=/scratch/my runs/r2/train.sbatch WorkDir=/scratch/my runs/r2 Comment=slurmtune:r2:train Power="

const scontrolPending = "JobId=22 JobName=st-tiny-eval JobState=PENDING Reason=Dependency Dependency=afterok:21(unfulfilled) Restarts=0 ExitCode=0:0 " +
	"RunTime=00:00:00 StartTime=Unknown EndTime=Unknown NodeList=(null) Comment=(null)"

const scontrolFailed = "JobId=23 JobName=st-tiny-prep JobState=FAILED Reason=launch failed requeued held Dependency=(null) Restarts=3 ExitCode=1:9 " +
	"RunTime=00:01:00 StartTime=2026-11-26T10:00:00 EndTime=2026-11-26T10:01:00 NodeList=st-node2 Comment=my own comment StdOut=/x"

func TestParseScontrolJobs(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []slurm.Job
		wantErr string
	}{
		{name: "no jobs", out: "No jobs in the system\n", want: nil},
		{name: "completed", out: scontrolCompleted + "\n", want: []slurm.Job{{
			ID: "3", Name: "st-gloo-check", State: slurm.StateCompleted, Nodes: "st-node[1-2]", Comment: "slurmtune:r1:train",
			Elapsed: 7 * time.Second, Start: at("2026-11-26T23:16:31"), End: at("2026-11-26T23:16:38"), Source: "scontrol",
		}}},
		{name: "running, pending and failed", out: scontrolRunning + "\n" + scontrolPending + "\n\n" + scontrolFailed, want: []slurm.Job{
			// A running job's EndTime is its time limit, not an end.
			{ID: "21", Name: "st-tiny-train", State: slurm.StateRunning, Restarts: 1, Nodes: "st-node1", Comment: "slurmtune:r2:train",
				Elapsed: 26*time.Hour + 3*time.Minute + 4*time.Second, Start: at("2026-11-25T21:13:27"), Source: "scontrol"},
			{ID: "22", Name: "st-tiny-eval", State: slurm.StatePending, Reason: "Dependency", Source: "scontrol"},
			// Values may hold spaces.
			{ID: "23", Name: "st-tiny-prep", State: slurm.StateFailed, Reason: "launch failed requeued held", Restarts: 3, ExitCode: 1, Signal: 9,
				Nodes: "st-node2", Comment: "my own comment", Elapsed: time.Minute, Start: at("2026-11-26T10:00:00"), End: at("2026-11-26T10:01:00"), Source: "scontrol"},
		}},
		{name: "cancelled by a user", out: "JobId=24 JobName=x JobState=CANCELLED Reason=None ExitCode=0:15 StartTime=None EndTime=2026-11-26T10:01:00 Comment=c\n", want: []slurm.Job{
			{ID: "24", Name: "x", State: slurm.StateCancelled, Signal: 15, Comment: "c", End: at("2026-11-26T10:01:00"), Source: "scontrol"},
		}},
		{name: "no JobId", out: scontrolCompleted + "\nJobName=x JobState=RUNNING\n", wantErr: "scontrol output line 2: no JobId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScontrolJobs([]byte(tt.out))
			checkParse(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func TestParseKeyValues(t *testing.T) {
	tests := []struct {
		line string
		want map[string]string
	}{
		{"A=1 B=two words C=", map[string]string{"A": "1", "B": "two words", "C": ""}},
		{"AllocNode:Sid=login:1 CPUs/Task=2 ReqTRES=cpu=2,mem=1G", map[string]string{"AllocNode:Sid": "login:1", "CPUs/Task": "2", "ReqTRES": "cpu=2,mem=1G"}},
		// A lowercase "key" is part of the value before it.
		{"Comment=a b=c D=d", map[string]string{"Comment": "a b=c", "D": "d"}},
		{"orphan A=1 =x", map[string]string{"A": "1 =x"}},
		{"", map[string]string{}},
	}
	for _, tt := range tests {
		if got := ParseKeyValues(tt.line); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseKeyValues(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestParsePartitions(t *testing.T) {
	out := "PartitionName=debug AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A DefaultTime=NONE " +
		"DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=0 LLN=NO " +
		"MaxCPUsPerNode=UNLIMITED Nodes=st-node[1-2] PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO " +
		"OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=4 TotalNodes=2 SelectTypeParameters=NONE JobDefaults=(null) " +
		"DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED\n" +
		"PartitionName=gpu Default=NO MaxTime=2-00:00:00 State=DOWN TotalNodes=8\n" +
		"PartitionName=short MaxTime=30:00 State=UP TotalNodes=1\n" +
		"PartitionName=inf MaxTime=INFINITE State=DRAIN TotalNodes=0\n"
	got, err := ParsePartitions([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []slurm.Partition{
		{Name: "debug", State: "UP", Default: true, TotalNodes: 2},
		{Name: "gpu", State: "DOWN", MaxTime: 48 * time.Hour, TotalNodes: 8},
		{Name: "short", State: "UP", MaxTime: 30 * time.Minute, TotalNodes: 1},
		{Name: "inf", State: "DRAIN"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for in, wantErr := range map[string]string{
		"State=UP TotalNodes=1\n":            "scontrol partition line 1: no PartitionName",
		"PartitionName=p MaxTime=soon\n":     `partition p: MaxTime: bad duration "soon"`,
		"PartitionName=p MaxTime=1:2:3:4\n":  `partition p: MaxTime: bad duration "1:2:3:4"`,
		"\nPartitionName=a\nMaxTime=5 x=y\n": "scontrol partition line 3: no PartitionName",
	} {
		if _, err := ParsePartitions([]byte(in)); err == nil || err.Error() != wantErr {
			t.Errorf("ParsePartitions(%q): err = %v, want %s", in, err, wantErr)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "5", want: 5 * time.Minute},
		{in: "0:06", want: 6 * time.Second},
		{in: "05:30", want: 5*time.Minute + 30*time.Second},
		{in: "01:02:03", want: time.Hour + 2*time.Minute + 3*time.Second},
		{in: "00:00:00", want: 0},
		{in: " 1:00 ", want: time.Minute},
		{in: "2-00:00:00", want: 48 * time.Hour},
		{in: "1-02:03:04", want: 26*time.Hour + 3*time.Minute + 4*time.Second},
		{in: "1-12", want: 36 * time.Hour},
		{in: "1-12:30", want: 36*time.Hour + 30*time.Minute},
		// An explicit zero day count still means D-HH[:MM].
		{in: "0-05", want: 5 * time.Hour},
		{in: "0-01:30", want: 90 * time.Minute},
		{in: "", err: true},
		{in: "INVALID", err: true},
		{in: "N/A", err: true},
		{in: "UNLIMITED", err: true},
		{in: "1:2:3:4", err: true},
		{in: "-1", err: true},
		{in: "1-", err: true},
		{in: "x-1", err: true},
		{in: "1:-2", err: true},
		{in: "1.5", err: true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSbatchParsable(t *testing.T) {
	tests := []struct {
		out, want, wantErr string
	}{
		{out: "1234\n", want: "1234"},
		{out: "  1234  ", want: "1234"},
		{out: "1234;cluster-a\n", want: "1234"},
		{out: "", wantErr: `unexpected sbatch output ""`},
		{out: "Submitted batch job 1234\n", wantErr: `unexpected sbatch output "Submitted batch job 1234\n"`},
		{out: "-1\n", wantErr: `unexpected sbatch output "-1\n"`},
		{out: "12 34", wantErr: `unexpected sbatch output "12 34"`},
		{out: strings.Repeat("x", 100), wantErr: `unexpected sbatch output "` + strings.Repeat("x", 80) + `..."`},
	}
	for _, tt := range tests {
		got, err := ParseSbatchParsable([]byte(tt.out))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseSbatchParsable(%q): %q, %v; want error %s", tt.out, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSbatchParsable(%q) = %q, %v; want %q", tt.out, got, err, tt.want)
		}
	}
}

func TestParseState(t *testing.T) {
	tests := []struct {
		in   string
		want slurm.State
	}{
		{"RUNNING", slurm.StateRunning},
		{"running", slurm.StateRunning},
		{" COMPLETED ", slurm.StateCompleted},
		{"CANCELLED by 0", slurm.StateCancelled},
		{"CANCELLED by 1000", slurm.StateCancelled},
		{"CANCELLED+", slurm.StateCancelled},
		{"OOM", slurm.StateOutOfMemory},
		{"OUT_OF_MEMORY", slurm.StateOutOfMemory},
		{"PD", slurm.StatePending},
		{"R", slurm.StateRunning},
		{"S", slurm.StateSuspended},
		{"CG", slurm.StateCompleting},
		{"CF", slurm.StateConfiguring},
		{"RQ", slurm.StateRequeued},
		{"CD", slurm.StateCompleted},
		{"F", slurm.StateFailed},
		{"CA", slurm.StateCancelled},
		{"TO", slurm.StateTimeout},
		{"NF", slurm.StateNodeFail},
		{"PR", slurm.StatePreempted},
		{"BF", slurm.StateBootFail},
		{"DL", slurm.StateDeadline},
		{"", slurm.StateUnknown},
		{"   ", slurm.StateUnknown},
		{"REQUEUE_HOLD", slurm.State("REQUEUE_HOLD")},
	}
	for _, tt := range tests {
		if got := slurm.ParseState(tt.in); got != tt.want {
			t.Errorf("ParseState(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	terminal := map[slurm.State]bool{
		slurm.StateCompleted: true, slurm.StateFailed: true, slurm.StateCancelled: true, slurm.StateTimeout: true,
		slurm.StateNodeFail: true, slurm.StatePreempted: true, slurm.StateOutOfMemory: true, slurm.StateBootFail: true, slurm.StateDeadline: true,
		slurm.StatePending: false, slurm.StateRunning: false, slurm.StateSuspended: false, slurm.StateCompleting: false,
		slurm.StateConfiguring: false, slurm.StateRequeued: false, slurm.StateResizing: false, slurm.StateUnknown: false,
	}
	for st, want := range terminal {
		if st.Terminal() != want {
			t.Errorf("%s.Terminal() = %v, want %v", st, st.Terminal(), want)
		}
		if st.Succeeded() != (st == slurm.StateCompleted) {
			t.Errorf("%s.Succeeded() = %v", st, st.Succeeded())
		}
	}
}

// fuzzSeeds are realistic outputs of every command, for all fuzz targets.
var fuzzSeeds = []string{
	"3|RUNNING|None|st-node[1-2]|0:06|2026-11-26T23:16:31|0|0|st-gloo-check|(null)\n",
	"4|PENDING|Dependency||0:00|N/A|2|0|st-tiny-eval|slurmtune:r:eval\n11|CANCELLED|None|None assigned|INVALID|Unknown|0|9|a|b|c\n",
	"7|FAILED|NonZeroExitCode|n1|0:03|2026-11-26T23:16:31|0|256|t|c\n8|COMPLETED|None|n1|0:03|N/A|0|1:0|t|c\n",
	"3|COMPLETED|0:0|None|st-node[1-2]|7|2026-11-26T23:16:31|2026-11-26T23:16:38|st-gloo-check|slurmtune:r1:train\n",
	"5|NODE_FAIL|0:0|None|n1|12|2026-11-26T23:00:00|2026-11-26T23:00:12|t|c\n5|RUNNING|0:0|None|n1|30|2026-11-26T23:02:00|Unknown|t|c\n12.batch|COMPLETED|0:0||n1|1|x|y|b|\n",
	scontrolCompleted, scontrolRunning + "\n" + scontrolPending + "\n" + scontrolFailed,
	"No jobs in the system\n",
	"1-02:03:04", "0-05", "",
}

func FuzzParseSqueue(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		jobs, err := ParseSqueue(out)
		if err == nil {
			for _, j := range jobs {
				if j.ID == "" || j.Source != "squeue" {
					t.Fatalf("bad job %+v", j)
				}
			}
		}
	})
}

func FuzzParseSacct(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		jobs, err := ParseSacct(out)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, j := range jobs {
			if j.ID == "" || strings.ContainsAny(j.ID, ".+") || seen[j.ID] || j.Restarts < 0 {
				t.Fatalf("bad or duplicate job %+v", j)
			}
			seen[j.ID] = true
		}
	})
}

func FuzzParseScontrolJobs(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		jobs, err := ParseScontrolJobs(out)
		if err != nil {
			return
		}
		for _, j := range jobs {
			if j.Source != "scontrol" || !j.End.IsZero() && !j.State.Terminal() {
				t.Fatalf("bad job %+v", j)
			}
		}
		_, _ = ParsePartitions(out)
		_, _ = ParseDuration(string(out))
		_, _ = ParseSbatchParsable(out)
	})
}

func TestParseMaxArraySize(t *testing.T) {
	out := []byte("Configuration data as of 2026-12-02T00:30:00\nMailProg                = /bin/mail\nMaxArraySize            = 1001\nMaxJobCount             = 10000\n")
	if n, err := ParseMaxArraySize(out); err != nil || n != 1001 {
		t.Errorf("got %d, %v; want 1001", n, err)
	}
	for _, bad := range []string{"MaxJobCount = 1\n", "MaxArraySize = lots\n"} {
		if _, err := ParseMaxArraySize([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
