package chain

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm/local"
)

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("data/a.jsonl", 0o644)
	write("train.py", 0o644)
	write("bin/python", 0o755)
	write("notexec", 0o644)
	write("model/config.json", 0o644)
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
environment: {container: {runtime: apptainer, image: /no/such.sif}}
`)
	want := []string{
		"p.yaml:2:17: data.inputs[0]: DIR/data/*.txt matches no file on this host",
		"p.yaml:2:29: data.inputs[1]: DIR/nothere.jsonl does not exist on this host",
		"p.yaml:3:17: train.script: DIR/missing.py does not exist on this host",
		"p.yaml:3:37: train.python: DIR/notexec on this host is not an executable",
		"p.yaml:4:16: eval.script: DIR/data on this host is not a regular file",
		"p.yaml:5:54: environment.container.image: /no/such.sif does not exist on this host",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheckFilesModel: over a transport whose files are not this host's,
// the model's files are looked up through the transport's filesystem (here
// this host's, standing in for the login node's).
func TestCheckFilesModel(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	for _, err := range []error{
		os.WriteFile(filepath.Join(dir, "train.py"), []byte("x"), 0o644),
		os.Mkdir(filepath.Join(dir, "model"), 0o755),
		os.WriteFile(file, []byte(`name: t
cluster: {transport: ssh, ssh: {host: login1}}
data: {inputs: [`+dir+`/train.py]}
train: {script: train.py}
model: {base: `+dir+`/model, tokenizer: `+dir+`/tok}
`), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	p, err := jobs.Load(file, jobs.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := CheckFiles(context.Background(), p, "p.yaml", "login1", local.FS{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(errs.Error(), dir, "DIR")
	want := "p.yaml:5:15: model.base: DIR/model/config.json does not exist on login1\n" +
		"p.yaml:5:" + strconv.Itoa(len("model: {base: "+dir+"/model, tokenizer: ")+1) + ": model.tokenizer: DIR/tok does not exist on login1"
	if got != want {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}
}
