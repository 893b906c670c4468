package jobs

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

const examplePath = "../examples/tiny/pipeline.yaml"

// posOf returns the 1-based line and column of the first occurrence of
// needle in data, plus offset bytes (so a test can point at a value).
func posOf(t *testing.T, data []byte, needle string, offset int) Pos {
	t.Helper()
	i := bytes.Index(data, []byte(needle))
	if i < 0 {
		t.Fatalf("%q not in file", needle)
	}
	i += offset
	line := bytes.Count(data[:i], []byte("\n")) + 1
	col := i - bytes.LastIndexByte(data[:i], '\n')
	return Pos{Line: line, Col: col}
}

func TestLoadExample(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(examplePath, LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	dir, err := filepath.Abs(filepath.Dir(examplePath))
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Dir(filepath.Dir(dir))
	if p.File != filepath.Join(dir, "pipeline.yaml") || p.Dir != dir {
		t.Errorf("File, Dir = %q, %q; want %q, %q", p.File, p.Dir, filepath.Join(dir, "pipeline.yaml"), dir)
	}
	if got, want := p.Stages(), StageOrder; !reflect.DeepEqual(got, want) {
		t.Errorf("Stages() = %v, want %v", got, want)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", p.Name, "tiny"},
		{"version", p.Version, 1},
		{"transport", p.Cluster.Transport, "local"},
		{"workdir", p.Workdir, filepath.Join(dir, "runs")},
		{"inputs", p.Data.Inputs, []string{filepath.Join(dir, "data", "*.jsonl")}},
		{"format", p.Data.Format, "text"},
		{"split", p.Data.Split, Split{Train: 0.8, Validation: 0.2, Seed: 1}},
		{"prep.mem", p.Prep.Mem.MiB, int64(512)},
		{"prep.time", p.Prep.Time.Duration, 10 * time.Minute},
		{"train.nodes", p.Train.Nodes, 2},
		{"train.tasks_per_node", p.Train.TasksPerNode, 2},
		{"train.gpus_per_node", p.Train.GPUsPerNode, 0},
		{"train.mem", p.Train.Mem.MiB, int64(2048)},
		{"train.time", p.Train.Time.Duration, 15 * time.Minute},
		{"train.launcher", p.Train.Launcher, "srun"},
		{"train.python", p.Train.Python, "/usr/bin/python3"},
		{"train.script", p.Train.Script, filepath.Join(repo, "scripts", "payloads", "tiny_lm.py")},
		{"train.args", p.Train.Args, []string{"train"}},
		{"eval.script", p.Eval.Script, filepath.Join(repo, "scripts", "payloads", "tiny_lm.py")},
		{"eval.mem", p.Eval.Mem.MiB, int64(1024)},
		{"deploy.strategy", p.Deploy.Strategy, "record"},
		// Defaults of what the file leaves out.
		{"deploy.mem default", p.Deploy.Mem.MiB, int64(512)},
		{"deploy.time default", p.Deploy.Time.Duration, 10 * time.Minute},
		{"env", p.Environment.Env, map[string]string{"GLOO_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "1"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if g := p.Eval.Gates["perplexity"]; g.Max == nil || *g.Max != 12 || g.Min != nil {
		t.Errorf("perplexity gate = %+v, want max 12 only", g)
	}
	if _, ok := p.Train.Hyperparameters["max_steps"].(int); !ok {
		t.Errorf("hyperparameter max_steps = %#v, want an int", p.Train.Hyperparameters["max_steps"])
	}
	if _, ok := p.Train.Hyperparameters["lr"].(float64); !ok {
		t.Errorf("hyperparameter lr = %#v, want a float64", p.Train.Hyperparameters["lr"])
	}
	// Positions point at the values.
	if got, want := p.Pos["train.nodes"], posOf(t, data, "  nodes: ", len("  nodes: ")); got != want {
		t.Errorf("Pos[train.nodes] = %+v, want %+v", got, want)
	}
	if got, want := p.Pos["name"], posOf(t, data, "\nname: ", len("\nname: ")); got != want {
		t.Errorf("Pos[name] = %+v, want %+v", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), LoadOptions{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want an error wrapping fs.ErrNotExist", err)
	}
	var es Errors
	if errors.As(err, &es) {
		t.Errorf("a read error must not be Errors: %v", err)
	}
}

func TestParseInvalid(t *testing.T) {
	t.Setenv("SLURMTUNE_REST_URL", "")
	tests := []struct {
		file string
		want []string // each line after "FILE"
	}{
		{"unknown_key", []string{`:5:3: unknown key "scirpt" in train (did you mean "script"?)`}},
		{"unknown_top_key", []string{`:6:1: unknown key "zzz" in the pipeline file (known keys: cluster, data, deploy, environment, eval, model, monitor, name, notify, prep, share, sweep, train, version, workdir)`}},
		{"wrong_type", []string{`:6:10: train.nodes: want a whole number, got "two"`}},
		{"wrong_type_mapping", []string{`:4:8: train: want a mapping, got a list`}},
		{"mem_list", []string{`:6:8: train.mem: want a scalar, got a list`}},
		{"bad_bool", []string{`:7:12: deploy.enabled: want true or false, got "maybe"`}},
		{"bad_memory", []string{`:6:8: train.mem: bad memory size "2X" (want e.g. 512M or 2G)`}},
		{"bad_time", []string{`:5:9: prep.time: bad time limit "1:2:3:4" (want e.g. 30, 02:00:00 or 1-12:00:00)`}},
		{"negative_nodes", []string{`:6:10: train.nodes: must be at least 1, not -2`}},
		{"unknown_launcher", []string{`:6:13: train.launcher: must be srun, torchrun or deepspeed, not "mpirun"`}},
		{"unknown_transport", []string{`:3:14: cluster.transport: must be local, ssh or rest, not "grpc"`}},
		{"ssh_without_host", []string{
			`:3:14: cluster.transport: ssh transport needs cluster.ssh.host`,
			`:4:15: cluster.ssh.port: 70000 is not a TCP port`,
		}},
		{"unknown_gate_metric", []string{`:8:9: eval.gates.f1: unknown metric "f1" (known: perplexity, accuracy, bleu, rouge1, rouge2, rougeL, toxicity, human_eval)`}},
		{"gate_without_bounds", []string{`:8:15: eval.gates.accuracy: a gate needs min or max`}},
		{"gate_min_above_max", []string{`:8:15: eval.gates.accuracy: min 0.9 is above max 0.5`}},
		{"perplexity_max_below_1", []string{`:9:12: eval.gates.perplexity.max: perplexity is never below 1; a max of 0.5 can never pass`}},
		{"split_sum", []string{`:4:10: data.split: train (0.7) and validation (0.2) must add up to 1`}},
		{"duplicate_key", []string{`:7:3: duplicate key "nodes" in train`}},
		{"duplicate_map_key", []string{`:9:5: environment.env: duplicate key "A"`}},
		// The flow sequence opened on line 3 is never closed.
		{"syntax_error", []string{`:3:1: did not find expected ',' or ']'`}},
		{"empty", []string{`: empty pipeline file`}},
		{"comment_only", []string{`: empty pipeline file`}},
		{"two_documents", []string{`:6:1: more than one YAML document in a pipeline file`}},
		{"second_document_syntax", []string{`:7:1: did not find expected ',' or ']'`}},
		{"all_disabled", []string{`:1:1: every stage is disabled: nothing to run`}},
		{"workdir_percent", []string{`:2:10: workdir: must not contain a newline or % (Slurm reads % in log paths as a pattern)`}},
		{"env_name", []string{`:8:11: environment.env.1BAD: "1BAD" is not a valid environment variable name`}},
		{"bad_version", []string{`:1:10: version: unsupported pipeline file version 2 (this slurmtune reads version 1)`}},
		{"bad_hyperparameter", []string{`:7:20: train.hyperparameters.learning-rate: hyperparameter names must be identifiers (letters, digits, _)`}},
		{"bad_module", []string{`:7:24: environment.modules[1]: "cuda; rm -rf /" is not a module name`}},
		{"null_name", []string{`:1:1: name: required`}},
		{"not_a_mapping", []string{`:1:1: the pipeline file: want a mapping, got a list`}},
		{"missing_required", []string{
			`:1:1: name: required`,
			`:2:3: data.inputs: at least one input file or glob is required while prep is enabled`,
			`:4:3: train.script: the training program is required`,
		}},
		// Every problem, in file order.
		{"several_errors", []string{
			`:4:11: data.format: must be text, chat or instruction, not "csv"`,
			`:7:9: train.cpus: must be at least 1, not -1`,
			`:9:19: train.tasks_per_node: the srun launcher runs one task per GPU: tasks_per_node (1) must equal gpus_per_node (2)`,
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "invalid", tt.file+".yaml")
			p, err := Load(path, LoadOptions{})
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want errors", p)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T %v is not Errors", err, err)
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = path + w
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
			if len(es) != len(tt.want) {
				t.Errorf("%d errors, want %d", len(es), len(tt.want))
			}
			for _, e := range es {
				if e.File != path {
					t.Errorf("error names file %q, want %q", e.File, path)
				}
			}
		})
	}
	// Every file under testdata/invalid has a row.
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if n := strings.TrimSuffix(filepath.Base(f), ".yaml"); !seen[n] {
			t.Errorf("%s has no expected error in the table", f)
		}
	}
}

func TestParseRESTNeedsURL(t *testing.T) {
	src := []byte("name: t\ncluster: {transport: rest}\ndata: {inputs: [d]}\ntrain: {script: s.py}\n")
	t.Setenv("SLURMTUNE_REST_URL", "")
	_, err := Parse("p.yaml", "/x/p.yaml", src, LoadOptions{})
	if want := "p.yaml:2:22: cluster.transport: rest transport needs cluster.rest.url (or SLURMTUNE_REST_URL)"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	t.Setenv("SLURMTUNE_REST_URL", "https://slurm.example:6820")
	if _, err := Parse("p.yaml", "/x/p.yaml", src, LoadOptions{}); err != nil {
		t.Errorf("with SLURMTUNE_REST_URL set: %v", err)
	}
}

func TestSet(t *testing.T) {
	minimal, err := os.ReadFile(filepath.Join("testdata", "valid", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sets    []string
		check   func(t *testing.T, p *Pipeline)
		wantErr string // the whole error text; "" for success
	}{
		{name: "existing key", sets: []string{"name=renamed"}, check: func(t *testing.T, p *Pipeline) {
			if p.Name != "renamed" {
				t.Errorf("name = %q", p.Name)
			}
			if p.Pos["name"] != (Pos{Set: "name"}) {
				t.Errorf("Pos[name] = %+v, want the --set", p.Pos["name"])
			}
		}},
		{name: "existing nested key replaced", sets: []string{"train.script=other.py"}, check: func(t *testing.T, p *Pipeline) {
			if p.Train.Script != "/srv/p/other.py" {
				t.Errorf("train.script = %q", p.Train.Script)
			}
		}},
		{name: "int", sets: []string{"train.nodes=3"}, check: func(t *testing.T, p *Pipeline) {
			if p.Train.Nodes != 3 {
				t.Errorf("train.nodes = %d", p.Train.Nodes)
			}
		}},
		{name: "bool", sets: []string{"deploy.enabled=false"}, check: func(t *testing.T, p *Pipeline) {
			if p.StageOn(StageDeploy) {
				t.Error("deploy still on")
			}
		}},
		{name: "new nested keys", sets: []string{"cluster.transport=ssh", "cluster.ssh.host=login1", "cluster.ssh.port=2222", "data.near_dup.num_perm=64"}, check: func(t *testing.T, p *Pipeline) {
			if p.Cluster.Transport != "ssh" || p.Cluster.SSH.Host != "login1" || p.Cluster.SSH.Port != 2222 || p.Data.NearDup.NumPerm != 64 {
				t.Errorf("cluster = %+v, near_dup = %+v", p.Cluster, p.Data.NearDup)
			}
		}},
		{name: "types kept in hyperparameters", sets: []string{
			"train.hyperparameters.steps=100", "train.hyperparameters.fp16=true", "train.hyperparameters.lr=0.5",
			"train.hyperparameters.opt=adamw", `train.hyperparameters.tag="007"`, "train.hyperparameters.sched.warmup=10",
		}, check: func(t *testing.T, p *Pipeline) {
			want := map[string]any{"steps": 100, "fp16": true, "lr": 0.5, "opt": "adamw", "tag": "007", "sched": map[string]any{"warmup": 10}}
			if !reflect.DeepEqual(p.Train.Hyperparameters, want) {
				t.Errorf("hyperparameters = %#v, want %#v", p.Train.Hyperparameters, want)
			}
		}},
		{name: "flow list", sets: []string{"data.inputs=[a.jsonl, /b.jsonl]"}, check: func(t *testing.T, p *Pipeline) {
			if want := []string{"/srv/p/a.jsonl", "/b.jsonl"}; !reflect.DeepEqual(p.Data.Inputs, want) {
				t.Errorf("inputs = %q, want %q", p.Data.Inputs, want)
			}
		}},
		{name: "value that looks like a mapping stays a string", sets: []string{"name=a: b"}, check: func(t *testing.T, p *Pipeline) {
			if p.Name != "a: b" {
				t.Errorf("name = %q", p.Name)
			}
		}},
		{name: "later set wins", sets: []string{"train.nodes=3", "train.nodes=4"}, check: func(t *testing.T, p *Pipeline) {
			if p.Train.Nodes != 4 {
				t.Errorf("train.nodes = %d", p.Train.Nodes)
			}
		}},
		{name: "no equals", sets: []string{"train.nodes"}, wantErr: "p.yaml: --set train.nodes: want key.path=value"},
		{name: "empty key", sets: []string{"=3"}, wantErr: "p.yaml: --set =3: want key.path=value"},
		{name: "empty path element", sets: []string{"train..nodes=3"}, wantErr: `p.yaml: --set train..nodes=3: empty key in path "train..nodes"`},
		{name: "through a scalar", sets: []string{"name.first=x"}, wantErr: "p.yaml: --set name.first=x: name is not a mapping"},
		{name: "unknown key", sets: []string{"train.nodez=3"}, wantErr: `p.yaml: --set train.nodez: unknown key "nodez" in train (did you mean "nodes"?)`},
		{name: "unknown section", sets: []string{"trian.nodes=3"}, wantErr: `p.yaml: --set trian.nodes: unknown key "trian" in the pipeline file (did you mean "train"?)`},
		{name: "wrong type", sets: []string{"train.nodes=two"}, wantErr: `p.yaml: --set train.nodes: want a whole number, got "two"`},
		{name: "invalid value", sets: []string{"train.nodes=-1"}, wantErr: `p.yaml: --set train.nodes: must be at least 1, not -1`},
		{name: "zero nodes", sets: []string{"train.nodes=0"}, wantErr: `p.yaml: --set train.nodes: must be at least 1, not 0`},
		{name: "owned sbatch option", sets: []string{`train.sbatch_args=["--dependency=afterok:1"]`},
			wantErr: `p.yaml: --set train.sbatch_args: train.sbatch_args[0]: --dependency is not for sbatch_args: slurmtune chains the stages`},
		{name: "keyed sbatch option", sets: []string{`eval.sbatch_args=["--mem=4G"]`},
			wantErr: `p.yaml: --set eval.sbatch_args: eval.sbatch_args[0]: --mem is not for sbatch_args: use eval.mem`},
		{name: "unknown sbatch option", sets: []string{`prep.sbatch_args=["--gpus-per-banana=1"]`},
			wantErr: `p.yaml: --set prep.sbatch_args: prep.sbatch_args[0]: "--gpus-per-banana=1" is not an sbatch option`},
		{name: "sbatch option missing its value", sets: []string{`train.sbatch_args=["--gpus-per-task"]`},
			wantErr: `p.yaml: --set train.sbatch_args: train.sbatch_args[0]: "--gpus-per-task": option --gpus-per-task requires an argument (give the value in the same word: --opt=value)`},
		{name: "gpu type without GPUs", sets: []string{"eval.gpu_type=a100"}, wantErr: `p.yaml: --set eval.gpu_type: set, but the stage asks for no GPUs`},
		{name: "two GPU types", sets: []string{"train.gpus_per_node=a100:2", "train.tasks_per_node=2", "train.gpu_type=h100"},
			wantErr: `p.yaml: --set train.gpu_type: "h100" is not the type train.gpus_per_node names ("a100")`},
		{name: "bad GPU spec", sets: []string{"train.gpus_per_node=a100:x"}, wantErr: `p.yaml: --set train.gpus_per_node: want a GPU count or TYPE:COUNT (e.g. 4 or a100:4), got "a100:x"`},
		{name: "mail type", sets: []string{"train.mail.type=SOMETIMES"}, wantErr: `p.yaml: --set train.mail.type: "SOMETIMES" is not a mail type (NONE, BEGIN, END, FAIL, REQUEUE, ALL, INVALID_DEPEND, STAGE_OUT, TIME_LIMIT, TIME_LIMIT_90/80/50, ARRAY_TASKS)`},
		{name: "constraint", sets: []string{"train.constraint=a b"}, wantErr: `p.yaml: --set train.constraint: "a b" is not a Slurm feature expression (names joined by & | , with ! * [ ] ( ))`},
		{name: "deploy container", sets: []string{"deploy.container.runtime=apptainer", "deploy.container.image=/x.sif"},
			wantErr: `p.yaml: --set deploy.container.runtime: deploy.container: the deploy stage submits the serving job with sbatch and runs outside containers: use deploy.serve.container for the model server`},
		{name: "prep container", sets: []string{"prep.container.runtime=docker", "prep.container.image=/x.sif"},
			wantErr: `p.yaml: --set prep.container.runtime: must be apptainer or pyxis, not "docker"`},
		{name: "notify URL", sets: []string{"notify.webhook=ftp://x"}, wantErr: `p.yaml: --set notify.webhook: "ftp://x" is not an http(s) URL`},
		{name: "notify event", sets: []string{"notify.webhook=http://x", "notify.on=[failed, bogus]"},
			wantErr: `p.yaml: --set notify.on: unknown event "bogus" (want succeeded, failed, gate_failed, preempted, drift)`},
		{name: "notify nowhere", sets: []string{"notify.on=[failed]"}, wantErr: `p.yaml: --set notify.on: events without notify.webhook go nowhere`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", "/srv/p/p.yaml", minimal, LoadOptions{Sets: tt.sets})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v\nwant %s", err, tt.wantErr)
				}
				var es Errors
				if !errors.As(err, &es) {
					t.Errorf("error %T is not Errors", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, p)
		})
	}
}

