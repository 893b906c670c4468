package jobs

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// dsBase is a pipeline of 2 nodes x 4 GPUs (world size 8) whose train
// section ends with "train:" content the tests append to.
const dsBase = `name: ds
data: {inputs: [d.jsonl]}
train:
  script: train.py
  nodes: 2
  gpus_per_node: 4
  launcher: deepspeed
`

func TestDeepSpeedInvalid(t *testing.T) {
	tests := []struct {
		name string
		yaml string   // appended to dsBase (lines 8 and on)
		sets []string // --set overrides
		want []string // whole error lines after "p.yaml"
	}{
		{"fp16 settings with bf16", "  deepspeed:\n    precision: bf16\n    fp16: {loss_scale: 0}\n",
			nil, []string{`:10:11: train.deepspeed.fp16: loss-scale settings apply to precision fp16; precision is bf16`}},
		{"unknown precision", "  deepspeed: {precision: fp8}\n",
			nil, []string{`:8:26: train.deepspeed.precision: must be fp32, fp16 or bf16, not "fp8"`}},
		{"param offload below stage 3", "  deepspeed:\n    zero_stage: 2\n    offload_param: {device: cpu}\n",
			nil, []string{`:10:29: train.deepspeed.offload_param.device: parameter offload needs ZeRO stage 3; stage is 2`}},
		{"nvme optimizer offload below stage 3", "  deepspeed:\n    zero_stage: 2\n    offload_optimizer: {device: nvme, nvme_path: /local/nvme}\n",
			nil, []string{`:10:33: train.deepspeed.offload_optimizer.device: NVMe optimizer offload needs ZeRO stage 3 (ZeRO-Infinity); stage is 2 (use device cpu below stage 3)`}},
		{"optimizer offload at stage 0", "  deepspeed:\n    offload_optimizer: {device: cpu}\n",
			nil, []string{`:9:33: train.deepspeed.offload_optimizer.device: optimizer offload needs ZeRO stage 1, 2 or 3; stage is 0`}},
		{"stage above 3", "  deepspeed: {zero_stage: 4}\n",
			nil, []string{`:8:27: train.deepspeed.zero_stage: ZeRO stage must be 0, 1, 2 or 3, not 4`}},
		{"nvme without path", "  deepspeed:\n    zero_stage: 3\n    offload_param: {device: nvme}\n",
			nil, []string{`:10:29: train.deepspeed.offload_param.device: NVMe offload needs nvme_path (a directory on a local NVMe drive)`}},
		{"unknown offload device", "  deepspeed:\n    zero_stage: 3\n    offload_optimizer: {device: gpu}\n",
			nil, []string{`:10:33: train.deepspeed.offload_optimizer.device: offload device must be none, cpu or nvme, not "gpu"`}},
		{"offload without device", "  deepspeed:\n    zero_stage: 3\n    offload_optimizer: {pin_memory: true}\n",
			nil, []string{`:10:24: train.deepspeed.offload_optimizer.device: the offload device is required (none, cpu or nvme)`}},
		{"inconsistent batch sizes", "  deepspeed:\n    micro_batch_size: 4\n    gradient_accumulation_steps: 2\n    train_batch_size: 32\n",
			nil, []string{`:11:23: train.deepspeed.train_batch_size: 32 is not train.deepspeed.micro_batch_size x train.deepspeed.gradient_accumulation_steps x world size = 4 x 2 x 8 (2 nodes x 4 GPUs) = 64`}},
		{"batch not a multiple of micro x world", "  deepspeed: {micro_batch_size: 3, train_batch_size: 16}\n",
			nil, []string{`:8:54: train.deepspeed.train_batch_size: 16 is not a multiple of train.deepspeed.micro_batch_size x world size = 3 x 8 (2 nodes x 4 GPUs)`}},
		{"batch on CPU counts tasks", "  deepspeed: {micro_batch_size: 1, gradient_accumulation_steps: 1, train_batch_size: 8}\n",
			[]string{"train.gpus_per_node=0", "train.tasks_per_node=3"},
			[]string{`:8:86: train.deepspeed.train_batch_size: 8 is not train.deepspeed.micro_batch_size x train.deepspeed.gradient_accumulation_steps x world size = 1 x 1 x 6 (2 nodes x 3 tasks, no GPUs) = 6`}},
		{"zero micro batch", "  deepspeed: {micro_batch_size: 0}\n",
			nil, []string{`:8:33: train.deepspeed.micro_batch_size: must be a whole number of at least 1, not 0`}},
		{"negative clipping", "  deepspeed: {gradient_clipping: -1}\n",
			nil, []string{`:8:34: train.deepspeed.gradient_clipping: gradient clipping must not be negative, not -1`}},
		{"negative loss scale", "  deepspeed:\n    precision: fp16\n    fp16: {loss_scale: -1}\n",
			nil, []string{`:10:24: train.deepspeed.fp16.loss_scale: loss scale must not be negative (0 is dynamic), not -1`}},
		{"hf_auto with a half-given batch", "  deepspeed: {hf_auto: true, micro_batch_size: 2, train_batch_size: 16}\n",
			nil, []string{`:8:69: train.deepspeed.train_batch_size: with hf_auto, set micro_batch_size and gradient_accumulation_steps too (or neither, and let the Trainer fill all three)`}},
		{"several at once, in file order", "  deepspeed:\n    zero_stage: 1\n    offload_param: {device: nvme}\n    precision: fp32\n    fp16: {hysteresis: 0}\n",
			nil, []string{
				`:10:29: train.deepspeed.offload_param.device: parameter offload needs ZeRO stage 3; stage is 1`,
				`:10:29: train.deepspeed.offload_param.device: NVMe offload needs nvme_path (a directory on a local NVMe drive)`,
				`:12:11: train.deepspeed.fp16: loss-scale settings apply to precision fp16; precision is fp32`,
				`:12:24: train.deepspeed.fp16.hysteresis: must be at least 1, not 0`,
			}},
		{"set by --set", "", []string{"train.deepspeed.zero_stage=2", "train.deepspeed.offload_param.device=cpu"},
			[]string{`: --set train.deepspeed.offload_param.device: parameter offload needs ZeRO stage 3; stage is 2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", "/srv/p/p.yaml", []byte(dsBase+tt.yaml), LoadOptions{Sets: tt.sets})
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("err = %v, want Errors", err)
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = "p.yaml" + w
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}

// TestDeepSpeedConfigFileInvalid: the user's own JSON gets the same checks,
// with errors at its keys, in its file.
func TestDeepSpeedConfigFileInvalid(t *testing.T) {
	tests := []struct {
		name, json string
		want       []string // after "ds.json"
	}{
		{"fp16 with bf16", `{
  "fp16": {"enabled": true},
  "bf16": {"enabled": true}
}`, []string{`:3:23: bf16.enabled: fp16 and bf16 are both enabled; enable one`}},
		{"bfloat16 spelling", `{"fp16": {"enabled": true}, "bfloat16": {"enabled": true}}`,
			[]string{`:1:53: bfloat16.enabled: fp16 and bf16 are both enabled; enable one`}},
		{"param offload below stage 3", `{
  "zero_optimization": {
    "stage": 2,
    "offload_param": {"device": "cpu"}
  }
}`, []string{`:4:33: zero_optimization.offload_param.device: parameter offload needs ZeRO stage 3; stage is 2`}},
		{"nvme optimizer offload below stage 3", `{"zero_optimization": {"stage": 1, "offload_optimizer": {"device": "nvme", "nvme_path": "/nvme"}}}`,
			[]string{`:1:68: zero_optimization.offload_optimizer.device: NVMe optimizer offload needs ZeRO stage 3 (ZeRO-Infinity); stage is 1 (use device cpu below stage 3)`}},
		{"stage above 3", `{"zero_optimization": {"stage": 5}}`,
			[]string{`:1:33: zero_optimization.stage: ZeRO stage must be 0, 1, 2 or 3, not 5`}},
		{"nvme without path", `{"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}, "stage3_gather_16bit_weights_on_model_save": true}}`,
			[]string{`:1:64: zero_optimization.offload_param.device: NVMe offload needs nvme_path (a directory on a local NVMe drive)`}},
		{"inconsistent batch sizes", `{"train_batch_size": 10, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1}`,
			[]string{`:1:22: train_batch_size: 10 is not train_micro_batch_size_per_gpu x gradient_accumulation_steps x world size = 2 x 1 x 8 (2 nodes x 4 GPUs) = 16`}},
		{"auto is fine, a wrong string is not", `{"train_batch_size": "auto", "gradient_accumulation_steps": "lots"}`,
			[]string{`:1:61: gradient_accumulation_steps: want a number or "auto", not "lots"`}},
		{"wrong type", `{"fp16": {"enabled": 1}}`, []string{`:1:22: fp16.enabled: want true, false or "auto", not a number`}},
		{"syntax error", "{\n  \"zero_optimization\": {\"stage\": 2,}\n}", []string{`:2:36: DeepSpeed config: invalid character '}' looking for beginning of object key string`}},
		{"duplicate key", `{"train_batch_size": 8, "train_batch_size": 16}`, []string{`:1:25: DeepSpeed config: duplicate key "train_batch_size"`}},
		{"not an object", `[1, 2]`, []string{`:1:1: DeepSpeed config: want a JSON object`}},
		{"trailing text", `{} {}`, []string{`:1:4: DeepSpeed config: unexpected text after the JSON object`}},
		{"truncated", `{"a": [1,`, []string{`:1:10: DeepSpeed config: unexpected end of JSON`}},
		{"bad value", `{"a": x}`, []string{`:1:7: DeepSpeed config: invalid character 'x' looking for beginning of value`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "ds.json"), []byte(tt.json), 0o644); err != nil {
				t.Fatal(err)
			}
			src := dsBase + "  deepspeed: {config_file: ds.json}\n"
			_, err := Parse(filepath.Join(dir, "p.yaml"), filepath.Join(dir, "p.yaml"), []byte(src), LoadOptions{})
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("err = %v, want Errors", err)
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = filepath.Join(dir, "ds.json") + w
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}

func TestDeepSpeedConfigFileMixedWithKeys(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ds.json"), []byte(`{"zero_optimization": {"stage": 2}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src := dsBase + "  deepspeed: {config_file: ds.json, zero_stage: 3}\n"
	_, err := Parse("p.yaml", filepath.Join(dir, "p.yaml"), []byte(src), LoadOptions{})
	want := "p.yaml:8:49: train.deepspeed.zero_stage: config_file is used as is; set this in the file instead"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	src = dsBase + "  deepspeed: {config_file: missing.json}\n"
	_, err = Parse("p.yaml", filepath.Join(dir, "p.yaml"), []byte(src), LoadOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "p.yaml:8:28: train.deepspeed.config_file: ") || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing config file: %v", err)
	}
}

func dsConfig(t *testing.T, src string, sets ...string) map[string]any {
	t.Helper()
	p, err := Parse("p.yaml", "/srv/p/p.yaml", []byte(src), LoadOptions{Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Train.DeepSpeedConfig()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("ds_config.json is not JSON: %v\n%s", err, b)
	}
	return m
}

func TestDeepSpeedConfig(t *testing.T) {
	full := dsBase + `  deepspeed:
    zero_stage: 3
    offload_optimizer: {device: cpu, pin_memory: true}
    offload_param: {device: nvme, nvme_path: /local/nvme}
    precision: fp16
    fp16: {loss_scale: 0, initial_scale_power: 16, loss_scale_window: 1000, hysteresis: 2, min_loss_scale: 1}
    gradient_clipping: 1.0
    micro_batch_size: 4
    gradient_accumulation_steps: 8
`
	got := dsConfig(t, full)
	want := map[string]any{
		"train_micro_batch_size_per_gpu": 4.0, "gradient_accumulation_steps": 8.0,
		"train_batch_size":  256.0, // 4 x 8 x (2 nodes x 4 GPUs)
		"gradient_clipping": 1.0,
		"zero_optimization": map[string]any{"stage": 3.0,
			"offload_optimizer": map[string]any{"device": "cpu", "pin_memory": true},
			"offload_param":     map[string]any{"device": "nvme", "nvme_path": "/local/nvme"},
			"stage3_gather_16bit_weights_on_model_save": true},
		"fp16": map[string]any{"enabled": true, "loss_scale": 0.0, "initial_scale_power": 16.0, "loss_scale_window": 1000.0,
			"hysteresis": 2.0, "min_loss_scale": 1.0},
		"bf16": map[string]any{"enabled": false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ds_config.json:\n%v\nwant\n%v", got, want)
	}
	// On CPU the world size is nodes x tasks.
	if got := dsConfig(t, dsBase+"  deepspeed: {micro_batch_size: 2}\n", "train.gpus_per_node=0", "train.tasks_per_node=3"); got["train_batch_size"] != 12.0 {
		t.Errorf("CPU train_batch_size = %v, want 12 (2 x 2 nodes x 3 tasks)", got["train_batch_size"])
	}
	// The deepspeed launcher alone turns DeepSpeed on, with defaults.
	if got := dsConfig(t, dsBase); got["train_batch_size"] != 8.0 || !reflect.DeepEqual(got["zero_optimization"], map[string]any{"stage": 0.0}) {
		t.Errorf("default config: %v", got)
	}
	// hf_auto: what the HF Trainer fills in is "auto", unless given.
	got = dsConfig(t, dsBase+"  deepspeed: {hf_auto: true, zero_stage: 2, gradient_accumulation_steps: 4}\n")
	for k, v := range map[string]any{"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 4.0, "train_batch_size": "auto",
		"gradient_clipping": "auto", "fp16": map[string]any{"enabled": "auto"}, "bf16": map[string]any{"enabled": "auto"}} {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("hf_auto: %s = %v, want %v", k, got[k], v)
		}
	}
	// Off: no config.
	p, err := Parse("p.yaml", "/srv/p/p.yaml", []byte(dsBase), LoadOptions{Sets: []string{"train.launcher=srun", "train.tasks_per_node=4"}})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := p.Train.DeepSpeedConfig(); b != nil || err != nil || p.Train.DeepSpeedOn() {
		t.Errorf("DeepSpeed off: %s, %v", b, err)
	}
}

func TestDeepSpeedConfigFileUsedAsIs(t *testing.T) {
	dir := t.TempDir()
	content := []byte("{\n  \"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"cpu\"}, \"stage3_gather_16bit_weights_on_model_save\": true},\n  \"bf16\": {\"enabled\": \"auto\"},\n  \"train_batch_size\": \"auto\"\n}\n")
	if err := os.WriteFile(filepath.Join(dir, "ds.json"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Parse("p.yaml", filepath.Join(dir, "p.yaml"), []byte(dsBase+"  deepspeed: {config_file: ds.json}\n"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Train.DeepSpeed.ConfigFile != filepath.Join(dir, "ds.json") {
		t.Errorf("config_file not resolved against the pipeline's directory: %q", p.Train.DeepSpeed.ConfigFile)
	}
	// What was validated is what is written, even if the file changes since.
	if err := os.WriteFile(filepath.Join(dir, "ds.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := p.Train.DeepSpeedConfig(); err != nil || string(b) != string(content) {
		t.Errorf("DeepSpeedConfig = %q, %v; want the file as validated", b, err)
	}
}

func TestJSONPositions(t *testing.T) {
	src := []byte("{\n  \"a\": {\"b\": [1, {\"c\": true}]},\n\t\"é\": \"x\", \"d\": null\n}")
	pos, err := jsonPositions(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Pos{"": {Line: 1, Col: 1}, "a": {Line: 2, Col: 8}, "a.b": {Line: 2, Col: 14}, "a.b[0]": {Line: 2, Col: 15},
		"a.b[1]": {Line: 2, Col: 18}, "a.b[1].c": {Line: 2, Col: 24}, "é": {Line: 3, Col: 7}, "d": {Line: 3, Col: 17}}
	if !reflect.DeepEqual(pos, want) {
		t.Errorf("positions:\n%v\nwant\n%v", pos, want)
	}
}

func TestLaunchSettingsInvalid(t *testing.T) {
	tests := []struct {
		name string
		sets []string
		want string // after "p.yaml"
	}{
		{"signal", []string{"train.signal=TERM"}, `: --set train.signal: must be one of USR1, USR2, HUP, URG, XCPU, WINCH, not "TERM" (TERM and INT are how Slurm ends a job)`},
		{"grace", []string{"train.signal_grace=5"}, `: --set train.signal_grace: must be between 10 and 65535 seconds, not 5`},
		{"grace above the time limit", []string{"train.preemptible=true", "train.time=2", "train.signal_grace=120"},
			`: --set train.signal_grace: 120 s is not shorter than train.time (00:02:00): the job would be signalled as it starts`},
		{"restarts", []string{"train.max_restarts=-1"}, `: --set train.max_restarts: must not be negative`},
		{"port", []string{"train.master_port_base=80"}, `: --set train.master_port_base: must be between 1024 and 65000, not 80`},
		{"interface", []string{"train.network.interface=eth0; rm"}, `: --set train.network.interface: "eth0; rm" is not a network interface name (or NCCL/Gloo interface list)`},
		{"interface and env", []string{"train.network.interface=ib0", "environment.env.NCCL_SOCKET_IFNAME=eth0"},
			`: --set environment.env.NCCL_SOCKET_IFNAME: "eth0" differs from train.network.interface "ib0"; set one or the other`},
		{"container runtime", []string{"environment.container.runtime=docker", "environment.container.image=x.sif"},
			`: --set environment.container.runtime: must be apptainer or pyxis, not "docker"`},
		{"container image", []string{"environment.container.runtime=pyxis"}, `: --set environment.container.runtime: environment.container.image: the container image is required`},
		{"tasks per GPU", []string{"train.tasks_per_node=2"}, `: --set train.tasks_per_node: the deepspeed launcher starts one rank per GPU: tasks_per_node (2) must equal gpus_per_node (4)`},
		{"checkpoint", []string{"train.checkpoint.every_steps=-5"}, `: --set train.checkpoint.every_steps: must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", "/srv/p/p.yaml", []byte(dsBase), LoadOptions{Sets: tt.sets})
			if err == nil || err.Error() != "p.yaml"+tt.want {
				t.Errorf("err = %v\nwant p.yaml%s", err, tt.want)
			}
		})
	}
}

func TestLaunchDefaults(t *testing.T) {
	p, err := Parse("p.yaml", "/srv/p/p.yaml", []byte(dsBase), LoadOptions{Sets: []string{"train.signal=sigusr1"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Train
	if tr.Signal != "USR1" || tr.SignalGrace != DefaultSignalGrace || tr.Restarts() != DefaultMaxRestarts || tr.MasterPortBase != DefaultMasterPortBase ||
		tr.MasterPortRange() != MasterPortSpan || tr.WorldSize() != 8 || tr.Requeues() {
		t.Errorf("defaults: %+v", tr)
	}
	p, err = Parse("p.yaml", "/srv/p/p.yaml", []byte(dsBase), LoadOptions{Sets: []string{"train.max_restarts=0", "train.chain_time_limit=true", "train.master_port_base=60000"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Train.Restarts() != 0 || !p.Train.Requeues() || p.Train.MasterPortRange() != 5536 {
		t.Errorf("max_restarts 0 / chain / port range: %d %v %d", p.Train.Restarts(), p.Train.Requeues(), p.Train.MasterPortRange())
	}
	if got := p.Train.ChainedTime(0); got != p.Train.Time.Duration {
		t.Errorf("ChainedTime(unknown) = %v", got)
	}
	if got := p.Train.ChainedTime(30 * 60e9); got != 30*60e9 {
		t.Errorf("ChainedTime(30m) = %v", got)
	}
}
