package templates

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var tinyRun = Run{
	ID:        "tiny-20260101-000000-abcd",
	Dir:       "/scratch/runs/tiny-20260101-000000-abcd",
	Slurmtune: "/opt/slurmtune/bin/slurmtune",
}

// hostileDir is a run directory that breaks any unquoted use: spaces, a
// command substitution, backticks, both quotes, globs and a '%'.
const hostileDir = "/scratch/my runs/$(touch x) `touch y` \"dq\" 'sq' ; & | <a> * %j/run"

// loadTiny parses the tiny example as if it lived in /srv/pipelines/tiny, so
// the paths it resolves do not depend on where the repository is.
func loadTiny(t *testing.T, sets ...string) *jobs.Pipeline {
	t.Helper()
	data, err := os.ReadFile("../examples/tiny/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := jobs.Parse("pipeline.yaml", "/srv/pipelines/tiny/pipeline.yaml", data, jobs.LoadOptions{Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func render(t *testing.T, p *jobs.Pipeline, run Run) map[string]Script {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := s.Render(p, run)
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	out := map[string]Script{}
	for _, sc := range scripts {
		stages = append(stages, sc.Stage)
		out[sc.Stage] = sc
	}
	if !reflect.DeepEqual(stages, p.Stages()) {
		t.Fatalf("rendered stages %v, want %v", stages, p.Stages())
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", path, got)
	}
}

func shellcheck(t *testing.T, name string, body []byte) {
	t.Helper()
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		slurmtest.Missing(t, "shellcheck not found (apt-get install -y shellcheck)")
	}
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sc, "--norc", "--shell=bash", f).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s\n--- script:\n%s", name, err, out, body)
	}
}

func bashSyntax(t *testing.T, name string, body []byte) {
	t.Helper()
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("bash -n %s: %v\n%s", name, err, out)
	}
}

