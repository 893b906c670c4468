package rest

import (
	"context"
	"strings"
	"testing"
)

// TestSubmitBatchSignal: --signal=B:USR2@120 goes to v0.0.38 (slurmrestd
// 22.05, which refuses "B:SIG@T" in its "signal" field) as no signal field
// and SLURMTUNE_SELF_SIGNAL=USR2@120 in the job's environment, and to
// v0.0.40/v0.0.41 as Slurm's own batch-only warning signal
// (kill_warning_flags BATCH_JOB) without the variable. The fake checks
// each body against its version's document.
func TestSubmitBatchSignal(t *testing.T) {
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			f := newFakeRestd(t, v)
			c := f.client(t, nil)
			req := testRequest()
			req.Script = []byte(strings.Replace(testScript, "\n", "\n#SBATCH --requeue\n#SBATCH --signal=B:USR2@120\n", 1))
			if _, err := c.Submit(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			job, _ := f.body("POST", "/slurm/"+v+"/job/submit")["job"].(map[string]any)
			if job["requeue"] != true {
				t.Errorf("requeue %v, want true", job["requeue"])
			}
			if s, ok := job["signal"]; ok {
				t.Errorf("signal field sent: %v", s)
			}
			var self any
			switch env := job["environment"].(type) {
			case map[string]any:
				self = env[SelfSignalEnv]
			case []any:
				for _, kv := range env {
					if s, _ := kv.(string); strings.HasPrefix(s, SelfSignalEnv+"=") {
						self = strings.TrimPrefix(s, SelfSignalEnv+"=")
					}
				}
			default:
				t.Fatalf("environment %T %v", job["environment"], job["environment"])
			}
			if v == V0038 {
				if self != "USR2@120" {
					t.Errorf("%s = %v, want USR2@120", SelfSignalEnv, self)
				}
				for _, k := range []string{"kill_warning_flags", "kill_warning_signal", "kill_warning_delay"} {
					if _, ok := job[k]; ok {
						t.Errorf("%s sent to v0.0.38", k)
					}
				}
				return
			}
			if self != nil {
				t.Errorf("%s = %v sent to %s, which takes the signal itself", SelfSignalEnv, self, v)
			}
			flags, _ := job["kill_warning_flags"].([]any)
			delay, _ := job["kill_warning_delay"].(map[string]any)
			if len(flags) != 1 || flags[0] != "BATCH_JOB" || job["kill_warning_signal"] != "USR2" ||
				delay["set"] != true || delay["number"] != float64(120) {
				t.Errorf("kill_warning_flags %v signal %v delay %v, want [BATCH_JOB] USR2 120", job["kill_warning_flags"], job["kill_warning_signal"], job["kill_warning_delay"])
			}
		})
	}
}

func TestParseBatchSignal(t *testing.T) {
	for in, want := range map[string]string{"B:USR2@120": "USR2@120", "B:SIGUSR1@5": "USR1@5", "B:usr1": "USR1@60", "B:10@0": "10@0"} {
		s := &jobSpec{Env: map[string]string{}}
		if err := s.apply("--signal="+in, "test"); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := s.selfSignalEnv()[SelfSignalEnv]; got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{"USR2@120", "R:USR2@1", "B:", "B:USR2@x", "B:USR2@-1", "B:US-R2", "B:USR2@70000"} {
		s := &jobSpec{Env: map[string]string{}}
		if err := s.apply("--signal="+in, "test"); err == nil {
			t.Errorf("--signal=%s accepted", in)
		}
	}
}
