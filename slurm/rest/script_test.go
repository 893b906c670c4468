package rest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm"
)

func TestBuildSpecDirectives(t *testing.T) {
	s, err := buildSpec(testRequest())
	if err != nil {
		t.Fatal(err)
	}
	mem := int64(4096)
	want := &jobSpec{
		Script: testScript, Name: "tiny", Comment: "slurmtune:r1:train", WorkDir: "/scratch/runs/r1",
		Output: "/scratch/logs/tiny-%j.out", Error: "/scratch/logs/tiny.err", OpenMode: "append",
		Dependency: "afterok:101:102", KillOnInvalidDep: ptr(true), MinNodes: 2, MaxNodes: 2,
		TasksPerNode: 1, CPUsPerTask: 2, MemPerNode: &mem, TimeLimit: 90, Gres: "gpu:4",
		MailTypes: []string{"END", "TIME_LIMIT_90"}, MailUser: "alice@example.org",
		Env: map[string]string{"FOO": "bar", "PATH": defaultPath},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("\n got %+v\nwant %+v", s, want)
	}
}

func TestBuildSpecPrecedenceAndForms(t *testing.T) {
	req := slurm.SubmitRequest{
		Script: []byte("#!/bin/sh\n#SBATCH -J first -o out.log\n#SBATCH --comment='from script' # trailing comment\n" +
			"#SBATCH -N 1-3 -t 2-00:00:00\n#SBATCH --mem=512M --partition gpu\n#SBATCH --time=UNLIMITED\n" +
			"##SBATCH --bogus\n\n# plain comment\n#SBATCH --requeue\necho\n"),
		Comment:   "from request",
		WorkDir:   "/w",
		Env:       map[string]string{"PATH": "/opt/bin"},
		ExtraArgs: []string{"--hold", "--output", "/override.log", "-Jlast"},
	}
	s, err := buildSpec(req)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "last" || s.Output != "/override.log" || s.Comment != "from request" || !s.Hold ||
		s.MinNodes != 1 || s.MaxNodes != 3 || s.TimeLimit != -1 || *s.MemPerNode != 512 || s.Partition != "gpu" ||
		s.Requeue == nil || !*s.Requeue || s.Env["PATH"] != "/opt/bin" {
		t.Errorf("%+v", s)
	}
	if s.KillOnInvalidDep != nil || s.Dependency != "" {
		t.Errorf("no AfterOK, yet dependency %q", s.Dependency)
	}
}

func TestBuildSpecErrors(t *testing.T) {
	for name, req := range map[string]slurm.SubmitRequest{
		"no script":   {WorkDir: "/w"},
		"no workdir":  {Script: []byte("#!/bin/sh\ntrue\n")},
		"unsupported": {Script: []byte("#!/bin/sh\n#SBATCH --array=1-3\ntrue\n"), WorkDir: "/w"},
		"bad time":    {Script: []byte("#!/bin/sh\n#SBATCH --time=soon\ntrue\n"), WorkDir: "/w"},
		"bad extra":   {Script: []byte("#!/bin/sh\ntrue\n"), WorkDir: "/w", ExtraArgs: []string{"--export=ALL"}},
	} {
		if _, err := buildSpec(req); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", name, err)
		}
	}
	// The script path names the job and gives the working directory.
	s, err := buildSpec(slurm.SubmitRequest{Script: []byte("#!/bin/sh\ntrue\n"), ScriptPath: "/runs/r/prep.sbatch"})
	if err != nil || s.Name != "prep.sbatch" || s.WorkDir != "/runs/r" {
		t.Errorf("%+v %v", s, err)
	}
}

func TestParseTimeAndMem(t *testing.T) {
	for in, want := range map[string]int{"30": 30, "1:30": 2, "1:00:00": 60, "2-00": 2880, "1-01:30": 1530, "0:59": 1, "INFINITE": -1} {
		if got, err := parseTimeLimit(in); err != nil || got != want {
			t.Errorf("parseTimeLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]int64{"4000": 4000, "16G": 16384, "512M": 512, "2048K": 2, "1T": 1 << 20, "0": 0} {
		if got, err := parseMem(in); err != nil || got != want {
			t.Errorf("parseMem(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// TestSecretsSentAsEnvironment: secrets go in the job's environment of
// the request body, as Env does.
func TestSecretsSentAsEnvironment(t *testing.T) {
	req := testRequest()
	req.Secrets = map[string]string{"HF_TOKEN": "hf_x"}
	s, err := buildSpec(req)
	if err != nil {
		t.Fatal(err)
	}
	if s.Env["HF_TOKEN"] != "hf_x" || s.Env["FOO"] != "bar" {
		t.Errorf("environment %v", s.Env)
	}
}