// checkDirectives checks that sbatch sees every #SBATCH line: they all come
// before the first command.
func checkDirectives(t *testing.T, name string, body []byte) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(body))
	commands := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case n == 1 && line != "#!/bin/bash":
			t.Errorf("%s: first line %q, want #!/bin/bash", name, line)
		case strings.HasPrefix(line, "#SBATCH"):
			if commands {
				t.Errorf("%s:%d: #SBATCH after the first command is ignored by sbatch: %s", name, n, line)
			}
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			commands = true
		}
	}
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		sets   []string
		run    Run
		stages []string // stages with a golden file; nil: all
		want   []string // lines some script must hold, as "stage: line"
		absent []string // lines no script may hold, as "stage: line"
	}{
		{name: "tiny", run: tinyRun, want: []string{
			"prep: #SBATCH --output=/scratch/runs/tiny-20260101-000000-abcd/logs/prep.log",
			"train: #SBATCH --nodes=2",
			"train: #SBATCH --ntasks-per-node=2",
			"train: #SBATCH --mem=2048M",
			"train: #SBATCH --time=00:15:00",
			"train: export GLOO_SOCKET_IFNAME=eth0",
			"train:   /usr/bin/python3 /srv/scripts/payloads/tiny_lm.py train",
			"eval: /usr/bin/python3 /srv/scripts/payloads/tiny_lm.py eval",
			"deploy: #SBATCH --comment=slurmtune:tiny-20260101-000000-abcd:deploy",
			"deploy: export SLURMTUNE=/opt/slurmtune/bin/slurmtune",
		}, absent: []string{"train: #SBATCH --gres=gpu:0", "prep: #SBATCH --partition="}},
		{name: "one-node", sets: []string{"train.nodes=1"}, run: tinyRun, stages: []string{"train"},
			want: []string{"train: #SBATCH --nodes=1"}},
		{name: "gpu", sets: []string{"train.gpus_per_node=4", "train.tasks_per_node=4"}, run: tinyRun, stages: []string{"train", "eval"},
			want: []string{"train: #SBATCH --gres=gpu:4", "train: #SBATCH --ntasks-per-node=4", "train: export WORLD_SIZE=$(( SLURM_JOB_NUM_NODES * 4 ))"},
			// Only training asks for GPUs.
			absent: []string{"eval: #SBATCH --gres=gpu:4", "prep: #SBATCH --gres=gpu:4"}},
		{name: "eval-resources", sets: []string{"eval.gpus=1", "eval.mem=16G", "eval.cpus=4", "eval.time=00:45:00",
			"eval.container={runtime: apptainer, image: /images/eval.sif, mounts: [/models]}",
			"environment.container={runtime: pyxis, image: nvcr.io/nvidia/pytorch:24.05-py3}"}, run: tinyRun, stages: []string{"eval"},
			want: []string{"eval: #SBATCH --gres=gpu:1", "eval: #SBATCH --mem=16384M", "eval: #SBATCH --cpus-per-task=4", "eval: #SBATCH --time=00:45:00",
				"eval: apptainer exec --nv --bind \"$SLURMTUNE_RUN_DIR\" --bind /models /images/eval.sif /usr/bin/python3 /srv/scripts/payloads/tiny_lm.py eval"},
			absent: []string{"train: #SBATCH --gres=gpu:1"}},
		{name: "eval-pyxis", sets: []string{"environment.container={runtime: pyxis, image: nvcr.io/nvidia/pytorch:24.05-py3}"}, run: tinyRun, stages: []string{"eval"},
			want: []string{`eval: srun --ntasks=1 --container-image=nvcr.io/nvidia/pytorch:24.05-py3 --container-mounts="$SLURMTUNE_RUN_DIR:$SLURMTUNE_RUN_DIR" --container-workdir="$SLURMTUNE_RUN_DIR" /usr/bin/python3 /srv/scripts/payloads/tiny_lm.py eval`}},
		{name: "cluster-options", sets: []string{"cluster.partition=gpu-a100", "cluster.account=proj_42", "cluster.qos=high"}, run: tinyRun, stages: []string{"prep"},
			want: []string{"prep: #SBATCH --partition=gpu-a100", "deploy: #SBATCH --account=proj_42", "train: #SBATCH --qos=high"}},
		{name: "stage-options", sets: []string{
			"cluster.partition=debug", "train.partition=gpu-a100", "train.account=proj_42", "eval.qos=high",
			"train.gpus_per_node=a100:4", "train.tasks_per_node=4", "train.constraint=ib&nvlink", "train.reservation=maint-dec",
			"train.exclusive=true", "train.mail.type=END,FAIL", "train.mail.user=alice@example.org",
			`train.sbatch_args=["--gpus-per-task=1", "--nodelist=n[1-2]"]`, "prep.constraint=cpu",
		}, run: tinyRun, stages: []string{"train", "prep"}, want: []string{
			"train: #SBATCH --partition=gpu-a100", "train: #SBATCH --account=proj_42", "train: #SBATCH --gres=gpu:a100:4",
			"train: #SBATCH --constraint=ib&nvlink", "train: #SBATCH --reservation=maint-dec", "train: #SBATCH --exclusive",
			"train: #SBATCH --mail-type=END,FAIL", "train: #SBATCH --mail-user=alice@example.org",
			"train: #SBATCH --gpus-per-task=1", "train: #SBATCH --nodelist=n[1-2]",
			"prep: #SBATCH --partition=debug", "prep: #SBATCH --constraint=cpu", "eval: #SBATCH --qos=high",
		}, absent: []string{"prep: #SBATCH --exclusive", "eval: #SBATCH --constraint", "prep: #SBATCH --account=proj_42"}},
		{name: "stage-containers", sets: []string{
			"prep.container.runtime=apptainer", "prep.container.image=/img/prep.sif",
			"train.container.runtime=pyxis", "train.container.image=nvcr.io#nvidia/pytorch:24.05-py3",
		}, run: tinyRun, stages: []string{"prep", "train"}, want: []string{
			`prep: apptainer exec --bind "$SLURMTUNE_RUN_DIR" --bind /opt/slurmtune/bin /img/prep.sif "$SLURMTUNE" prep "$SLURMTUNE_PIPELINE" -o "$SLURMTUNE_DATA_DIR"`,
			`train: srun --kill-on-bad-exit=1 --wait=60 --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=2 --container-image='nvcr.io#nvidia/pytorch:24.05-py3' --container-mounts="$SLURMTUNE_RUN_DIR:$SLURMTUNE_RUN_DIR" --container-workdir="$SLURMTUNE_RUN_DIR" \`,
		}, absent: []string{"eval: --container-image", "eval: apptainer", "deploy: apptainer"}},
		{name: "environment", sets: []string{
			"environment.modules=[cuda/12.1, gcc@12]",
			`environment.setup=["ulimit -n 4096", "umask 027"]`,
			"environment.env.HF_HOME=/scratch/hf cache",
			"environment.env.NCCL_DEBUG=$(not run)",
		}, run: tinyRun, stages: []string{"eval"}, want: []string{
			"eval: module load cuda/12.1",
			"eval: module load gcc@12",
			"eval: ulimit -n 4096",
			"train: umask 027",
			"eval: export HF_HOME='/scratch/hf cache'",
			"eval: export NCCL_DEBUG='$(not run)'",
		}},
		{name: "secrets", sets: []string{
			"environment.secrets.HF_TOKEN.file=~/.secrets/hf token",
			"environment.secrets.WANDB_API_KEY.env=MY_WANDB_KEY",
			"environment.secrets.AWS_SECRET_ACCESS_KEY.file=/home/alice/.aws/secret",
		}, run: tinyRun, stages: []string{"train"}, want: []string{
			`train: slurmtune_secret HF_TOKEN "$HOME"/'.secrets/hf token'`,
			`eval: slurmtune_secret AWS_SECRET_ACCESS_KEY /home/alice/.aws/secret`,
		}, absent: []string{"train: MY_WANDB_KEY", "prep: WANDB_API_KEY"}},
		{name: "hostile-run-dir", run: Run{ID: tinyRun.ID, Dir: hostileDir, Slurmtune: "/opt/slurm tune/bin/slurmtune"}, want: []string{
			`prep: export SLURMTUNE_RUN_DIR='/scratch/my runs/$(touch x) ` + "`touch y`" + ` "dq" '\''sq'\'' ; & | <a> * %j/run'`,
			"deploy: export SLURMTUNE='/opt/slurm tune/bin/slurmtune'",
		}, absent: []string{"prep: #SBATCH --output=" + hostileDir + "/logs/prep.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scripts := render(t, loadTiny(t, tt.sets...), tt.run)
			stages := tt.stages
			if stages == nil {
				stages = jobs.StageOrder
			}
			for _, st := range stages {
				golden(t, filepath.Join(tt.name, st+".sbatch"), scripts[st].Body)
			}
			for _, sc := range scripts {
				name := tt.name + "/" + sc.Stage + ".sbatch"
				if want := filepath.Join(tt.run.Dir, "logs", sc.Stage+".log"); sc.Log != want {
					t.Errorf("%s: Log = %q, want %q", name, sc.Log, want)
				}
				bashSyntax(t, name, sc.Body)
				checkDirectives(t, name, sc.Body)
				shellcheck(t, sc.Stage+".sbatch", sc.Body)
			}
			has := func(spec string) bool {
				stage, line, _ := strings.Cut(spec, ": ")
				sc, ok := scripts[stage]
				if !ok {
					t.Fatalf("no %s script", stage)
				}
				for _, l := range strings.Split(string(sc.Body), "\n") {
					if l == line {
						return true
					}
				}
				return false
			}
			for _, w := range tt.want {
				if !has(w) {
					t.Errorf("no line %q", w)
				}
			}
			for _, a := range tt.absent {
				if has(a) {
					t.Errorf("unexpected line %q", a)
				}
			}
		})
	}
}

