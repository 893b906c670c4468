package jobs

import "testing"

func TestTaskStageNames(t *testing.T) {
	if n := TaskStage("eval", 12); n != "eval[12]" || !IsTaskStage(n) || IsTaskStage("eval") {
		t.Errorf("TaskStage %q", n)
	}
	for name, want := range map[string]struct {
		stage string
		task  int
		ok    bool
	}{"eval[12]": {"eval", 12, true}, "train": {"train", 0, false}, "train[x]": {"train[x]", 0, false}, "train[-1]": {"train[-1]", 0, false}} {
		if st, k, ok := ParseTaskStage(name); st != want.stage || k != want.task || ok != want.ok {
			t.Errorf("ParseTaskStage(%q) = %s %d %v", name, st, k, ok)
		}
	}
}