func TestRelativePaths(t *testing.T) {
	src := []byte(`name: t
workdir: out/runs
data:
  inputs: [data/*.jsonl, /shared/x.jsonl, ~/mine.jsonl]
  toxicity: {word_lists: [lists/w.txt]}
train:
  python: venv/bin/python
  script: ../code/train.py
eval:
  python: python3
  script: ./eval.py
`)
	tests := []struct {
		name, transport string
		wantWorkdir     string
	}{
		{"local", "local", "/home/u/pipes/out/runs"},
		// On another host the workdir is the cluster's, relative to its cwd.
		{"ssh", "ssh", "out/runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sets := []string{"cluster.transport=" + tt.transport, "cluster.ssh.host=h", "cluster.ssh.identity_file=keys/id"}
			p, err := Parse("p.yaml", "/home/u/pipes/p.yaml", src, LoadOptions{Sets: sets})
			if err != nil {
				t.Fatal(err)
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"workdir", p.Workdir, tt.wantWorkdir},
				{"inputs", p.Data.Inputs, []string{"/home/u/pipes/data/*.jsonl", "/shared/x.jsonl", "~/mine.jsonl"}},
				{"word_lists", p.Data.Toxicity.WordLists, []string{"/home/u/pipes/lists/w.txt"}},
				{"train.python", p.Train.Python, "/home/u/pipes/venv/bin/python"},
				{"train.script", p.Train.Script, "/home/u/code/train.py"},
				{"eval.python (on PATH)", p.Eval.Python, "python3"},
				{"eval.script", p.Eval.Script, "/home/u/pipes/eval.py"},
				{"identity_file", p.Cluster.SSH.IdentityFile, "/home/u/pipes/keys/id"},
			}
			for _, c := range checks {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
				}
			}
		})
	}
	// Load resolves against the file's directory, not the working directory.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(filepath.Join(dir, "p.yaml"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(dir), "code", "train.py"); p.Train.Script != want {
		t.Errorf("train.script = %q, want %q", p.Train.Script, want)
	}
}

