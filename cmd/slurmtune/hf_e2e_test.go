package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// The Hugging Face payload on the dev cluster: scripts/payloads/train_hf.py with the
// pinned environment (scripts/payloads/requirements.txt, built by dev-cluster.sh up)
// trains examples/hf-tiny's 0.8M-parameter Llama built from a config, with a
// tokenizer trained on the prep output, across 2 nodes x 2 CPU ranks with
// DeepSpeed. Each case is one real run; they run in parallel where the
// cluster has room. Kept small: a few steps, checkpoints every few.

// payloadEnv is the payload environment's directory, or the test is missing
// a component (a failure under SLURMTUNE_TEST_STRICT=1).
func payloadEnv(t *testing.T) string {
	t.Helper()
	env := os.Getenv("SLURMTUNE_PAYLOAD_ENV")
	if env == "" {
		slurmtest.Missing(t, "no payload environment: SLURMTUNE_PAYLOAD_ENV is not set (run `eval \"$(scripts/dev-cluster.sh env)\"` after scripts/dev-cluster.sh up)")
	}
	if _, err := os.Stat(filepath.Join(env, ".slurmtune-payload.sha256")); err != nil {
		slurmtest.Missing(t, "no payload environment at %s (scripts/payload-env.sh %s): %v", env, env, err)
	}
	return env
}

func hfPipeline(t testing.TB) string {
	return filepath.Join(repoRoot(t), "examples", "hf-tiny", "pipeline.yaml")
}

// hfSets runs examples/hf-tiny with the payload environment, steps training
// steps and a checkpoint every `every`, on launcher with ZeRO stage (and
// optimizer offload to CPU), then extra.
func hfSets(env string, steps, every int, launcher string, stage int, offload bool, extra ...string) []string {
	sets := []string{"train.python=" + filepath.Join(env, "bin", "python"),
		"environment.env.TORCH_EXTENSIONS_DIR=" + filepath.Join(env, "torch-extensions"),
		"train.launcher=" + launcher, "train.deepspeed.zero_stage=" + strconv.Itoa(stage),
		"train.hyperparameters.max_steps=" + strconv.Itoa(steps), "train.checkpoint.every_steps=" + strconv.Itoa(every),
		"train.hyperparameters.logging_steps=1", "train.hyperparameters.warmup_steps=2",
		"train.hyperparameters.eval_records=8", "train.hyperparameters.max_new_tokens=8",
		"eval.gates.perplexity.max=1000", "deploy.strategy=record"}
	if offload {
		sets = append(sets, "train.deepspeed.offload_optimizer={device: cpu}")
	}
	return append(sets, extra...)
}

// stageLine is what the payload logs on every rank about the distributed setup.
func stageLine(stage int, offload bool) string {
	s := fmt.Sprintf("world size 4 (WORLD_SIZE 4) deepspeed ZeRO stage %d", stage)
	if offload {
		s += " with optimizer offload"
	}
	return s
}

// runDirOf is the run directory status reports.
func runDirOf(t *testing.T, db, run string) string {
	return statusOf(t, db, run).Runs[0].RunDir
}

// requireSucceeded fails unless every stage completed.
func requireSucceeded(t *testing.T, s statusOut, log string) {
	t.Helper()
	run := s.Runs[0]
	if run.State != "SUCCEEDED" {
		t.Fatalf("run %s, want SUCCEEDED: %+v\ntrain log:\n%s", run.State, run.Stages, log)
	}
}

// evalPerplexity is the perplexity eval recorded in eval_report.json.
func evalPerplexity(t *testing.T, runDir string) float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, "eval", "eval_report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Metrics map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("eval_report.json: %v", err)
	}
	p, ok := rep.Metrics["perplexity"]
	if !ok {
		t.Fatalf("eval_report.json has no perplexity: %s", b)
	}
	return p
}

