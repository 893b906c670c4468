package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// TokenizerTrain is model.tokenizer's value for a tokenizer the payload
// trains on prep's output (byte-level BPE with a chat template).
const TokenizerTrain = "train"

// LoRA is train.lora: train a LoRA adapter (peft) instead of every weight.
type LoRA struct {
	R             int      `yaml:"r,omitempty"`
	Alpha         float64  `yaml:"alpha,omitempty"`
	Dropout       *float64 `yaml:"dropout,omitempty"`
	TargetModules []string `yaml:"target_modules,omitempty"`
	// Merge merges the adapter into the base weights at the end, so the
	// final directory is a plain model (default true).
	Merge *bool `yaml:"merge,omitempty"`
}

// Merges reports whether the adapter is merged at the end.
func (l LoRA) Merges() bool { return l.Merge == nil || *l.Merge }

// localModelPath reports whether a model.base or model.tokenizer value
// names a directory rather than a hub id: absolute, ./ or ../, or ~.
func localModelPath(s string) bool {
	return filepath.IsAbs(s) || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") || strings.HasPrefix(s, "~")
}

// resolveModelPaths makes model.config, and model.base or model.tokenizer
// when they are local paths, absolute against the pipeline file's
// directory; hub ids stay as they are.
func (p *Pipeline) resolveModelPaths() {
	m := &p.Model
	if m.Config != "" && !filepath.IsAbs(m.Config) && !strings.HasPrefix(m.Config, "~") {
		m.Config = filepath.Join(p.Dir, m.Config)
	}
	for _, s := range []*string{&m.Base, &m.Tokenizer} {
		if strings.HasPrefix(*s, "./") || strings.HasPrefix(*s, "../") {
			*s = filepath.Join(p.Dir, *s)
		}
	}
}

// validateModel checks what a Hugging Face payload needs to build the model
// and to write a final directory that from_pretrained loads: model.base or
// model.config (not both), the config's shape, a tokenizer (with a chat
// template for chat data), LoRA's settings, and DeepSpeed ZeRO-3 saving the
// full weights. Hub ids are the user's business and are not looked up.
func (p *Pipeline) validateModel(file string) Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Pos: p.posOrParent(key), Msg: key + ": " + fmt.Sprintf(format, args...)})
	}
	m := p.Model
	// Validation runs before resolvePaths: local paths are read against
	// the pipeline's directory and named as the file gives them.
	local := func(s string) string {
		if s == "" || filepath.IsAbs(s) || strings.HasPrefix(s, "~") {
			return s
		}
		return filepath.Join(p.Dir, s)
	}
	shown := func(s string) string { return shownPath(file, s) }
	if m.Base != "" && m.Config != "" {
		bad("model.config", "model.base is set too: a model is either loaded from model.base or built from model.config")
	}
	// The model's files are read here only where the jobs see this host's
	// files (local, and REST without cluster.ssh); over SSH, submit and
	// validate --cluster look them up on the login node (chain.CheckFiles).
	if !p.FilesLocal() {
		if m.Config == "" && m.Base == "" && m.Tokenizer == "" {
			return errs
		}
		if m.Config != "" && m.Tokenizer == "" {
			bad("model.config", "a model built from a config needs model.tokenizer (a hub id or directory, or %q to train one on the prep output)", TokenizerTrain)
		}
		return append(errs, p.validateLoRA(file)...)
	}
	if m.Base != "" && localModelPath(m.Base) {
		if msg := modelDirProblem(local(m.Base), m.Base, "config.json"); msg != "" {
			bad("model.base", "%s", msg)
		}
	}
	tokDir := "" // a local tokenizer directory, to look for a chat template in
	switch {
	case m.Tokenizer == TokenizerTrain:
	case m.Tokenizer != "" && localModelPath(m.Tokenizer):
		if msg := modelDirProblem(local(m.Tokenizer), m.Tokenizer, "tokenizer_config.json"); msg != "" {
			bad("model.tokenizer", "%s", msg)
		} else {
			tokDir = m.Tokenizer
		}
	case m.Tokenizer == "" && m.Config != "":
		bad("model.config", "a model built from a config needs model.tokenizer (a hub id or directory, or %q to train one on the prep output)", TokenizerTrain)
	case m.Tokenizer == "" && localModelPath(m.Base) && modelDirProblem(local(m.Base), m.Base, "config.json") == "":
		tokDir = m.Base
	}
	if m.Config != "" {
		errs = append(errs, checkModelConfig(file, p.posOrParent("model.config"), local(m.Config), shown(m.Config))...)
	}
	if p.Data.Format == "chat" && tokDir != "" && !hasChatTemplate(local(tokDir)) {
		key := "model.tokenizer"
		if m.Tokenizer == "" {
			key = "model.base"
		}
		bad(key, "data.format is chat but the tokenizer in %s has no chat template (tokenizer_config.json chat_template or chat_template.jinja); use a chat model's tokenizer or model.tokenizer: %s", tokDir, TokenizerTrain)
	}
	return append(errs, p.validateLoRA(file)...)
}