func TestRenderDisabledStages(t *testing.T) {
	scripts := render(t, loadTiny(t, "prep.enabled=false", "deploy.enabled=false"), tinyRun)
	if len(scripts) != 2 || scripts["train"].Body == nil || scripts["eval"].Body == nil {
		t.Errorf("rendered %d scripts, want train and eval", len(scripts))
	}
}

func TestRenderUnknownLauncher(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	p := loadTiny(t)
	// Past validation, e.g. a pipeline built in code: a train script that
	// launches nothing would "succeed" without training, so refuse it.
	p.Train.Launcher = "mpirun"
	if _, err := s.Render(p, tinyRun); err == nil || !strings.Contains(err.Error(), "mpirun") {
		t.Errorf("Render with launcher mpirun: err = %v, want an error naming it", err)
	}
}

// TestHostileRunDirIsLiteral runs the variable assignments of a script whose
// run directory is full of shell syntax: bash must read back the literal
// paths and run nothing.
func TestHostileRunDirIsLiteral(t *testing.T) {
	run := Run{ID: tinyRun.ID, Dir: hostileDir, Slurmtune: "/opt/$(touch z)/slurmtune"}
	for stage, sc := range render(t, loadTiny(t), run) {
		t.Run(stage, func(t *testing.T) {
			body := string(sc.Body)
			if strings.Contains(body, "#SBATCH --output") {
				t.Errorf("#SBATCH --output rendered for a path sbatch cannot read:\n%s", body)
			}
			var assigns []string
			for _, l := range strings.Split(body, "\n") {
				if l == `cd "$SLURMTUNE_RUN_DIR"` {
					break // the header's exports end here
				}
				if strings.HasPrefix(l, "export SLURMTUNE") {
					_, v, _ := strings.Cut(l, "=")
					if strings.Contains(v, "/") && !strings.HasPrefix(v, "'") {
						t.Errorf("value not single-quoted: %s", l)
					}
					assigns = append(assigns, l)
				}
			}
			if len(assigns) != 9 {
				t.Fatalf("%d SLURMTUNE exports, want 9:\n%s", len(assigns), body)
			}
			sandbox := t.TempDir()
			names := []string{"SLURMTUNE_RUN_ID", "SLURMTUNE_STAGE", "SLURMTUNE_RUN_DIR", "SLURMTUNE_DATA_DIR", "SLURMTUNE_CHECKPOINT_DIR",
				"SLURMTUNE_EVAL_DIR", "SLURMTUNE_HPARAMS", "SLURMTUNE_PIPELINE", "SLURMTUNE"}
			script := strings.Join(assigns, "\n") + "\nprintf '%s\\0'"
			for _, n := range names {
				script += ` "$` + n + `"`
			}
			cmd := exec.Command("bash", "--norc", "--noprofile", "-c", script)
			cmd.Dir = sandbox
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			l := LayoutOf(hostileDir)
			want := []string{tinyRun.ID, stage, l.Dir, l.Data, l.Checkpoints, l.Eval, l.Hparams, l.Pipeline, run.Slurmtune}
			if got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"); !reflect.DeepEqual(got, want) {
				t.Errorf("exported values:\n%q\nwant\n%q", got, want)
			}
			for _, f := range []string{"x", "y", "z"} {
				if _, err := os.Stat(filepath.Join(sandbox, f)); err == nil {
					t.Errorf("%q was created: part of a value was executed", f)
				}
			}
		})
	}
}

