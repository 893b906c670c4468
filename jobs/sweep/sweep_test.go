package sweep

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/jobs"
)

const example = "../../examples/tiny/pipeline.yaml"

// src is the tiny example with sweepYAML appended.
func src(t *testing.T, sweepYAML string) []byte {
	t.Helper()
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	return append(data, []byte(sweepYAML)...)
}

// load parses the tiny example with sweepYAML appended.
func load(t *testing.T, sweepYAML string, sets ...string) (*jobs.Pipeline, error) {
	t.Helper()
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(example)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte(sweepYAML)...)
	return jobs.Parse("pipeline.yaml", abs, data, jobs.LoadOptions{Sets: sets})
}

func mustLoad(t *testing.T, sweepYAML string, sets ...string) *jobs.Pipeline {
	t.Helper()
	p, err := load(t, sweepYAML, sets...)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return p
}

const sel = "  select: {metric: perplexity, goal: min}\n"

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sweep string
		want  []string // each point's String()
	}{
		{"grid lists, last key fastest", "sweep:\n  grid:\n    train.hyperparameters.lr: [0.001, 0.003]\n    train.hyperparameters.batch_size: [4, 8, 16]\n" + sel,
			[]string{
				"train.hyperparameters.batch_size=4 train.hyperparameters.lr=0.001",
				"train.hyperparameters.batch_size=4 train.hyperparameters.lr=0.003",
				"train.hyperparameters.batch_size=8 train.hyperparameters.lr=0.001",
				"train.hyperparameters.batch_size=8 train.hyperparameters.lr=0.003",
				"train.hyperparameters.batch_size=16 train.hyperparameters.lr=0.001",
				"train.hyperparameters.batch_size=16 train.hyperparameters.lr=0.003",
			}},
		{"int range with step", "sweep:\n  grid:\n    train.hyperparameters.max_steps: {from: 10, to: 30, step: 10}\n" + sel,
			[]string{"train.hyperparameters.max_steps=10", "train.hyperparameters.max_steps=20", "train.hyperparameters.max_steps=30"}},
		{"float range with step", "sweep:\n  grid:\n    train.hyperparameters.lr: {from: 0.1, to: 0.3, step: 0.1}\n" + sel,
			[]string{"train.hyperparameters.lr=0.1", "train.hyperparameters.lr=0.2", "train.hyperparameters.lr=0.3"}},
		{"log grid for learning rates", "sweep:\n  grid:\n    train.hyperparameters.lr: {from: 1e-4, to: 1e-2, num: 3, log: true}\n" + sel,
			[]string{"train.hyperparameters.lr=0.0001", "train.hyperparameters.lr=0.001", "train.hyperparameters.lr=0.01"}},
		{"linear num", "sweep:\n  grid:\n    train.hyperparameters.lr: {from: 1, to: 2, num: 3}\n" + sel,
			[]string{"train.hyperparameters.lr=1.0", "train.hyperparameters.lr=1.5", "train.hyperparameters.lr=2.0"}},
		{"strings and booleans keep their type", "sweep:\n  grid:\n    train.hyperparameters.sched: [cosine, \"true\", linear]\n" + sel,
			[]string{"train.hyperparameters.sched=cosine", "train.hyperparameters.sched='true'", "train.hyperparameters.sched=linear"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoad(t, tc.sweep)
			pts, err := Expand(p.Sweep)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, pt := range pts {
				if pt.Index != i {
					t.Errorf("point %d has index %d", i, pt.Index)
				}
				got = append(got, pt.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("points:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestExpandRandomDeterministicAndInRange(t *testing.T) {
	sw := "sweep:\n  grid:\n    train.hyperparameters.batch_size: [4, 8]\n  random:\n    n: 50\n    seed: 7\n    params:\n" +
		"      train.hyperparameters.lr: {from: 1e-5, to: 1e-2, log: true}\n" +
		"      train.hyperparameters.max_steps: {from: 10, to: 20, int: true}\n" +
		"      train.hyperparameters.seq_len: [32, 64]\n" + sel
	p := mustLoad(t, sw)
	a, err := Expand(p.Sweep)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Expand(mustLoad(t, sw).Sweep)
	if len(a) != 100 {
		t.Fatalf("%d points, want 2 x 50", len(a))
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different points")
	}
	c, _ := Expand(mustLoad(t, strings.Replace(sw, "seed: 7", "seed: 8", 1)).Sweep)
	if reflect.DeepEqual(a, c) {
		t.Fatal("another seed gave the same points")
	}
	decades := map[int]bool{}
	for i, pt := range a {
		if bs := pt.Values["train.hyperparameters.batch_size"]; bs != []int{4, 8}[i/50] {
			t.Fatalf("point %d: batch_size %v: grid points should each get n draws", i, bs)
		}
		lr := pt.Values["train.hyperparameters.lr"].(float64)
		if lr < 1e-5 || lr > 1e-2 {
			t.Fatalf("lr %g out of range", lr)
		}
		switch {
		case lr < 1e-4:
			decades[0] = true
		case lr < 1e-3:
			decades[1] = true
		default:
			decades[2] = true
		}
		if st := pt.Values["train.hyperparameters.max_steps"].(int); st < 10 || st > 20 {
			t.Fatalf("max_steps %d out of range", st)
		}
		if sl := pt.Values["train.hyperparameters.seq_len"]; sl != 32 && sl != 64 {
			t.Fatalf("seq_len %v not one of the values", sl)
		}
	}
	if len(decades) != 3 {
		t.Errorf("log-uniform draws of 100 should cover every decade, got %v", decades)
	}
}

func TestResolve(t *testing.T) {
	sw := "sweep:\n  grid:\n    train.hyperparameters.lr: [0.001, 0.01]\n    train.nodes: [1]\n" + sel
	p := mustLoad(t, sw, "train.hyperparameters.seq_len=32")
	tasks, err := Resolve(p, "pipeline.yaml", src(t, sw), jobs.LoadOptions{Sets: []string{"train.hyperparameters.seq_len=32"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 {
		t.Fatalf("%d tasks", len(tasks))
	}
	for i, want := range []float64{0.001, 0.01} {
		tp := tasks[i].Pipeline
		if tp.Sweep != nil {
			t.Error("a task's pipeline is not a sweep")
		}
		if got := tp.Train.Hyperparameters["lr"]; got != want {
			t.Errorf("task %d lr %v, want %v", i, got, want)
		}
		if got := tp.Train.Hyperparameters["seq_len"]; got != 32 {
			t.Errorf("task %d lost the command line's --set: seq_len %v", i, got)
		}
		if tp.Train.Nodes != 1 {
			t.Errorf("task %d nodes %d", i, tp.Train.Nodes)
		}
	}
	if v := Varying([]Point{tasks[0].Point, tasks[1].Point}); !reflect.DeepEqual(v, []string{"train.hyperparameters.lr"}) {
		t.Errorf("varying %v", v)
	}
}

func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name, sweep string
		want        string // the whole first message
	}{
		{"unknown key", "sweep:\n  grid:\n    train.lora.rnk: [4, 8]\n" + sel,
			`pipeline.yaml:53:21: sweep.grid.train.lora.rnk: train.lora.rnk=4: unknown key "rnk" in train.lora (did you mean "r"?)`},
		{"unknown top key", "sweep:\n  grid:\n    trian.nodes: [1, 2]\n" + sel,
			`pipeline.yaml:53:18: sweep.grid.trian.nodes: trian.nodes=1: unknown key "trian" in the pipeline file (did you mean "train"?)`},
		{"bad value", "sweep:\n  grid:\n    train.nodes: [1, 0]\n" + sel,
			`pipeline.yaml:53:18: sweep.grid.train.nodes: train.nodes=0: must be at least 1, not 0`},
		{"empty grid", "sweep:\n  grid: {}\n" + sel, `pipeline.yaml:52:9: sweep.grid: is empty: give at least one KEY: [VALUES]`},
		{"empty list", "sweep:\n  grid:\n    train.nodes: []\n" + sel, `pipeline.yaml:53:18: sweep.grid.train.nodes: is empty: give at least one value`},
		{"neither grid nor random", "sweep:\n  max_parallel: 2\n" + sel, `pipeline.yaml:52:3: sweep: give grid: {KEY: [VALUES]} and/or random: {n, seed, params}`},
		{"unknown sweep key", "sweep:\n  gird: {}\n" + sel, `pipeline.yaml:52:3: unknown key "gird" in sweep (did you mean "grid"?)`},
		{"unknown range key", "sweep:\n  grid:\n    train.nodes: {from: 1, too: 2}\n" + sel, `pipeline.yaml:53:28: unknown key "too" in sweep.grid.train.nodes (did you mean "to"?)`},
		{"grid range without step", "sweep:\n  grid:\n    train.nodes: {from: 1, to: 2}\n" + sel,
			`pipeline.yaml:53:18: sweep.grid.train.nodes: a grid range needs step (from, from+step, ... to) or num (that many values)`},
		{"log range through 0", "sweep:\n  grid:\n    train.hyperparameters.lr: {from: 0, to: 1, num: 3, log: true}\n" + sel,
			`pipeline.yaml:53:31: sweep.grid.train.hyperparameters.lr: a log range needs from and to above 0`},
		{"random without n", "sweep:\n  random:\n    seed: 1\n    params: {train.hyperparameters.lr: {from: 0.1, to: 1}}\n" + sel,
			`pipeline.yaml:53:5: sweep.random: n must be at least 1, not 0`},
		{"random with a step", "sweep:\n  random:\n    n: 3\n    params: {train.hyperparameters.lr: {from: 0.1, to: 1, step: 0.1}}\n" + sel,
			`pipeline.yaml:54:40: sweep.random.params.train.hyperparameters.lr: a random range is drawn from: step and num are for grids`},
		{"select metric eval does not produce", "sweep:\n  grid: {train.nodes: [1, 2]}\n  select: {metric: bleu, goal: max}\n",
			`pipeline.yaml:53:20: sweep.select.metric: eval does not produce "bleu": it computes the metrics its gates name (perplexity); add a gate eval.gates.bleu`},
		{"unknown metric", "sweep:\n  grid: {train.nodes: [1, 2]}\n  select: {metric: loss, goal: min}\n",
			`pipeline.yaml:53:20: sweep.select.metric: unknown metric "loss" (known: perplexity, accuracy, bleu, rouge1, rouge2, rougeL, toxicity, human_eval)`},
		{"bad goal", "sweep:\n  grid: {train.nodes: [1, 2]}\n  select: {metric: perplexity, goal: lowest}\n",
			`pipeline.yaml:53:38: sweep.select.goal: must be min or max, not "lowest"`},
		{"sweeping the sweep", "sweep:\n  grid: {sweep.max_parallel: [1, 2]}\n" + sel,
			`pipeline.yaml:52:30: sweep.grid.sweep.max_parallel: a sweep cannot sweep its own settings`},
		{"key in grid and random", "sweep:\n  grid: {train.nodes: [1]}\n  random: {n: 2, params: {train.nodes: [1, 2]}}\n" + sel,
			`pipeline.yaml:53:40: sweep.random.params.train.nodes: train.nodes is in sweep.grid too: sweep each key one way`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := load(t, tc.sweep)
			if err == nil {
				_, err = Resolve(p, "pipeline.yaml", src(t, tc.sweep), jobs.LoadOptions{})
			}
			var errs jobs.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want jobs.Errors, got %v", err)
			}
			if got := errs[0].Error(); got != tc.want {
				t.Errorf("first error:\n got %s\nwant %s\n(all: %v)", got, tc.want, err)
			}
		})
	}
}

func TestCheckArraySize(t *testing.T) {
	p := mustLoad(t, "sweep:\n  grid: {train.hyperparameters.lr: {from: 1, to: 5, step: 1}}\n"+sel)
	n, err := Count(p.Sweep)
	if err != nil || n != 5 {
		t.Fatalf("count %d, %v", n, err)
	}
	if err := CheckArraySize(p, "pipeline.yaml", n, 5); err != nil {
		t.Errorf("5 tasks on MaxArraySize 5: %v", err)
	}
	err = CheckArraySize(p, "pipeline.yaml", n, 4)
	want := "pipeline.yaml:52:3: sweep: 5 tasks is more than the cluster's MaxArraySize (4, from scontrol show config): one job array holds task ids 0 to 3"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestSelect(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	rs := []Result{
		{Task: 0, Metric: f(9), Passed: true},
		{Task: 1, Reason: "train FAILED (exit 1)"},
		{Task: 2, Metric: f(3), Passed: false, Reason: "gate perplexity 3 > max 2"},
		{Task: 3, Metric: f(5), Passed: true},
		{Task: 4, Metric: f(5), Passed: true},
	}
	for _, tc := range []struct {
		goal string
		want int
	}{{"min", 3}, {"max", 0}} {
		got, err := Select("perplexity", tc.goal, rs)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %d, %v; want %d", tc.goal, got, err, tc.want)
		}
	}
	_, err := Select("perplexity", "min", rs[1:3])
	want := "no task passed every gate (task 1: train FAILED (exit 1); task 2: gate perplexity 3 > max 2)"
	if err == nil || err.Error() != want {
		t.Errorf("none passed: %v, want %s", err, want)
	}
}

// TestREADMESweepExample keeps the README's sweep section valid: appended
// to examples/hf-tiny (a LoRA-capable pipeline), every point resolves.
func TestREADMESweepExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.HasPrefix(b[1], "sweep:\n") {
			block = b[1]
		}
	}
	if block == "" {
		t.Fatal("README: no sweep example")
	}
	const hf = "../../examples/hf-tiny/pipeline.yaml"
	data, err := os.ReadFile(hf)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(hf)
	data = append(data, block...)
	p, err := jobs.Parse("README.md (sweep)", abs, data, jobs.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := Resolve(p, "README.md (sweep)", data, jobs.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 3*2*2 || tasks[0].Pipeline.Train.LoRA == nil || tasks[0].Pipeline.Train.LoRA.R != 8 {
		t.Errorf("%d tasks, first %+v", len(tasks), tasks[0].Point)
	}
}

type sizer int

func (s sizer) MaxArraySize(context.Context) (int, error) { return int(s), nil }

func TestTasksChecksTheClustersMaxArraySize(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pipeline.yaml")
	b := src(t, "sweep:\n  grid: {train.hyperparameters.lr: [0.1, 0.2, 0.3]}\n"+sel)
	b = []byte(strings.NewReplacer("[data/*.jsonl]", "[/data/*.jsonl]").Replace(string(b)))
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := jobs.Load(file, jobs.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tasks, err := Tasks(context.Background(), p, "pipeline.yaml", jobs.LoadOptions{}, sizer(3)); err != nil || len(tasks) != 3 {
		t.Errorf("3 tasks on MaxArraySize 3: %d, %v", len(tasks), err)
	}
	if _, err := Tasks(context.Background(), p, "pipeline.yaml", jobs.LoadOptions{}, sizer(2)); err == nil || !strings.Contains(err.Error(), "3 tasks is more than the cluster's MaxArraySize (2") {
		t.Errorf("3 tasks on MaxArraySize 2: %v", err)
	}
	if tasks, err := Tasks(context.Background(), p, "pipeline.yaml", jobs.LoadOptions{}, nil); err != nil || len(tasks) != 3 {
		t.Errorf("no cluster: %d, %v", len(tasks), err)
	}
}

// A sweep over REST is refused where the sweep is, before anything is
// queued: slurmrestd is not asked about one array task, so its tasks could
// not be followed.
func TestTasksRefusesTheRESTTransport(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pipeline.yaml")
	b := src(t, "sweep:\n  grid: {train.hyperparameters.lr: [0.1, 0.2]}\n"+sel)
	b = []byte(strings.NewReplacer("[data/*.jsonl]", "[/data/*.jsonl]").Replace(string(b)))
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := jobs.Load(file, jobs.LoadOptions{Sets: []string{"cluster.transport=rest", "cluster.rest.url=http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Tasks(context.Background(), p, "pipeline.yaml", jobs.LoadOptions{Sets: []string{"cluster.transport=rest", "cluster.rest.url=http://127.0.0.1:1"}}, sizer(10))
	var perrs jobs.Errors
	if !errors.As(err, &perrs) || len(perrs) != 1 || !strings.Contains(perrs[0].Error(), "rest transport cannot follow a job array") ||
		perrs[0].Pos.Line == 0 {
		t.Fatalf("want one positioned error for a REST sweep, got %v", err)
	}
}
