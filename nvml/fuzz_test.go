package nvml

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func FuzzJobIDParsers(f *testing.F) {
	f.Add([]byte("12:devices:/slurm/uid_0/job_123/step_0\n"))
	f.Add([]byte("0::/system.slice/slurmstepd.scope/job_4567/step_0/user/task_0"))
	f.Add([]byte("PATH=/bin\x00SLURM_JOB_ID=890\x00"))
	f.Add([]byte("SLURM_JOBID=1\x00::job_\x00/job_9:"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, id := range map[string]string{"cgroup": JobIDFromCgroup(data), "environ": JobIDFromEnviron(data)} {
			if id == "" {
				continue
			}
			if !validJobID([]byte(id)) || !bytes.Contains(data, []byte(id)) {
				t.Fatalf("%s: job id %q is not a numeric substring of the input", name, id)
			}
		}
	})
}

func FuzzLoadSamplesReport(f *testing.F) {
	f.Add(`{"time":"2026-01-02T03:00:00Z","host":"n1","gpu":0,"uuid":"GPU-a","util_pct":50,"mem_used_bytes":1,"energy_j":5,"throttle":[]}` + "\n" +
		`{"time":"2026-01-02T03:00:01Z","host":"n1","gpu":0,"uuid":"GPU-a","util_pct":5,"power_w":100,"xid":2,"job":"1,2"}`)
	f.Add(`{"time":"2026-01-02T03:00:00Z","host":"n1","nvml":"unavailable","error":"x"}`)
	f.Add("{}\n\n{\"gpu\":-1}")
	f.Fuzz(func(t *testing.T, in string) {
		samples, err := LoadSamples(strings.NewReader(in))
		if err != nil {
			return
		}
		r := BuildReport(samples)
		if err := r.WriteText(io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(r); err != nil {
			// NaN/Inf from extreme inputs would break --json.
			t.Fatalf("report not serialisable: %v", err)
		}
	})
}