func TestHyperparameters(t *testing.T) {
	got, err := Hyperparameters(loadTiny(t, "train.hyperparameters.name=tiny run"))
	if err != nil {
		t.Fatal(err)
	}
	// Keys sorted, numbers kept as numbers.
	for _, want := range []string{`"lr": 0.003`, `"max_steps": 60`, `"name": "tiny run"`} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
	if bytes.Index(got, []byte(`"lr"`)) > bytes.Index(got, []byte(`"max_steps"`)) || !bytes.HasSuffix(got, []byte("}\n")) {
		t.Errorf("keys not sorted or no final newline:\n%s", got)
	}
	p := loadTiny(t)
	p.Train.Hyperparameters = nil
	if got, err := Hyperparameters(p); err != nil || string(got) != "{}\n" {
		t.Errorf("no hyperparameters: %q, %v; want {}", got, err)
	}
}

func TestJobName(t *testing.T) {
	tests := []struct{ pipeline, stage, want string }{
		{"tiny", "train", "st-tiny-train"},
		{"my pipeline!", "eval", "st-my-pipeline-eval"},
		{"a/b$(c)", "prep", "st-a-b-c-prep"},
		{"v1.2_x", "deploy", "st-v1.2_x-deploy"},
		{"", "prep", "st-pipeline-prep"},
		{"***", "prep", "st-pipeline-prep"},
		{strings.Repeat("a", 50), "train", "st-" + strings.Repeat("a", 40) + "-train"},
	}
	for _, tt := range tests {
		if got := JobName(tt.pipeline, tt.stage); got != tt.want {
			t.Errorf("JobName(%q, %q) = %q, want %q", tt.pipeline, tt.stage, got, tt.want)
		}
	}
}

