package chain

import (
	"reflect"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm"
)

func TestSbatchCommandLine(t *testing.T) {
	t.Parallel()
	j, err := ParseSbatchCommandLine(strings.Fields("-N2 -p debug --gres gpu:1 -o out.%j --parsa -WJ x --signal=B:TERM@30 -- script.sh a -b"))
	if err != nil {
		t.Fatal(err)
	}
	var pass []string
	for _, o := range j.pass {
		pass = append(pass, o.Arg())
	}
	want := []string{"--nodes=2", "--partition=debug", "--gres=gpu:1", "--output=out.%j", "--job-name=x", "--signal=B:TERM@30"}
	if !reflect.DeepEqual(pass, want) || j.script != "script.sh" || !reflect.DeepEqual(j.args, []string{"a", "-b"}) || !j.wait ||
		j.output != "out.%j" || j.jobName != "x" || !j.hasOutput {
		t.Errorf("parsed %+v, pass %q", j, pass)
	}
	if !reflect.DeepEqual(forwardSignals(j.signal), []string{"USR1", "USR2", "TERM"}) || len(forwardSignals("USR1@60")) != 2 ||
		!reflect.DeepEqual(forwardSignals("RB:SIGINT"), []string{"USR1", "USR2", "INT"}) {
		t.Errorf("forwardSignals: %v", forwardSignals(j.signal))
	}
	if j, err := ParseSbatchCommandLine([]string{"--wrap", "echo hi", "-n", "1"}); err != nil || !j.isWrap || j.wrap != "echo hi" || j.script != "" {
		t.Errorf("--wrap: %+v %v", j, err)
	}
	if _, err := ParseSbatchCommandLine([]string{"--wrap=x", "s.sh"}); err == nil {
		t.Error("--wrap with a script accepted")
	}
	if j, _ := ParseSbatchCommandLine([]string{"--help"}); !j.passthrough {
		t.Error("--help is not passed through")
	}
	// The #SBATCH directive parser's part of this test is slurm's TestParseDirectives.
	if got := resolveOutput("logs/%x-%4j.out", "42", "train", []slurm.SbatchOpt{{Name: "chdir", Value: "/work"}}, nil); got != "/work/logs/train-42.out" {
		t.Errorf("resolveOutput = %q", got)
	}
	if got := resolveOutput("o-%N.out", "42", "x", nil, nil); got != "" {
		t.Errorf("resolveOutput with %%N = %q", got)
	}
}