// freshPerplexity loads the final checkpoint with from_pretrained in a new
// Python process, here on the login side, and computes the perplexity of the
// validation split the payload tokenized, with Hugging Face's own loss (not
// the payload's code): the mean token NLL over every label token.
const freshPerplexityPy = `
import json, math, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
final, val = sys.argv[1], sys.argv[2]
AutoTokenizer.from_pretrained(final)
model = AutoModelForCausalLM.from_pretrained(final).eval()
nll = n = 0
with torch.no_grad(), open(val) as f:
    for line in f:
        r = json.loads(line)
        labels = torch.tensor([r["labels"]])
        k = int((labels[0, 1:] != -100).sum())
        if k == 0:
            continue
        out = model(input_ids=torch.tensor([r["input_ids"]]), labels=labels)
        nll += out.loss.item() * k
        n += k
print(json.dumps({"perplexity": math.exp(nll / n), "tokens": n, "params": sum(p.numel() for p in model.parameters())}))
`

// payloadPy runs a Python program with the payload environment's
// interpreter, here on the login side, and returns its stdout.
func payloadPy(t *testing.T, env, what, code string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(env, "bin", "python"), append([]string{"-c", code}, args...)...)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1", "HF_HUB_OFFLINE=1", "HF_HUB_DISABLE_PROGRESS_BARS=1")
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s", what, err, msg)
	}
	return out
}