func TestLayout(t *testing.T) {
	l := LayoutOf("/r/x")
	want := Layout{Dir: "/r/x", Logs: "/r/x/logs", Data: "/r/x/data", Checkpoints: "/r/x/checkpoints", Eval: "/r/x/eval",
		Pipeline: "/r/x/pipeline.yaml", Hparams: "/r/x/hyperparameters.json", Metrics: "/r/x/metrics", GPU: "/r/x/gpu"}
	if l != want {
		t.Errorf("LayoutOf = %+v, want %+v", l, want)
	}
	if got := l.LogPath("eval"); got != "/r/x/logs/eval.log" {
		t.Errorf("LogPath = %q", got)
	}
	if got := Comment("r1", "train"); got != "slurmtune:r1:train" {
		t.Errorf("Comment = %q", got)
	}
}

func TestDirectiveSafe(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/scratch/runs/tiny-1/logs/prep.log", true},
		{"/scratch/a,b+c@d:e/logs/x.log", true},
		{"/scratch/my runs/x.log", false},
		{"/scratch/%j/x.log", false},
		{"/scratch/$HOME/x.log", false},
		{"/scratch/`x`/x.log", false},
		{"/scratch/a'b/x.log", false},
		{`/scratch/a"b/x.log`, false},
		{"/scratch/a#b/x.log", false},
		{"/scratch/a\tb/x.log", false},
	}
	for _, tt := range tests {
		if got := directiveSafe(tt.path); got != tt.want {
			t.Errorf("directiveSafe(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// readBack has bash print the words of a command line, NUL-terminated.
func readBack(t testing.TB, words string) (string, error) {
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", "printf '%s\\0' "+words)
	cmd.Env = []string{"LC_ALL=C", "HOME=/nonexistent"}
	cmd.Dir = os.TempDir()
	out, err := cmd.Output()
	return string(out), err
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"abc", "abc"},
		{"/usr/bin/python3", "/usr/bin/python3"},
		{"--lr=0.1", "--lr=0.1"},
		{"a,b:c@d+e", "a,b:c@d+e"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"$HOME", "'$HOME'"},
		{"$(touch x)", "'$(touch x)'"},
		{"`id`", "'`id`'"},
		{`a"b`, `'a"b'`},
		{`back\slash`, `'back\slash'`},
		{"~", "'~'"},
		{"~/x", "'~/x'"},
		{"*.py", "'*.py'"},
		{"a;b", "'a;b'"},
		{"#x", "'#x'"},
		{"line\nbreak", "'line\nbreak'"},
		{"tab\t", "'tab\t'"},
		{"{a,b}", "'{a,b}'"},
		{"!x", "'!x'"},
		{"é", "'é'"},
	}
	for _, tt := range tests {
		got := Quote(tt.in)
		if got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
		out, err := readBack(t, got)
		if err != nil || out != tt.in+"\x00" {
			t.Errorf("bash reads Quote(%q) = %s back as %q (%v)", tt.in, got, out, err)
		}
	}
}

func TestQuoteArgs(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"python3"}, "python3"},
		{[]string{"python3", "my script.py", "--x=$y", ""}, `python3 'my script.py' '--x=$y' ''`},
	}
	for _, tt := range tests {
		if got := QuoteArgs(tt.in); got != tt.want {
			t.Errorf("QuoteArgs(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if len(tt.in) == 0 {
			continue
		}
		out, err := readBack(t, QuoteArgs(tt.in))
		if want := strings.Join(tt.in, "\x00") + "\x00"; err != nil || out != want {
			t.Errorf("bash reads QuoteArgs(%q) back as %q (%v), want %q", tt.in, out, err, want)
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", "a b", "it's", "'''", "$(touch x)", "`x`", "\\", "\n", "~", "*", "é", "\xff", "a=b", "-n", "-e"} {
		f.Add(s, "second")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.ContainsRune(a, 0) || strings.ContainsRune(b, 0) {
			t.Skip("a shell word cannot hold NUL")
		}
		out, err := readBack(t, Quote(a))
		if err != nil || out != a+"\x00" {
			t.Fatalf("bash reads Quote(%q) = %s back as %q (%v)", a, Quote(a), out, err)
		}
		out, err = readBack(t, QuoteArgs([]string{a, b}))
		if err != nil || out != a+"\x00"+b+"\x00" {
			t.Fatalf("bash reads QuoteArgs(%q, %q) = %s back as %q (%v)", a, b, QuoteArgs([]string{a, b}), out, err)
		}
	})
}

