package chain

import "testing"

func TestFailureLine(t *testing.T) {
	for _, tc := range []struct{ log, want string }{
		{"loading\ntrain_hf: error: model.base slurmtune-test/x: not found on the hub (HF_HUB_OFFLINE=1)\nsrun: error: st-node1: task 0: Exited with exit code 1\n",
			"train_hf: error: model.base slurmtune-test/x: not found on the hub (HF_HUB_OFFLINE=1)"},
		{"Traceback (most recent call last):\n  File \"x.py\", line 3\nValueError: bad shape (3, 4)\nslurmstepd: error: *** STEP 4.0 ON n1 CANCELLED ***\n",
			"ValueError: bad shape (3, 4)"},
		{"step 1 loss 2.0\nslurmtune: FAILED: restart 3 of the train stage is more than train.max_restarts (2): not training again\n",
			"slurmtune: FAILED: restart 3 of the train stage is more than train.max_restarts (2): not training again"},
		{"ok\nsrun: error: st-node2: task 3: Killed\n", "srun: error: st-node2: task 3: Killed"},
		{"train_hf: error: tokenizer x: cannot connect\nslurmstepd-st-node1: error: *** STEP 1262.0 ON st-node1 CANCELLED AT 2026-12-01T22:55:50 ***\n",
			"train_hf: error: tokenizer x: cannot connect"},
		{"all fine\nno problem here\n", ""},
		{"", ""},
	} {
		if got := FailureLine(tc.log); got != tc.want {
			t.Errorf("FailureLine(%q) = %q, want %q", tc.log, got, tc.want)
		}
	}
}