// normalize clears what a snapshot does not carry (positions, the file's
// own path) and turns empty slices and maps into nil, so pipelines compare
// by meaning.
func normalize(p *Pipeline) *Pipeline {
	c := *p
	c.Pos, c.File, c.Dir = nil, "", ""
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice, reflect.Map:
			if v.Len() == 0 && !v.IsNil() && v.CanSet() {
				v.Set(reflect.Zero(v.Type()))
			}
		}
	}
	walk(reflect.ValueOf(&c).Elem())
	return &c
}

func TestSnapshotRoundTrip(t *testing.T) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(filepath.Join("testdata", "valid", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := os.ReadFile(filepath.Join("testdata", "valid", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  []byte
		sets []string
	}{
		{"example", example, nil},
		{"full", full, nil},
		{"minimal", minimal, nil},
		{"sub-second time limit", minimal, []string{"train.time=1500ms", "prep.time=1ms"}},
		{"days", minimal, []string{"train.time=2-00:00:01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p1, err := Parse("in.yaml", "/srv/pipelines/x/in.yaml", tt.src, LoadOptions{Sets: tt.sets})
			if err != nil {
				t.Fatal(err)
			}
			snap1, err := p1.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			// Parsed again from somewhere else, the snapshot means the same.
			p2, err := Parse("snapshot.yaml", "/elsewhere/run/pipeline.yaml", snap1, LoadOptions{})
			if err != nil {
				t.Fatalf("Parse(Snapshot()): %v\n%s", err, snap1)
			}
			n1, n2 := normalize(p1), normalize(p2)
			// Slurm has whole seconds: the snapshot rounds up.
			for _, s := range []*StageCommon{&n1.Prep, &n1.Train.StageCommon, &n1.Eval.StageCommon, &n1.Deploy.StageCommon} {
				s.Time.Duration = (s.Time.Duration + time.Second - 1).Truncate(time.Second)
			}
			if !reflect.DeepEqual(n1, n2) {
				t.Errorf("Parse(Snapshot()) differs:\n got %+v\nwant %+v", n2, n1)
			}
			snap2, err := p2.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(snap1, snap2) {
				t.Errorf("Snapshot is not a fixed point:\n%s\n---\n%s", snap1, snap2)
			}
		})
	}
}

func TestSnapshotGolden(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "valid", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("full.yaml", "/srv/pipelines/full/pipeline.yaml", src, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "full.snapshot.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Snapshot differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
}

func TestParseSlurmTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration // 0: an error
	}{
		{"30", 30 * time.Minute},
		{" 30 ", 30 * time.Minute},
		{"30:15", 30*time.Minute + 15*time.Second},
		{"02:00:00", 2 * time.Hour},
		{"1:2:3", time.Hour + 2*time.Minute + 3*time.Second},
		{"1-12", 36 * time.Hour},
		{"1-12:30", 36*time.Hour + 30*time.Minute},
		{"1-12:30:15", 36*time.Hour + 30*time.Minute + 15*time.Second},
		{"0-5", 5 * time.Hour},
		{"0-01:30", 90 * time.Minute},
		{"90m", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"45s", 45 * time.Second},
		{"0", 0},
		{"00:00:00", 0},
		{"0-0", 0},
		{"-1", 0},
		{"-5m", 0},
		{"1:2:3:4", 0},
		{"1-2:3:4:5", 0},
		{"1-", 0},
		{"-", 0},
		{"1-2-3", 0},
		{"a:b", 0},
		{"1:-2", 0},
		{"abc", 0},
		{"", 0},
		{"UNLIMITED", 0},
	}
	for _, tt := range tests {
		got, err := ParseSlurmTime(tt.in)
		switch {
		case tt.want == 0 && err == nil:
			t.Errorf("ParseSlurmTime(%q) = %v, want an error", tt.in, got)
		case tt.want != 0 && err != nil:
			t.Errorf("ParseSlurmTime(%q): %v", tt.in, err)
		case got != tt.want:
			t.Errorf("ParseSlurmTime(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDurationSlurm(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{30 * time.Minute, "00:30:00"},
		{90*time.Minute + 5*time.Second, "01:30:05"},
		{36 * time.Hour, "1-12:00:00"},
		{10*24*time.Hour + time.Second, "10-00:00:01"},
		// Slurm reads 0 as "no limit": a fraction of a second rounds up.
		{500 * time.Millisecond, "00:00:01"},
		{1500 * time.Millisecond, "00:00:02"},
	}
	for _, tt := range tests {
		got := Duration{tt.d}.Slurm()
		if got != tt.want {
			t.Errorf("Duration{%v}.Slurm() = %q, want %q", tt.d, got, tt.want)
		}
		back, err := ParseSlurmTime(got)
		if err != nil || back < tt.d {
			t.Errorf("ParseSlurmTime(%q) = %v, %v; want at least %v", got, back, err, tt.d)
		}
	}
}

func TestMemory(t *testing.T) {
	tests := []struct {
		in    string
		want  int64 // MiB; 0: an error
		slurm string
	}{
		{"512M", 512, "512M"},
		{"512", 512, "512M"},
		{"2G", 2048, "2048M"},
		{"2g", 2048, "2048M"},
		{"2GB", 2048, "2048M"},
		{" 4G ", 4096, "4096M"},
		{"1T", 1024 * 1024, "1048576M"},
		{"1K", 1, "1M"},
		{"1536K", 2, "2M"},
		{"1024K", 1, "1M"},
		{"0", 0, ""},
		{"0G", 0, ""},
		{"1.5G", 0, ""},
		{"-1G", 0, ""},
		{"G", 0, ""},
		{"2X", 0, ""},
		{"2 G", 0, ""},
		{"1P", 0, ""},
		{"", 0, ""},
	}
	for _, tt := range tests {
		var m Memory
		err := m.unmarshalScalar(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("Memory(%q) = %d MiB, want an error", tt.in, m.MiB)
			}
			continue
		}
		if err != nil {
			t.Errorf("Memory(%q): %v", tt.in, err)
			continue
		}
		if m.MiB != tt.want || m.Slurm() != tt.slurm {
			t.Errorf("Memory(%q) = %d MiB %q, want %d %q", tt.in, m.MiB, m.Slurm(), tt.want, tt.slurm)
		}
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "p.yaml", Pos: Pos{Line: 3, Col: 7}, Msg: "m"}, "p.yaml:3:7: m"},
		{FieldError{File: "p.yaml", Pos: Pos{Set: "train.nodes"}, Msg: "m"}, "p.yaml: --set train.nodes: m"},
		{FieldError{File: "p.yaml", Msg: "m"}, "p.yaml: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func FuzzParsePipeline(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "*.yaml"))
	seeds = append(seeds, examplePath)
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "")
		f.Add(data, "train.nodes=3")
	}
	f.Add([]byte("name: t\ndata: {inputs: [d]}\ntrain: {script: s}\n"), "train.hyperparameters.a.b=[1, {c: 2}]")
	f.Add([]byte("a: &a [*a]\n"), "")
	f.Add([]byte("---\n"), "x.y=1")
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		var opts LoadOptions
		if set != "" {
			opts.Sets = []string{set}
		}
		p, err := Parse("f.yaml", "/fuzz/f.yaml", data, opts)
		if err != nil {
			es, ok := err.(Errors)
			if !ok {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			if len(es) == 0 {
				t.Fatal("empty Errors")
			}
			for _, e := range es {
				if e == nil || e.File != "f.yaml" || e.Msg == "" {
					t.Fatalf("bad FieldError %#v", e)
				}
			}
			return
		}
		if p == nil {
			t.Fatal("nil pipeline and nil error")
		}
		// A valid pipeline's snapshot is itself a valid pipeline file.
		snap, err := p.Snapshot()
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		if _, err := Parse("snap.yaml", "/fuzz/snap.yaml", snap, LoadOptions{}); err != nil {
			t.Fatalf("Parse(Snapshot()): %v\n%s", err, snap)
		}
	})
}
