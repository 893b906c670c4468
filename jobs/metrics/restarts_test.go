package metrics

import (
	"testing"

	"github.com/slurmtune/slurmtune/store"
)

func TestLastRestartReason(t *testing.T) {
	tr := func(stage, job, from, to, reason string) store.Transition {
		return store.Transition{Stage: stage, JobID: job, From: from, To: to, Reason: reason}
	}
	tests := []struct {
		name string
		ts   []store.Transition
		want string
	}{
		{"never", []store.Transition{tr("train", "7", "PENDING", "RUNNING", "")}, ""},
		{"requeued by itself", []store.Transition{tr("train", "7", "PENDING", "RUNNING", ""), tr("train", "7", "RUNNING", "PENDING", "restart 1 BeginTime")}, "requeued"},
		{"preempted", []store.Transition{tr("train", "7", "PENDING", "RUNNING", ""), tr("train", "7", "RUNNING", "PREEMPTED", ""),
			tr("train", "7", "PREEMPTED", "PENDING", "restart 1 None")}, "PREEMPTED"},
		{"the last restart counts", []store.Transition{tr("train", "7", "RUNNING", "NODE_FAIL", ""), tr("train", "7", "NODE_FAIL", "PENDING", "restart 1 None"),
			tr("train", "7", "PENDING", "RUNNING", ""), tr("train", "7", "RUNNING", "PENDING", "restart 2 BeginTime")}, "requeued"},
		{"other stages and jobs do not", []store.Transition{tr("eval", "8", "RUNNING", "TIMEOUT", ""), tr("train", "6", "RUNNING", "PREEMPTED", ""),
			tr("train", "7", "RUNNING", "COMPLETED", "restart 1 ")}, "requeued"},
	}
	for _, tt := range tests {
		if got := lastRestartReason(tt.ts, "train", "7"); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := restartsCell(2, "PREEMPTED"); got != "2 (PREEMPTED)" {
		t.Errorf("restartsCell = %q", got)
	}
	if got := restartsCell(0, ""); got != "0" {
		t.Errorf("restartsCell = %q", got)
	}
}