func freshPerplexity(t *testing.T, env, runDir string) float64 {
	t.Helper()
	out := payloadPy(t, env, "from_pretrained in a fresh process", freshPerplexityPy,
		filepath.Join(runDir, "checkpoints", "final"), filepath.Join(runDir, "hf-data", "validation.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r struct {
		Perplexity float64 `json:"perplexity"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("fresh perplexity: %v\n%s", err, out)
	}
	return r.Perplexity
}

// checkFinal checks the final directory is a plain HF model whose
// perplexity, from a fresh process, is what eval recorded.
func checkFinal(t *testing.T, env, runDir string) {
	t.Helper()
	final := filepath.Join(runDir, "checkpoints", "final")
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "COMPLETE"} {
		if _, err := os.Stat(filepath.Join(final, f)); err != nil {
			t.Errorf("final directory lacks %s: %v", f, err)
		}
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(final, f)); err == nil {
			t.Errorf("final directory holds %s: not a plain (merged) model", f)
		}
	}
	want := evalPerplexity(t, runDir)
	got := freshPerplexity(t, env, runDir)
	if math.Abs(got-want) > 1e-3*want {
		t.Errorf("perplexity from a fresh from_pretrained = %.5f, eval recorded %.5f", got, want)
	}
	t.Logf("final model: perplexity %.4f (eval) %.4f (fresh process)", want, got)
}

// hfTrainMetrics are the names the HF payload writes at each logging step.
var hfTrainMetrics = []string{"loss", "learning_rate", "grad_norm", "epoch", "tokens_per_second", "samples_per_second"}

// hfEvalMetrics are names of the line the HF payload's eval writes.
var hfEvalMetrics = []string{"eval_perplexity", "eval_nll_per_token", "eval_tokens", "eval_records"}

// metricsFileSteps reads a stage's metrics file: the names of each step's
// lines (a step that has several lines, from several ranks or loggers, has
// them all), marker lines left out.
func metricsFileSteps(t *testing.T, runDir, stage string) map[int64][][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, "metrics", stage+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64][][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%s metrics line %q: %v", stage, line, err)
		}
		if _, ok := l["slurmtune"]; ok {
			continue
		}
		step, ok := l["step"].(float64)
		if !ok {
			t.Errorf("%s metrics line without a step: %s", stage, line)
			continue
		}
		var names []string
		for k, v := range l {
			if _, num := v.(float64); num && k != "step" && k != "time" {
				names = append(names, k)
			}
		}
		out[int64(step)] = append(out[int64(step)], names)
	}
	return out
}

// checkHFMetrics: the HF payload's train stage wrote one line per logging
// step 1..steps (rank 0 only) with every one of hfTrainMetrics, its eval
// wrote its eval_* line, and `metrics --json` returns them from SQLite.
func checkHFMetrics(t *testing.T, db, run, runDir string, steps int) {
	t.Helper()
	train := metricsFileSteps(t, runDir, "train")
	for s := int64(1); s <= int64(steps); s++ {
		lines := train[s]
		if len(lines) != 1 {
			t.Errorf("train metrics file: %d lines for step %d, want 1 (rank 0 only): %v", len(lines), s, lines)
			continue
		}
		for _, n := range hfTrainMetrics {
			if !slices.Contains(lines[0], n) {
				t.Errorf("train metrics file: step %d lacks %s: %v", s, n, lines[0])
			}
		}
	}
	if len(train) != steps {
		t.Errorf("train metrics file: steps %v, want 1..%d", slices.Sorted(maps.Keys(train)), steps)
	}
	var evalLine []string
	for _, lines := range metricsFileSteps(t, runDir, "eval") {
		for _, names := range lines {
			if slices.Contains(names, "eval_perplexity") {
				evalLine = names
			}
		}
	}
	for _, n := range hfEvalMetrics {
		if !slices.Contains(evalLine, n) {
			t.Errorf("eval metrics file: no line with %s (its eval line: %v)", n, evalLine)
		}
	}
	r := slurmtune(t, db, "metrics", run, "--json")
	if r.code != 0 {
		t.Fatalf("metrics: exit %d: %s", r.code, r.stderr)
	}
	var m metricsOut
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("metrics --json: %v\n%s", err, r.stdout)
	}
	inDB, points := map[string][]int64{}, map[string]int{}
	for _, p := range m.Points {
		points[p.Stage+"/"+p.Name]++
		if p.Step != nil {
			inDB[p.Stage+"/"+p.Name] = append(inDB[p.Stage+"/"+p.Name], *p.Step)
		}
	}
	var want []int64
	for s := int64(1); s <= int64(steps); s++ {
		want = append(want, s)
	}
	for _, n := range hfTrainMetrics {
		if got := inDB["train/"+n]; !slices.Equal(got, want) {
			t.Errorf("metrics --json: train %s at steps %v, want %v", n, got, want)
		}
	}
	for _, n := range hfEvalMetrics {
		if points["eval/"+n] != 1 {
			t.Errorf("metrics --json: %d points of eval %s, want one", points["eval/"+n], n)
		}
	}
}

var lossRe = regexp.MustCompile(`\[train_hf rank 0\] step (\d+) loss ([0-9.]+)`)

// writeFormatData writes chat or instruction records made from the tiny
// corpus into dir/data.jsonl and returns the glob for data.inputs.
func writeFormatData(t *testing.T, dir, format string, n int) string {
	t.Helper()
	corpus, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "tiny", "data", "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(string(corpus)), "\n") {
		if i == n {
			break
		}
		var rec struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		words := strings.Fields(rec.Text)
		if len(words) < 6 {
			continue
		}
		cut := len(words) / 2
		head, tail := strings.Join(words[:cut], " "), strings.Join(words[cut:], " ")
		var out any
		switch format {
		case "chat":
			out = map[string]any{"messages": []map[string]string{
				{"role": "system", "content": "You finish sentences about clusters."},
				{"role": "user", "content": "Finish this: " + head},
				{"role": "assistant", "content": tail},
				{"role": "user", "content": "Again, shorter."},
				{"role": "assistant", "content": words[len(words)-1]},
			}}
		case "instruction":
			out = map[string]string{"instruction": "Finish the sentence.", "input": head, "output": tail}
		}
		j, _ := json.Marshal(out)
		b.Write(j)
		b.WriteByte('\n')
	}
	path := filepath.Join(dir, format+".jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// maskedLabels decodes the first tokenized training example of a run with
// its own tokenizer: the tokens without loss (label -100) and those with.
const maskedLabelsPy = `
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1] + "/tokenizer")
with open(sys.argv[1] + "/train.jsonl") as f:
    r = json.loads(f.readline())
ids, labels = r["input_ids"], r["labels"]
assert all(l in (-100, i) for i, l in zip(ids, labels)), "labels are the input ids or -100"
print(json.dumps({"masked": tok.decode([i for i, l in zip(ids, labels) if l == -100]),
                  "trained": tok.decode([i for i, l in zip(ids, labels) if l != -100]),
                  "eos": tok.eos_token, "last": tok.decode(ids[-1:])}))
`

func maskedLabels(t *testing.T, env, runDir string) (masked, trained, eos, last string) {
	t.Helper()
	out := payloadPy(t, env, "decode the tokenized data", maskedLabelsPy, filepath.Join(runDir, "hf-data"))
	var r struct{ Masked, Trained, EOS, Last string }
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return r.Masked, r.Trained, r.EOS, r.Last
}

// firstRecord is the first record of the run's prepared training split.
func firstRecord(t *testing.T, runDir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, "data", "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestE2EHFLaunchers trains with DeepSpeed across 2 nodes x 2 ranks with
// each launcher and ZeRO-2 and ZeRO-3 with optimizer offload to CPU (srun
// ZeRO-2 is TestE2EHFRequeueResumes, deepspeed ZeRO-2 TestE2EHFLoRAServes),
// on the three data formats: each run succeeds, its log shows world size 4
// and the stage, the final directory loads with from_pretrained in a fresh
// process with the perplexity eval recorded, and for chat and instruction
// data only the assistant turns and the response carry labels.
func TestE2EHFLaunchers(t *testing.T) {
	slurmtest.RequireCluster(t)
	env := payloadEnv(t)
	t.Parallel()
	cases := []struct {
		launcher string
		stage    int
		offload  bool
		format   string
	}{
		{"srun", 3, true, "text"},
		{"torchrun", 2, false, "chat"},
		{"torchrun", 3, true, "instruction"},
		{"deepspeed", 3, true, "text"},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s-zero%d-%s", c.launcher, c.stage, c.format)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			db := filepath.Join(tmp, "st.db")
			extra := []string{"name=hf-" + name}
			if c.format != "text" {
				extra = append(extra, "data.format="+c.format, "data.inputs=["+writeFormatData(t, tmp, c.format, 300)+"]",
					"data.near_dup.enabled=false", "train.hyperparameters.packing=false",
					"train.hyperparameters.max_seq_length=256") // whole examples: none is truncated
			}
			sub := submitPipeline(t, db, hfPipeline(t), filepath.Join(tmp, "runs"), hfSets(env, 8, 4, c.launcher, c.stage, c.offload, extra...)...)
			s := waitEnded(t, db, sub.Run, 12*time.Minute)
			log := trainLog(t, db, sub.Run)
			requireSucceeded(t, s, log)
			for _, want := range []string{"launcher " + c.launcher, stageLine(c.stage, c.offload), "starting from step 0",
				"checkpoint step 4", "done: 8 steps"} {
				if !strings.Contains(log, want) {
					t.Errorf("train log lacks %q:\n%s", want, log)
				}
			}
			for r := 0; r < 4; r++ {
				if want := fmt.Sprintf("[train_hf rank %d] %s", r, stageLine(c.stage, c.offload)); !strings.Contains(log, want) {
					t.Errorf("train log lacks rank %d's %q", r, want)
				}
			}
			runDir := s.Runs[0].RunDir
			checkFinal(t, env, runDir)
			checkHFMetrics(t, db, sub.Run, runDir, 8)
			if c.format == "text" {
				return
			}
			masked, trained, eos, last := maskedLabels(t, env, runDir)
			rec := firstRecord(t, runDir)
			if last != eos {
				t.Errorf("the example ends with %q, not EOS %q", last, eos)
			}
			switch c.format {
			case "chat":
				msgs, _ := rec["messages"].([]any)
				var wantTrained, wantMasked []string
				for _, m := range msgs {
					mm, _ := m.(map[string]any)
					content, _ := mm["content"].(string)
					if mm["role"] == "assistant" {
						wantTrained = append(wantTrained, content+eos)
					} else {
						wantMasked = append(wantMasked, content)
					}
				}
				if trained != strings.Join(wantTrained, "") {
					t.Errorf("chat: tokens with labels decode to %q, want the assistant turns %q", trained, strings.Join(wantTrained, ""))
				}
				for _, w := range wantMasked {
					if !strings.Contains(masked, w) {
						t.Errorf("chat: the masked tokens %q lack the prompt turn %q", masked, w)
					}
				}
			case "instruction":
				output, _ := rec["output"].(string)
				input, _ := rec["input"].(string)
				if trained != output+eos {
					t.Errorf("instruction: tokens with labels decode to %q, want the response %q", trained, output+eos)
				}
				if !strings.Contains(masked, input) || !strings.Contains(masked, "### Response:") {
					t.Errorf("instruction: the masked tokens %q lack the prompt", masked)
				}
			}
			t.Logf("%s: masked %q, trained %q", c.format, masked, trained)
		})
	}
}

// TestE2EHFRequeueResumes: `scontrol requeue` of a running ZeRO-2 training
// job (srun launcher) resumes under the same job id from its newest complete
// checkpoint, with the loss right after the resume near the loss just
// before it (not back at the start), reaches the full step count, and the
// final model loads with the perplexity eval recorded.
func TestE2EHFRequeueResumes(t *testing.T) {
	slurmtest.RequireCluster(t)
	env := payloadEnv(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	const steps = 40
	sub := submitPipeline(t, db, hfPipeline(t), filepath.Join(tmp, "runs"),
		hfSets(env, steps, 5, "srun", 2, false, "name=hf-requeue", "train.preemptible=true")...)
	job := sub.Jobs["train"]
	waitLog(t, db, sub.Run, "checkpoint step 10", 10*time.Minute)
	slurmtest.Run(t, "scontrol", "requeue", job)
	startNow(t, job)
	s := waitEnded(t, db, sub.Run, 6*time.Minute)
	log := trainLog(t, db, sub.Run)
	requireSucceeded(t, s, log)
	for _, st := range s.Runs[0].Stages {
		if st.Name == "train" && (st.JobID != job || st.Restarts < 1) {
			t.Errorf("train: %+v, want job %s with a restart", st, job)
		}
	}
	m := regexp.MustCompile(`resumed from step (\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("train log lacks resumed from step N:\n%s", log)
	}
	resumed, _ := strconv.Atoi(m[1])
	if resumed < 10 || resumed >= steps {
		t.Fatalf("resumed from step %d, want a checkpoint from 10 on", resumed)
	}
	// Tokenized once: the restart reuses what the first start wrote.
	for _, want := range []string{"starting from step 0", "tokenized once into", stageLine(2, false), "restart 1 at",
		"reusing the tokenized data in", fmt.Sprintf("done: %d steps", steps)} {
		if !strings.Contains(log, want) {
			t.Errorf("train log lacks %q:\n%s", want, log)
		}
	}
	// The losses: the first attempt's at step 1 and at the resumed step,
	// and the second attempt's first one (resumed+1).
	var initial, before, after float64
	resumeAt := strings.Index(log, m[0])
	for _, g := range lossRe.FindAllStringSubmatchIndex(log, -1) {
		step, _ := strconv.Atoi(log[g[2]:g[3]])
		loss, _ := strconv.ParseFloat(log[g[4]:g[5]], 64)
		switch {
		case g[0] < resumeAt && step == 1:
			initial = loss
		case g[0] < resumeAt && step == resumed:
			before = loss
		case g[0] > resumeAt && step == resumed+1 && after == 0:
			after = loss
		}
	}
	if initial == 0 || before == 0 || after == 0 {
		t.Fatalf("losses at step 1 (%g), %d before the requeue (%g) and %d after it (%g) not all logged:\n%s", initial, resumed, before, resumed+1, after, log)
	}
	t.Logf("loss: %.4f at step 1, %.4f at step %d before the requeue, %.4f at step %d after it", initial, before, resumed, after, resumed+1)
	if math.Abs(after-before) > 0.5*(initial-before) {
		t.Errorf("loss after the resume %.4f is not near the loss before it %.4f (initial %.4f)", after, before, initial)
	}
	checkFinal(t, env, s.Runs[0].RunDir)
}