// TestMetricsFileIsLiteral: every stage exports its metrics file under the
// run directory, literally even in a hostile run directory, and the
// segment marker line it appends is one JSON object.
func TestMetricsFileIsLiteral(t *testing.T) {
	dir := t.TempDir() + strings.TrimPrefix(hostileDir, "/scratch")
	run := Run{ID: tinyRun.ID, Dir: dir, Slurmtune: "/opt/slurmtune"}
	for stage, sc := range render(t, loadTiny(t), run) {
		t.Run(stage, func(t *testing.T) {
			var lines []string
			for _, l := range strings.Split(string(sc.Body), "\n") {
				if strings.HasPrefix(l, "export SLURMTUNE_METRICS_FILE=") || strings.HasPrefix(l, `mkdir -p "${SLURMTUNE_METRICS_FILE`) || strings.HasPrefix(l, "  || echo") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 3 {
				t.Fatalf("metrics file lines %q in:\n%s", lines, sc.Body)
			}
			sandbox := t.TempDir()
			script := strings.Join(lines, "\n") + "\nprintf '%s' \"$SLURMTUNE_METRICS_FILE\""
			cmd := exec.Command("bash", "--norc", "--noprofile", "-c", script)
			cmd.Dir = sandbox
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "SLURM_JOB_ID=77", "SLURM_RESTART_COUNT=2"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			want := LayoutOf(dir).MetricsPath(stage)
			if string(out) != want {
				t.Fatalf("SLURMTUNE_METRICS_FILE = %q, want %q", out, want)
			}
			b, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				S struct {
					Job     string `json:"job"`
					Restart int    `json:"restart"`
					Time    int64  `json:"time"`
				} `json:"slurmtune"`
			}
			if err := json.Unmarshal(b, &m); err != nil || m.S.Job != "77" || m.S.Restart != 2 || m.S.Time < 1e9 {
				t.Errorf("marker line %q: %+v, %v", b, m, err)
			}
		})
	}
}

func TestStageMetricsPath(t *testing.T) {
	l := LayoutOf("/r")
	if got := l.StageMetricsPath("train"); got != "/r/metrics/train.jsonl" {
		t.Errorf("train: %s", got)
	}
	if got := l.StageMetricsPath("train[3]"); got != "/r/tasks/3/metrics/train.jsonl" {
		t.Errorf("train[3]: %s", got)
	}
	if got, plain := l.StageLogPath("eval[2]"), l.StageLogPath("eval"); got != "/r/tasks/2/logs/eval.log" || plain != "/r/logs/eval.log" {
		t.Errorf("logs: %s %s", got, plain)
	}
}