// shownPath names a path of the pipeline as the file gives it, relative to
// the directory of the name it was loaded by.
func shownPath(file, s string) string {
	if s == "" || filepath.IsAbs(s) || strings.HasPrefix(s, "~") {
		return s
	}
	return filepath.Join(filepath.Dir(file), s)
}

// FilesLocal reports whether the jobs see this host's files: the local
// transport, and REST without cluster.ssh (a shared filesystem).
func (p *Pipeline) FilesLocal() bool {
	return p.Cluster.Transport == "local" || p.Cluster.Transport == "rest" && p.Cluster.SSH.Host == ""
}

// validateLoRA checks train.lora and a DeepSpeed config file's ZeRO-3
// saving.
func (p *Pipeline) validateLoRA(file string) Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Pos: p.posOrParent(key), Msg: key + ": " + fmt.Sprintf(format, args...)})
	}
	m := p.Model
	shown := func(s string) string { return shownPath(file, s) }
	if l := p.Train.LoRA; l != nil {
		if l.R < 1 {
			bad("train.lora.r", "the LoRA rank must be at least 1, not %d", l.R)
		}
		if l.Alpha < 0 {
			bad("train.lora.alpha", "must not be negative, not %g", l.Alpha)
		}
		if d := l.Dropout; d != nil && (*d < 0 || *d >= 1) {
			bad("train.lora.dropout", "must be in [0, 1), not %g", *d)
		}
		for i, t := range l.TargetModules {
			if strings.TrimSpace(t) == "" {
				bad(fmt.Sprintf("train.lora.target_modules[%d]", i), "must not be empty")
			}
		}
		if !l.Merges() && m.Base == "" {
			bad("train.lora.merge", "an unmerged adapter needs model.base to be applied to; a model built from model.config is random and cannot be rebuilt: merge it (the default)")
		}
	}
	if ds := p.Train.DeepSpeed; ds != nil && ds.ConfigFile != "" && ds.raw != nil {
		errs = append(errs, zero3SavesWeights(shown(ds.ConfigFile), ds.raw)...)
	}
	return errs
}

// modelDirProblem says what is wrong with a local model or tokenizer
// directory, or "" when it holds want.
func modelDirProblem(dir, name, want string) string {
	st, err := os.Stat(expandHome(dir))
	switch {
	case err != nil:
		return fmt.Sprintf("%s: no such directory", name)
	case !st.IsDir():
		return fmt.Sprintf("%s is not a directory (a model directory holds %s)", name, want)
	}
	if _, err := os.Stat(filepath.Join(expandHome(dir), want)); err != nil {
		return fmt.Sprintf("%s has no %s: not a Hugging Face model directory", name, want)
	}
	return ""
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[2:])
		}
	}
	return p
}

func hasChatTemplate(dir string) bool {
	dir = expandHome(dir)
	if _, err := os.Stat(filepath.Join(dir, "chat_template.jinja")); err == nil {
		return true
	}
	b, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return false
	}
	var tc struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if json.Unmarshal(b, &tc) != nil {
		return false
	}
	t := bytes.TrimSpace(tc.ChatTemplate)
	return len(t) > 0 && !bytes.Equal(t, []byte("null")) && !bytes.Equal(t, []byte(`""`))
}