// TestE2EHFMaxRestartsFails: past train.max_restarts the HF train stage
// fails with the reason and deploy is cancelled.
func TestE2EHFMaxRestartsFails(t *testing.T) {
	slurmtest.RequireCluster(t)
	env := payloadEnv(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	sub := submitPipeline(t, db, hfPipeline(t), filepath.Join(tmp, "runs"),
		hfSets(env, 400, 2, "srun", 2, false, "name=hf-maxrestarts", "train.preemptible=true", "train.max_restarts=0")...)
	job := sub.Jobs["train"]
	waitLog(t, db, sub.Run, "checkpoint step 2", 10*time.Minute)
	slurmtest.Run(t, "scontrol", "requeue", job)
	startNow(t, job)
	s := waitEnded(t, db, sub.Run, 4*time.Minute)
	log := trainLog(t, db, sub.Run)
	if s.Runs[0].State != "FAILED" {
		t.Errorf("run %s, want FAILED", s.Runs[0].State)
	}
	for _, st := range s.Runs[0].Stages {
		switch st.Name {
		case "train":
			if st.State != "FAILED" || st.JobID != job {
				t.Errorf("train: %+v, want FAILED as job %s", st, job)
			}
		case "eval", "deploy":
			if st.State != "CANCELLED" {
				t.Errorf("%s: %+v, want CANCELLED", st.Name, st)
			}
		}
	}
	if want := "slurmtune: FAILED: restart 1 of the train stage is more than train.max_restarts (0): not training again"; !strings.Contains(log, want) {
		t.Errorf("train log lacks %q:\n%s", want, log)
	}
}

// TestE2EHFLoRAServes trains a LoRA adapter (deepspeed launcher, ZeRO-2),
// merges it into a plain model, deploys it blue-green with hf_serve.py
// behind a router and gets a completion and a chat completion through it.
func TestE2EHFLoRAServes(t *testing.T) {
	slurmtest.RequireCluster(t)
	env := payloadEnv(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	state := filepath.Join(tmp, "deploy", "hf-lora.json")
	tr := startTestRouter(t, state)
	py := filepath.Join(env, "bin", "python")
	sub := submitPipeline(t, db, hfPipeline(t), filepath.Join(tmp, "runs"), hfSets(env, 8, 4, "deepspeed", 2, false,
		"name=hf-lora", "model.name=hf-lora",
		"train.lora={r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, k_proj, v_proj, o_proj]}",
		"deploy.strategy=blue-green",
		fmt.Sprintf(`deploy.serve.command=[%q, %q, "--model", "{model}", "--port", "{port}", "--name", "{name}"]`,
			py, filepath.Join(repoRoot(t), "scripts", "payloads", "hf_serve.py")),
		"deploy.serve.mem=1G", "deploy.serve.startup_timeout=3m", "deploy.serve.time=10m",
		"deploy.router.state="+state, "deploy.rollback_window=4s",
		`deploy.smoke.prompts=[{prompt: "The training job", max_tokens: 4}]`, "deploy.smoke.latency=30s")...)
	s := waitEnded(t, db, sub.Run, 12*time.Minute)
	log := trainLog(t, db, sub.Run)
	requireSucceeded(t, s, log)
	for _, want := range []string{"launcher deepspeed", stageLine(2, false), "LoRA r=8 alpha=16", "merged the LoRA adapter", "done: 8 steps"} {
		if !strings.Contains(log, want) {
			t.Errorf("train log lacks %q:\n%s", want, log)
		}
	}
	checkFinal(t, env, s.Runs[0].RunDir)
	model, text := complete(t, tr.url, "The scheduler")
	if model != "hf-lora" {
		t.Errorf("completion from model %q, want hf-lora", model)
	}
	t.Logf("completion through the router: %q", text)
	job := serveJobOf(deployStatusOf(t, db, "hf-lora"), sub.Run)
	if job == "" {
		t.Fatalf("no serving job for %s in the deployment history", sub.Run)
	}
	t.Cleanup(func() { _ = exec.Command("scancel", job).Run() })
}

// TestE2EHFBadInput: settings that cannot produce a loadable model are
// refused before anything is submitted, with FILE:LINE:COL; a hub id that
// cannot be fetched fails the train stage with one clear line in its log.
func TestE2EHFBadInput(t *testing.T) {
	slurmtest.RequireCluster(t)
	env := payloadEnv(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	write := func(name, body string) string {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badConfig := write("bad/config.json", "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 100,\n  \"num_attention_heads\": 3\n}\n")
	z3 := write("z3.json", "{\"zero_optimization\": {\"stage\": 3}}\n")
	write("tok/tokenizer_config.json", `{"eos_token": "</s>"}`)
	file := hfPipeline(t)
	for _, c := range []struct {
		name string
		sets []string
		want string
	}{
		{"missing model path", []string{"model.config=", "model.tokenizer=", "model.base=" + filepath.Join(tmp, "nope")},
			file + ": --set model.base: " + filepath.Join(tmp, "nope") + ": no such directory"},
		{"config the payload cannot build", []string{"model.config=" + badConfig},
			badConfig + ":4:26: num_attention_heads: 3 attention heads do not divide hidden_size 100"},
		{"ZeRO-3 that saves no HF weights", []string{"train.deepspeed={config_file: " + z3 + "}"},
			z3 + ":1:33: zero_optimization.stage3_gather_16bit_weights_on_model_save: ZeRO-3 must gather the weights on save"},
		{"chat data, tokenizer without a chat template", []string{"data.format=chat", "model.tokenizer=" + filepath.Join(tmp, "tok")},
			"model.tokenizer: data.format is chat but the tokenizer in " + filepath.Join(tmp, "tok") + " has no chat template"},
	} {
		args := []string{"submit", file, "--set", "workdir=" + filepath.Join(tmp, "runs")}
		for _, s := range c.sets {
			args = append(args, "--set", s)
		}
		r := slurmtune(t, db, args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q", c.name, r.code, r.stderr, c.want)
		}
		if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 {
			t.Errorf("%s: want one line, got:\n%s", c.name, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "runs")); err == nil {
		t.Errorf("a refused submit created the workdir")
	}
	// Known only on the cluster: a hub id that cannot be fetched.
	sub := submitPipeline(t, db, file, filepath.Join(tmp, "runs"), hfSets(env, 4, 2, "srun", 2, false,
		"name=hf-badhub", "model.config=", "model.tokenizer=", "model.base=slurmtune-test/no-such-model",
		"environment.env.HF_HUB_OFFLINE=1")...)
	s := waitEnded(t, db, sub.Run, 5*time.Minute)
	log := trainLog(t, db, sub.Run)
	if s.Runs[0].State != "FAILED" {
		t.Errorf("run %s, want FAILED", s.Runs[0].State)
	}
	errLines := regexp.MustCompile(`(?m)^train_hf: error: .*$`).FindAllString(log, -1)
	if len(errLines) != 1 || !strings.Contains(errLines[0], "slurmtune-test/no-such-model") {
		t.Errorf("want one clear error line naming the model, got %q:\n%s", errLines, log)
	}
	for _, st := range s.Runs[0].Stages {
		if st.Name == "train" && st.State != "FAILED" {
			t.Errorf("train %+v, want FAILED", st)
		}
		// The same line is what status says.
		if st.Name == "train" && len(errLines) == 1 && st.Error != strings.TrimSpace(errLines[0]) {
			t.Errorf("status --json: train error %q, want the log's %q", st.Error, errLines[0])
		}
	}
	if len(errLines) == 1 {
		if table := slurmtune(t, db, "status", sub.Run, "--no-sync"); !strings.Contains(table.stdout, strings.TrimSpace(errLines[0])) {
			t.Errorf("status does not show the error line %q:\n%s", errLines[0], table.stdout)
		}
	}
}
