package chain

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm/local"
)

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("data/a.jsonl", 0o644)
	write("train.py", 0o644)
	write("bin/python", 0o755)
	write("notexec", 0o644)
	os.Mkdir(filepath.Join(dir, "model"), 0o755)
	file := filepath.Join(dir, "p.yaml")
	good := `name: t
data: {inputs: [data/*.jsonl, data/a.jsonl]}
train: {script: train.py, python: ` + dir + `/bin/python}
eval: {script: train.py}
model: {base: ` + dir + `/model}
`
	check := func(yaml string) []string {
		t.Helper()
		if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := jobs.Load(file, jobs.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		errs, err := CheckFiles(context.Background(), p, "p.yaml", "this host", local.FS{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range errs {
			out = append(out, strings.ReplaceAll(e.Error(), dir, "DIR"))
		}
		return out
	}
	if got := check(good); len(got) != 0 {
		t.Errorf("good pipeline: %v", got)
	}
	got := check(`name: t
data: {inputs: [data/*.txt, nothere.jsonl]}
train: {script: missing.py, python: ` + dir + `/notexec}
eval: {script: data}
model: {base: ` + dir + `/train.py}
environment: {container: {runtime: apptainer, image: /no/such.sif}}
`)
	want := []string{
		"p.yaml:2:17: data.inputs[0]: DIR/data/*.txt matches no file on this host",
		"p.yaml:2:29: data.inputs[1]: DIR/nothere.jsonl does not exist on this host",
		"p.yaml:3:17: train.script: DIR/missing.py does not exist on this host",
		"p.yaml:3:37: train.python: DIR/notexec on this host is not an executable",
		"p.yaml:4:16: eval.script: DIR/data on this host is not a regular file",
		"p.yaml:5:15: model.base: DIR/train.py on this host is not a directory",
		"p.yaml:6:54: environment.container.image: /no/such.sif does not exist on this host",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