// checkModelConfig reads model.config (an HF config.json) and refuses one
// the payload cannot build a model from: not JSON (at its line and column),
// no model_type, sizes that are not positive whole numbers, or attention
// heads that do not divide the hidden size.
func checkModelConfig(file string, at Pos, path, shown string) Errors {
	data, err := os.ReadFile(expandHome(path))
	if err != nil {
		return Errors{{File: file, Pos: at, Msg: "model.config: " + strings.TrimPrefix(strings.Replace(err.Error(), path, shown, 1), "open ")}}
	}
	path = shown
	pos, err := jsonPositions(data)
	if err != nil {
		var pe *jsonPosError
		if errors.As(err, &pe) {
			return Errors{{File: path, Pos: pe.pos, Msg: "model config: " + pe.msg}}
		}
		return Errors{{File: path, Msg: "model config: " + err.Error()}}
	}
	var cfg map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&cfg); err != nil || cfg == nil {
		return Errors{{File: path, Pos: pos[""], Msg: "model config: want a JSON object (an HF config.json)"}}
	}
	var errs Errors
	badAt := func(key, format string, args ...any) {
		p, ok := pos[key]
		if !ok {
			p = pos[""]
		}
		errs = append(errs, &FieldError{File: path, Pos: p, Msg: key + ": " + fmt.Sprintf(format, args...)})
	}
	if mt, ok := cfg["model_type"].(string); !ok || strings.TrimSpace(mt) == "" {
		badAt("model_type", "an HF config needs model_type (for example \"llama\") to build a model from")
	}
	ints := map[string]int{}
	for _, k := range []string{"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings"} {
		v, ok := cfg[k]
		if !ok || v == nil {
			continue
		}
		n, isNum := v.(json.Number)
		f, err := n.Float64()
		if !isNum || err != nil || f != math.Trunc(f) || f < 1 || f > 1<<31 {
			badAt(k, "must be a whole number of at least 1, not %v", v)
			continue
		}
		ints[k] = int(f)
	}
	if h, n := ints["hidden_size"], ints["num_attention_heads"]; h > 0 && n > 0 && h%n != 0 {
		badAt("num_attention_heads", "%d attention heads do not divide hidden_size %d", n, h)
	}
	if n, kv := ints["num_attention_heads"], ints["num_key_value_heads"]; n > 0 && kv > 0 && n%kv != 0 {
		badAt("num_key_value_heads", "%d key/value heads do not divide num_attention_heads %d", kv, n)
	}
	return errs
}

// zero3SavesWeights refuses a user's ZeRO-3 DeepSpeed config that would save
// only DeepSpeed's partitioned shards at the end: without
// stage3_gather_16bit_weights_on_model_save the final directory has no HF
// weights, and eval's from_pretrained and the deploy would both fail.
func zero3SavesWeights(shown string, data []byte) Errors {
	pos, err := jsonPositions(data)
	if err != nil {
		return nil // reported by the DeepSpeed checks
	}
	var cfg struct {
		Zero struct {
			Stage  json.Number `json:"stage"`
			Gather *bool       `json:"stage3_gather_16bit_weights_on_model_save"`
			Old    *bool       `json:"stage3_gather_fp16_weights_on_model_save"`
		} `json:"zero_optimization"`
	}
	if json.Unmarshal(data, &cfg) != nil || cfg.Zero.Stage.String() != "3" {
		return nil
	}
	gather := cfg.Zero.Gather
	if gather == nil {
		gather = cfg.Zero.Old // DeepSpeed's older spelling
	}
	if gather != nil && *gather {
		return nil
	}
	key := "zero_optimization.stage3_gather_16bit_weights_on_model_save"
	p, ok := pos[key]
	if !ok {
		p = pos["zero_optimization.stage"]
	}
	return Errors{{File: shown, Pos: p, Msg: key + ": ZeRO-3 must gather the weights on save (set it to true): without it the final directory holds only DeepSpeed shards, which from_pretrained cannot load"}}
}
