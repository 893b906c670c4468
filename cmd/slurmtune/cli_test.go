package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestCLIRoughEdges: usage errors are one line and exit 2 everywhere, a
// flag whose value is missing never takes the next argument (or "--") as
// its value, and messages say their key once. The binary is run as a user
// runs it; none of these cases needs a cluster.
func TestCLIRoughEdges(t *testing.T) {
	p := tinyPipeline(t)
	for _, tc := range []struct {
		name string
		args []string
		want string // the one line on stderr (substring)
	}{
		{"render without -o", []string{"render", p}, "slurmtune: render: -o DIR is required"},
		{"-o last", []string{"render", p, "-o"}, "slurmtune: -o needs a value"},
		{"-o then a flag", []string{"render", p, "-o", "--set", "train.nodes=2"}, "slurmtune: -o needs a value"},
		{"-o then --", []string{"render", "-o", "--", p}, "slurmtune: -o needs a value"},
		{"--set last", []string{"validate", p, "--set"}, "slurmtune: --set needs a value"},
		{"global flag last", []string{"--db"}, "slurmtune: --db needs a value"},
		{"unknown flag", []string{"status", "--bogus"}, "slurmtune: flag provided but not defined: -bogus"},
		{"unknown subcommand flag", []string{"cluster", "check", p, "--bogus"}, "flag provided but not defined: -bogus"},
		{"unknown deploy flag", []string{"deploy", "status", "x", "--bogus"}, "flag provided but not defined: -bogus"},
		{"zero nodes", []string{"validate", p, "--set", "train.nodes=0"}, p + ": --set train.nodes: must be at least 1, not 0"},
		{"key said once", []string{"validate", p, "--set", "train.nodes=two"}, p + `: --set train.nodes: want a whole number, got "two"`},
		{"gate without predictions", []string{"gate", p}, "slurmtune: gate: nothing to judge: give --predictions FILE"},
		{"logs --json -f", []string{"logs", "r", "train", "--json", "-f"}, "--json prints the log's metadata and cannot follow it"},
		{"review export --json without -o", []string{"review", "export", "r", "--json"}, "--json needs -o FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := slurmtuneIn(t, dir, filepath.Join(dir, "st.db"), tc.args...)
			msg := strings.TrimSpace(r.stderr)
			if r.code != 2 || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Errorf("slurmtune %v: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args, r.code, msg, tc.want)
			}
			if strings.Count(msg, "train.nodes") > 1 {
				t.Errorf("the key is said twice: %q", msg)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				names := []string{}
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("a bad command wrote %v", names)
			}
		})
	}
}

// TestCLIJSONWithoutCluster: validate and render print JSON results; render
// says its run id is a placeholder.
func TestCLIJSONWithoutCluster(t *testing.T) {
	p := tinyPipeline(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "st.db")

	r := slurmtune(t, db, "validate", p, "--json")
	var v validateResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || !v.Valid || len(v.Stages) != 4 || len(v.Errors) != 0 {
		t.Errorf("validate --json: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	r = slurmtune(t, db, "validate", p, "--json", "--set", "train.nodes=0", "--set", "train.launcher=foo")
	v = validateResult{}
	if r.code != 2 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Valid || len(v.Errors) != 2 ||
		v.Errors[0].Set == "" || v.Errors[0].Text == "" || strings.TrimSpace(r.stderr) != "" {
		t.Errorf("validate --json of a bad file: exit %d: %s / %q", r.code, r.stdout, r.stderr)
	}

	out := filepath.Join(dir, "out")
	r = slurmtune(t, db, "render", p, "-o", out, "--json")
	var rr renderResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rr) != nil || !rr.Placeholder || rr.Run == "" || len(rr.Files) != 4 {
		t.Fatalf("render --json: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	for stage, f := range rr.Files {
		if _, err := os.Stat(f); err != nil || filepath.Dir(f) != out {
			t.Errorf("render --json names %s for %s: %v", f, stage, err)
		}
	}
	if !strings.Contains(r.stderr, "placeholder run id") {
		t.Errorf("render does not say its run id is a placeholder: %q", r.stderr)
	}
}

// slurmtuneIn runs the binary in dir, so that anything it writes relative
// to its working directory shows up there.
func slurmtuneIn(t testing.TB, dir, db string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SLURMTUNE_DB="+db)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("slurmtune %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

// TestE2EJSONResults: every command that prints a result has --json, on a
// real run of the dev cluster: logs (the log's metadata), sync, cluster
// check, review export and import, cancel.
func TestE2EJSONResults(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := openTempDir(t)
	db := filepath.Join(tmp, "st.db")
	r := slurmtune(t, db, "submit", quickPipeline(t), "--wait", "--interval", "1s", "--set", "workdir="+filepath.Join(tmp, "runs"), "--set", "name=json")
	runID := strings.TrimSpace(r.stdout)
	if r.code != 0 {
		t.Fatalf("submit --wait: exit %d: %s", r.code, r.stderr)
	}
	decode := func(what string, r result, v any) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", what, r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			t.Fatalf("%s: %v: %q", what, err, r.stdout)
		}
	}

	var lm logMeta
	decode("logs --json", slurmtune(t, db, "logs", runID, "train", "--json"), &lm)
	if lm.Run != runID || lm.Stage != "train" || lm.JobID == "" || lm.State != "COMPLETED" || !lm.Exists ||
		lm.Log != filepath.Join(tmp, "runs", runID, "logs", "train.log") {
		t.Errorf("logs --json: %+v", lm)
	}
	var sy struct{ Tracked, Changed, Missing *int }
	decode("sync --json", slurmtune(t, db, "sync", "--json"), &sy)
	if sy.Tracked == nil || sy.Changed == nil || sy.Missing == nil {
		t.Errorf("sync --json lacks counts: %+v", sy)
	}
	var cc clusterReport
	decode("cluster check --json", slurmtune(t, db, "cluster", "check", quickPipeline(t), "--json"), &cc)
	if cc.Transport != "local" || !strings.HasPrefix(cc.SlurmVersion, "22.05") || len(cc.Partitions) == 0 || cc.ComputeSlurmtune == "" {
		t.Errorf("cluster check --json: %+v", cc)
	}
	csv := filepath.Join(tmp, "review.csv")
	var ex struct {
		Run     string `json:"run"`
		Sampled int    `json:"sampled"`
		Output  string `json:"output"`
	}
	decode("review export --json", slurmtune(t, db, "review", "export", runID, "-o", csv, "--json"), &ex)
	if ex.Run != runID || ex.Sampled != 1 || ex.Output != csv {
		t.Errorf("review export --json: %+v", ex)
	}
	data, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	scored := filepath.Join(tmp, "scored.csv")
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if err := os.WriteFile(scored, []byte(lines[0]+"\n"+lines[1]+"4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var im struct {
		Run    string  `json:"run"`
		Scores int     `json:"scores"`
		Mean   float64 `json:"mean"`
	}
	decode("review import --json", slurmtune(t, db, "review", "import", runID, scored, "--json"), &im)
	if im.Run != runID || im.Scores != 1 || im.Mean != 4 {
		t.Errorf("review import --json: %+v (csv %q)", im, lines)
	}
	var ca struct {
		Run    string            `json:"run"`
		State  string            `json:"state"`
		Stages map[string]string `json:"stages"`
	}
	decode("cancel --json", slurmtune(t, db, "cancel", runID, "--json"), &ca)
	if ca.Run != runID || ca.State != "SUCCEEDED" || ca.Stages["train"] != "COMPLETED" {
		t.Errorf("cancel --json of a finished run (it keeps its state): %+v", ca)
	}
}
