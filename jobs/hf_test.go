package jobs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hfDir is a pipeline directory with a model config, a tokenizer directory
// with and without a chat template, a base model directory and DeepSpeed
// configs.
func hfDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"model/config.json":              `{"model_type": "llama", "hidden_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2}`,
		"badjson/config.json":            "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 128,,\n}",
		"notype/config.json":             `{"hidden_size": 128}`,
		"heads/config.json":              "{\"model_type\": \"llama\",\n \"hidden_size\": 100, \"num_attention_heads\": 3}",
		"base/config.json":               `{"model_type": "llama"}`,
		"base/tokenizer_config.json":     `{"eos_token": "</s>"}`,
		"chatbase/config.json":           `{"model_type": "llama"}`,
		"chatbase/tokenizer_config.json": `{"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}`,
		"z3.json":                        "{\n  \"zero_optimization\": {\"stage\": 3}\n}\n",
		"z3ok.json":                      `{"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": true}}`,
		"d.jsonl":                        `{"text": "x"}`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const hfBase = `name: hf
data: {inputs: [d.jsonl], format: %FORMAT%}
train:
  script: train_hf.py
  nodes: 2
  tasks_per_node: 2
`

func TestValidateModel(t *testing.T) {
	dir := hfDir(t)
	tests := []struct {
		name, format, yaml string
		want               []string // substrings of the error lines, in order; none: valid
	}{
		{"config and trained tokenizer", "text", "model: {name: m, config: model/config.json, tokenizer: train}\n", nil},
		{"local base", "text", "model: {name: m, base: ./base}\n", nil},
		{"hub id is not looked up", "chat", "model: {name: m, base: org/some-model}\n", nil},
		{"chat with a chat template", "chat", "model: {name: m, base: ./chatbase}\n", nil},
		{"ZeRO-3 config that gathers", "text", "model: {name: m, base: ./base}\ntrain:\n  deepspeed: {config_file: z3ok.json}\n", nil},
		{"missing base directory", "text", "model: {name: m, base: ./nope}\n",
			[]string{"p.yaml:7:24: model.base: ./nope: no such directory"}},
		{"base and config", "text", "model: {name: m, base: ./base, config: model/config.json, tokenizer: train}\n",
			[]string{"p.yaml:7:40: model.config: model.base is set too"}},
		{"config without tokenizer", "text", "model: {name: m, config: model/config.json}\n",
			[]string{"p.yaml:7:26: model.config: a model built from a config needs model.tokenizer"}},
		{"config that is not JSON", "text", "model: {name: m, config: badjson/config.json, tokenizer: train}\n",
			[]string{"badjson/config.json:4:1: model config: invalid character"}},
		{"config without model_type", "text", "model: {name: m, config: notype/config.json, tokenizer: train}\n",
			[]string{"notype/config.json:1:1: model_type: an HF config needs model_type"}},
		{"heads that do not divide", "text", "model: {name: m, config: heads/config.json, tokenizer: train}\n",
			[]string{"heads/config.json:2:45: num_attention_heads: 3 attention heads do not divide hidden_size 100"}},
		{"chat without a chat template", "chat", "model: {name: m, base: ./base}\n",
			[]string{"p.yaml:7:24: model.base: data.format is chat but the tokenizer in ./base has no chat template"}},
		{"ZeRO-3 that cannot save HF weights", "text", "model: {name: m, base: ./base}\ntrain:\n  deepspeed: {config_file: z3.json}\n",
			[]string{"z3.json:2:34: zero_optimization.stage3_gather_16bit_weights_on_model_save: ZeRO-3 must gather the weights on save"}},
		{"LoRA settings", "text", "model: {name: m, config: model/config.json, tokenizer: train}\ntrain:\n  lora: {r: 0, dropout: 1.5, merge: false}\n",
			[]string{"train.lora.r: the LoRA rank must be at least 1", "train.lora.dropout: must be in [0, 1)", "train.lora.merge: an unmerged adapter needs model.base"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(hfBase, "%FORMAT%", tt.format, 1) + tt.yaml
			// A second train: block would be a duplicate key: merge it.
			if strings.Contains(tt.yaml, "train:\n") {
				src = strings.Replace(hfBase, "%FORMAT%", tt.format, 1)
				extra := tt.yaml[strings.Index(tt.yaml, "train:\n")+len("train:\n"):]
				src += extra
				src += tt.yaml[:strings.Index(tt.yaml, "train:\n")]
			}
			_, err := Parse("p.yaml", filepath.Join(dir, "p.yaml"), []byte(src), LoadOptions{})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected errors:\n%v\nfile:\n%s", err, src)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("errors:\n%v\nwant %d lines like %q", err, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error %d:\n%s\nwant it to contain\n%s", i, lines[i], w)
				}
			}
		})
	}
}

func TestZeroStage3ConfigGathersWeights(t *testing.T) {
	got := dsConfig(t, dsBase+"  deepspeed: {zero_stage: 3}\n")
	z, _ := got["zero_optimization"].(map[string]any)
	if z["stage3_gather_16bit_weights_on_model_save"] != true {
		t.Errorf("a generated ZeRO-3 config must gather the weights on save: %v", z)
	}
	got = dsConfig(t, dsBase+"  deepspeed: {zero_stage: 2}\n")
	z, _ = got["zero_optimization"].(map[string]any)
	if _, ok := z["stage3_gather_16bit_weights_on_model_save"]; ok {
		t.Errorf("stage 2 config has a stage 3 key: %v", z)
	}
}
