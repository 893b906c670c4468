package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// DeepSpeed is train.deepspeed: the DeepSpeed configuration slurmtune writes
// to ds_config.json in the run directory (the payload finds it in
// SLURMTUNE_DS_CONFIG). Either ConfigFile names the user's own JSON, or the
// other fields describe it. Unset numbers are nil.
type DeepSpeed struct {
	// ConfigFile is a DeepSpeed JSON config used as is (after the same
	// checks as a generated one).
	ConfigFile string `yaml:"config_file,omitempty"`
	// ZeroStage is the ZeRO stage, 0 (off) to 3.
	ZeroStage        *int       `yaml:"zero_stage,omitempty"`
	OffloadOptimizer *DSOffload `yaml:"offload_optimizer,omitempty"`
	OffloadParam     *DSOffload `yaml:"offload_param,omitempty"`
	// Precision is fp32, fp16 or bf16 (unset: fp32, or "auto" with HFAuto).
	Precision string `yaml:"precision,omitempty"`
	// FP16 holds the loss-scale settings of precision fp16.
	FP16                      *DSFP16  `yaml:"fp16,omitempty"`
	GradientClipping          *float64 `yaml:"gradient_clipping,omitempty"`
	MicroBatchSize            *int     `yaml:"micro_batch_size,omitempty"`
	GradientAccumulationSteps *int     `yaml:"gradient_accumulation_steps,omitempty"`
	// TrainBatchSize, when given, must equal micro x accumulation x world
	// size; it is computed otherwise.
	TrainBatchSize *int `yaml:"train_batch_size,omitempty"`
	// HFAuto writes "auto" for every value the Hugging Face Trainer fills
	// in from its own arguments (batch sizes, accumulation, clipping,
	// precision) and that the file leaves unset.
	HFAuto bool `yaml:"hf_auto,omitempty"`

	// raw is ConfigFile's content as validated.
	raw []byte
}

// DSOffload is train.deepspeed.offload_optimizer or offload_param.
type DSOffload struct {
	Device    string `yaml:"device"`
	NVMePath  string `yaml:"nvme_path,omitempty"`
	PinMemory *bool  `yaml:"pin_memory,omitempty"`
}

// DSFP16 is train.deepspeed.fp16: DeepSpeed's loss scaling (loss_scale 0
// is dynamic).
type DSFP16 struct {
	LossScale         *float64 `yaml:"loss_scale,omitempty"`
	InitialScalePower *int     `yaml:"initial_scale_power,omitempty"`
	LossScaleWindow   *int     `yaml:"loss_scale_window,omitempty"`
	Hysteresis        *int     `yaml:"hysteresis,omitempty"`
	MinLossScale      *float64 `yaml:"min_loss_scale,omitempty"`
}

// DeepSpeedOn reports whether the train stage uses DeepSpeed (and so gets
// a ds_config.json).
func (t Train) DeepSpeedOn() bool { return t.DeepSpeed != nil || t.Launcher == "deepspeed" }

// DSConfigName is the DeepSpeed config's file name in the run directory
// (and beside train.sbatch from render).
const DSConfigName = "ds_config.json"

// DeepSpeedConfig returns ds_config.json for the train stage: the user's
// config_file as validated, or one generated from train.deepspeed. It is
// nil when DeepSpeed is off.
func (t Train) DeepSpeedConfig() ([]byte, error) {
	if !t.DeepSpeedOn() {
		return nil, nil
	}
	ds := t.DeepSpeed
	if ds == nil {
		ds = &DeepSpeed{}
	}
	if ds.ConfigFile != "" {
		if ds.raw == nil {
			b, err := os.ReadFile(ds.ConfigFile)
			if err != nil {
				return nil, fmt.Errorf("train.deepspeed.config_file: %w", err)
			}
			return b, nil
		}
		return ds.raw, nil
	}
	world := t.WorldSize()
	auto := func(set bool) bool { return !set && ds.HFAuto }
	cfg := map[string]any{}
	micro, accum := 1, 1
	if ds.MicroBatchSize != nil {
		micro = *ds.MicroBatchSize
	}
	if ds.GradientAccumulationSteps != nil {
		accum = *ds.GradientAccumulationSteps
	}
	if auto(ds.MicroBatchSize != nil) {
		cfg["train_micro_batch_size_per_gpu"] = "auto"
	} else {
		cfg["train_micro_batch_size_per_gpu"] = micro
	}
	if auto(ds.GradientAccumulationSteps != nil) {
		cfg["gradient_accumulation_steps"] = "auto"
	} else {
		cfg["gradient_accumulation_steps"] = accum
	}
	switch {
	case ds.TrainBatchSize != nil:
		cfg["train_batch_size"] = *ds.TrainBatchSize
	case auto(ds.MicroBatchSize != nil) || auto(ds.GradientAccumulationSteps != nil):
		cfg["train_batch_size"] = "auto"
	default:
		cfg["train_batch_size"] = micro * accum * world
	}
	if ds.GradientClipping != nil {
		cfg["gradient_clipping"] = *ds.GradientClipping
	} else if ds.HFAuto {
		cfg["gradient_clipping"] = "auto"
	}
	zero := map[string]any{"stage": 0}
	if ds.ZeroStage != nil {
		zero["stage"] = *ds.ZeroStage
	}
	for key, o := range map[string]*DSOffload{"offload_optimizer": ds.OffloadOptimizer, "offload_param": ds.OffloadParam} {
		if o == nil {
			continue
		}
		m := map[string]any{"device": o.Device}
		if o.NVMePath != "" {
			m["nvme_path"] = o.NVMePath
		}
		if o.PinMemory != nil {
			m["pin_memory"] = *o.PinMemory
		}
		zero[key] = m
	}
	if zero["stage"] == 3 {
		// Without it the final save holds only DeepSpeed's partitioned
		// shards: no HF weights for from_pretrained (eval, deploy).
		zero["stage3_gather_16bit_weights_on_model_save"] = true
	}
	cfg["zero_optimization"] = zero
	switch ds.Precision {
	case "fp16":
		fp := map[string]any{"enabled": true}
		if f := ds.FP16; f != nil {
			put := func(k string, v any, ok bool) {
				if ok {
					fp[k] = v
				}
			}
			put("loss_scale", deref(f.LossScale), f.LossScale != nil)
			put("initial_scale_power", deref(f.InitialScalePower), f.InitialScalePower != nil)
			put("loss_scale_window", deref(f.LossScaleWindow), f.LossScaleWindow != nil)
			put("hysteresis", deref(f.Hysteresis), f.Hysteresis != nil)
			put("min_loss_scale", deref(f.MinLossScale), f.MinLossScale != nil)
		}
		cfg["fp16"] = fp
		cfg["bf16"] = map[string]any{"enabled": false}
	case "bf16":
		cfg["fp16"] = map[string]any{"enabled": false}
		cfg["bf16"] = map[string]any{"enabled": true}
	case "fp32":
		cfg["fp16"] = map[string]any{"enabled": false}
		cfg["bf16"] = map[string]any{"enabled": false}
	default: // unset
		if ds.HFAuto {
			cfg["fp16"] = map[string]any{"enabled": "auto"}
			cfg["bf16"] = map[string]any{"enabled": "auto"}
		} else {
			cfg["fp16"] = map[string]any{"enabled": false}
			cfg["bf16"] = map[string]any{"enabled": false}
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("ds_config.json: %w", err)
	}
	return append(b, '\n'), nil
}

func deref[T any](p *T) T { return *p }

// dsValue is one setting of a DeepSpeed config, wherever it came from.
type dsValue struct {
	key  string // its name in messages
	pos  Pos
	set  bool
	auto bool    // "auto"
	num  float64 // a number
	str  string  // a string
	bad  string  // a type problem, reported as is
}

// dsSettings is what the checks need of a DeepSpeed config.
type dsSettings struct {
	file                                       string
	stage                                      dsValue
	optDevice, optPath, paramDevice, paramPath dsValue
	fp16, bf16                                 dsValue // num 1: enabled
	lossScale                                  dsValue
	micro, accum, batch                        dsValue
	clipping                                   dsValue
}

// checkDeepSpeed applies DeepSpeed's own rules (checked against DeepSpeed's
// ZeRO config and tests: parameter offload and NVMe offload need stage 3,
// optimizer offload needs stage 1 or above, batch sizes must agree).
func checkDeepSpeed(s dsSettings, world int, worldHow string) Errors {
	var errs Errors
	bad := func(v dsValue, format string, args ...any) {
		errs = append(errs, &FieldError{File: s.file, Pos: v.pos, Msg: v.key + ": " + fmt.Sprintf(format, args...)})
	}
	for _, v := range []dsValue{s.stage, s.optDevice, s.optPath, s.paramDevice, s.paramPath, s.fp16, s.bf16, s.lossScale, s.micro, s.accum, s.batch, s.clipping} {
		if v.bad != "" {
			bad(v, "%s", v.bad)
		}
	}
	stage := 0
	if s.stage.set && s.stage.bad == "" {
		if s.stage.auto || s.stage.num != math.Trunc(s.stage.num) || s.stage.num < 0 || s.stage.num > 3 {
			bad(s.stage, "ZeRO stage must be 0, 1, 2 or 3, not %s", s.stage.show())
			stage = -1
		} else {
			stage = int(s.stage.num)
		}
	}
	device := func(v dsValue) string {
		if !v.set || v.bad != "" {
			return ""
		}
		switch v.str {
		case "none", "cpu", "nvme":
			return v.str
		}
		bad(v, "offload device must be none, cpu or nvme, not %s", v.show())
		return ""
	}
	od, pd := device(s.optDevice), device(s.paramDevice)
	if stage >= 0 {
		switch {
		case od == "nvme" && stage != 3:
			bad(s.optDevice, "NVMe optimizer offload needs ZeRO stage 3 (ZeRO-Infinity); stage is %d (use device cpu below stage 3)", stage)
		case od == "cpu" && stage == 0:
			bad(s.optDevice, "optimizer offload needs ZeRO stage 1, 2 or 3; stage is 0")
		}
		if (pd == "cpu" || pd == "nvme") && stage != 3 {
			bad(s.paramDevice, "parameter offload needs ZeRO stage 3; stage is %d", stage)
		}
	}
	if od == "nvme" && strings.TrimSpace(s.optPath.str) == "" {
		bad(s.optDevice, "NVMe offload needs nvme_path (a directory on a local NVMe drive)")
	}
	if pd == "nvme" && strings.TrimSpace(s.paramPath.str) == "" {
		bad(s.paramDevice, "NVMe offload needs nvme_path (a directory on a local NVMe drive)")
	}
	if s.fp16.set && s.bf16.set && s.fp16.num == 1 && s.bf16.num == 1 && !s.fp16.auto && !s.bf16.auto {
		bad(s.bf16, "fp16 and bf16 are both enabled; enable one")
	}
	if s.lossScale.set && !s.lossScale.auto && s.lossScale.bad == "" && s.lossScale.num < 0 {
		bad(s.lossScale, "loss scale must not be negative (0 is dynamic), not %s", s.lossScale.show())
	}
	if s.clipping.set && !s.clipping.auto && s.clipping.bad == "" && s.clipping.num < 0 {
		bad(s.clipping, "gradient clipping must not be negative, not %s", s.clipping.show())
	}
	whole := func(v dsValue) (int, bool) {
		if !v.set || v.auto || v.bad != "" {
			return 0, false
		}
		if v.num != math.Trunc(v.num) || v.num < 1 || v.num > 1<<40 {
			bad(v, "must be a whole number of at least 1, not %s", v.show())
			return 0, false
		}
		return int(v.num), true
	}
	m, mok := whole(s.micro)
	a, aok := whole(s.accum)
	b, bok := whole(s.batch)
	switch {
	case bok && mok && aok:
		if m*a*world != b {
			bad(s.batch, "%d is not %s x %s x world size = %d x %d x %d (%s) = %d", b, s.micro.key, s.accum.key, m, a, world, worldHow, m*a*world)
		}
	case bok && mok:
		if b%(m*world) != 0 {
			bad(s.batch, "%d is not a multiple of %s x world size = %d x %d (%s)", b, s.micro.key, m, world, worldHow)
		}
	case bok && aok:
		if b%(a*world) != 0 {
			bad(s.batch, "%d is not a multiple of %s x world size = %d x %d (%s)", b, s.accum.key, a, world, worldHow)
		}
	case bok && !s.micro.set && !s.accum.set:
		if b%world != 0 {
			bad(s.batch, "%d is not a multiple of the world size %d (%s)", b, world, worldHow)
		}
	}
	return errs
}

func (v dsValue) show() string {
	switch {
	case v.auto:
		return `"auto"`
	case v.str != "":
		return fmt.Sprintf("%q", v.str)
	}
	return fmt.Sprintf("%g", v.num)
}

// validateDeepSpeed checks train.deepspeed, or the JSON file it names.
func (p *Pipeline) validateDeepSpeed(file string) Errors {
	t := p.Train
	if !t.DeepSpeedOn() || t.Nodes < 1 || t.ProcsPerNode() < 1 {
		return nil
	}
	world := t.WorldSize()
	worldHow := fmt.Sprintf("%d nodes x %d GPUs", t.Nodes, t.GPUsPerNode)
	if t.GPUsPerNode == 0 {
		worldHow = fmt.Sprintf("%d nodes x %d tasks, no GPUs", t.Nodes, t.TasksPerNode)
	}
	ds := t.DeepSpeed
	if ds == nil {
		return nil
	}
	const pre = "train.deepspeed"
	val := func(key string) dsValue {
		v := dsValue{key: pre + "." + key}
		v.pos = p.posOrParent(v.key)
		return v
	}
	num := func(key string, set bool, x float64) dsValue {
		v := val(key)
		v.set, v.num = set, x
		return v
	}
	if ds.ConfigFile != "" {
		var errs Errors
		for _, k := range []struct {
			name string
			set  bool
		}{{"zero_stage", ds.ZeroStage != nil}, {"offload_optimizer", ds.OffloadOptimizer != nil}, {"offload_param", ds.OffloadParam != nil},
			{"precision", ds.Precision != ""}, {"fp16", ds.FP16 != nil}, {"gradient_clipping", ds.GradientClipping != nil},
			{"micro_batch_size", ds.MicroBatchSize != nil}, {"gradient_accumulation_steps", ds.GradientAccumulationSteps != nil},
			{"train_batch_size", ds.TrainBatchSize != nil}, {"hf_auto", ds.HFAuto}} {
			if k.set {
				v := val(k.name)
				errs = append(errs, &FieldError{File: file, Pos: v.pos, Msg: v.key + ": config_file is used as is; set this in the file instead"})
			}
		}
		path := ds.ConfigFile
		shown := path
		if !filepath.IsAbs(path) {
			shown = filepath.Join(filepath.Dir(file), path)
			path = filepath.Join(p.Dir, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			v := val("config_file")
			return append(errs, &FieldError{File: file, Pos: v.pos, Msg: v.key + ": " + strings.TrimPrefix(err.Error(), "open ")})
		}
		p.Train.DeepSpeed.raw = data
		s, perrs := dsSettingsFromJSON(shown, data)
		if len(perrs) > 0 {
			return append(errs, perrs...)
		}
		return append(errs, checkDeepSpeed(s, world, worldHow)...)
	}
	s := dsSettings{file: file}
	s.stage = num("zero_stage", ds.ZeroStage != nil, float64(derefOr(ds.ZeroStage, 0)))
	offload := func(key string, o *DSOffload) (dev, path dsValue) {
		dev, path = val(key+".device"), val(key+".nvme_path")
		if o == nil {
			return dev, path
		}
		dev.set, dev.str = true, o.Device
		if o.Device == "" {
			dev.bad = "the offload device is required (none, cpu or nvme)"
		}
		path.set, path.str = o.NVMePath != "", o.NVMePath
		return dev, path
	}
	s.optDevice, s.optPath = offload("offload_optimizer", ds.OffloadOptimizer)
	s.paramDevice, s.paramPath = offload("offload_param", ds.OffloadParam)
	var errs Errors
	switch ds.Precision {
	case "", "fp32", "fp16", "bf16":
	default:
		v := val("precision")
		errs = append(errs, &FieldError{File: file, Pos: v.pos, Msg: v.key + fmt.Sprintf(": must be fp32, fp16 or bf16, not %q", ds.Precision)})
	}
	if ds.FP16 != nil && ds.Precision != "fp16" {
		v := val("fp16")
		prec := ds.Precision
		if prec == "" {
			prec = "unset (fp32)"
		}
		errs = append(errs, &FieldError{File: file, Pos: v.pos, Msg: v.key + ": loss-scale settings apply to precision fp16; precision is " + prec})
	}
	if f := ds.FP16; f != nil {
		s.lossScale = num("fp16.loss_scale", f.LossScale != nil, derefOr(f.LossScale, 0))
		for _, x := range []struct {
			key string
			v   *int
			min int
		}{{"fp16.initial_scale_power", f.InitialScalePower, 0}, {"fp16.loss_scale_window", f.LossScaleWindow, 1}, {"fp16.hysteresis", f.Hysteresis, 1}} {
			if x.v != nil && *x.v < x.min {
				v := val(x.key)
				errs = append(errs, &FieldError{File: file, Pos: v.pos, Msg: fmt.Sprintf("%s: must be at least %d, not %d", v.key, x.min, *x.v)})
			}
		}
		if f.MinLossScale != nil && *f.MinLossScale <= 0 {
			v := val("fp16.min_loss_scale")
			errs = append(errs, &FieldError{File: file, Pos: v.pos, Msg: fmt.Sprintf("%s: must be above 0, not %g", v.key, *f.MinLossScale)})
		}
	}
	s.clipping = num("gradient_clipping", ds.GradientClipping != nil, derefOr(ds.GradientClipping, 0))
	s.micro = num("micro_batch_size", ds.MicroBatchSize != nil, float64(derefOr(ds.MicroBatchSize, 0)))
	s.accum = num("gradient_accumulation_steps", ds.GradientAccumulationSteps != nil, float64(derefOr(ds.GradientAccumulationSteps, 0)))
	s.batch = num("train_batch_size", ds.TrainBatchSize != nil, float64(derefOr(ds.TrainBatchSize, 0)))
	if ds.HFAuto && ds.TrainBatchSize != nil && (ds.MicroBatchSize == nil || ds.GradientAccumulationSteps == nil) {
		v := val("train_batch_size")
		errs = append(errs, &FieldError{File: file, Pos: v.pos, Msg: v.key + ": with hf_auto, set micro_batch_size and gradient_accumulation_steps too (or neither, and let the Trainer fill all three)"})
	}
	return append(errs, checkDeepSpeed(s, world, worldHow)...)
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// dsSettingsFromJSON reads a DeepSpeed JSON config, with the position of
// every value for messages naming its keys.
func dsSettingsFromJSON(name string, data []byte) (dsSettings, Errors) {
	s := dsSettings{file: name}
	pos, err := jsonPositions(data)
	if err != nil {
		var pe *jsonPosError
		if errors.As(err, &pe) {
			return s, Errors{{File: name, Pos: pe.pos, Msg: "DeepSpeed config: " + pe.msg}}
		}
		return s, Errors{{File: name, Msg: "DeepSpeed config: " + err.Error()}}
	}
	var root any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return s, Errors{{File: name, Msg: "DeepSpeed config: " + err.Error()}}
	}
	if _, ok := root.(map[string]any); !ok {
		return s, Errors{{File: name, Pos: pos[""], Msg: "DeepSpeed config: want a JSON object"}}
	}
	get := func(path string) (any, bool) {
		cur := any(root)
		for _, k := range strings.Split(path, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[k]; !ok {
				return nil, false
			}
		}
		return cur, true
	}
	at := func(path string) Pos {
		for p := path; ; {
			if x, ok := pos[p]; ok {
				return x
			}
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				return pos[""]
			}
			p = p[:i]
		}
	}
	// value reads the key at path: unset (missing or null), or set and
	// decoded by decode, which sets v.num, v.str, v.auto or v.bad.
	value := func(path string, decode func(v *dsValue, x any)) dsValue {
		v := dsValue{key: path, pos: at(path)}
		if x, ok := get(path); ok && x != nil {
			v.set = true
			decode(&v, x)
		}
		return v
	}
	number := func(path string) dsValue {
		return value(path, func(v *dsValue, x any) {
			switch x := x.(type) {
			case json.Number:
				f, err := x.Float64()
				if err != nil {
					v.bad = fmt.Sprintf("%s is not a number", x)
				}
				v.num = f
			case string:
				if x == "auto" {
					v.auto = true
				} else {
					v.bad = fmt.Sprintf(`want a number or "auto", not %q`, x)
				}
			default:
				v.bad = fmt.Sprintf(`want a number or "auto", not %s`, jsonKind(x))
			}
		})
	}
	str := func(path string) dsValue {
		return value(path, func(v *dsValue, x any) {
			if sv, ok := x.(string); ok {
				v.str = sv
			} else {
				v.bad = "want a string, not " + jsonKind(x)
			}
		})
	}
	enabled := func(path string) dsValue {
		return value(path, func(v *dsValue, x any) {
			switch x := x.(type) {
			case bool:
				if x {
					v.num = 1
				}
			case string:
				if x == "auto" {
					v.auto = true
				} else {
					v.bad = fmt.Sprintf(`want true, false or "auto", not %q`, x)
				}
			default:
				v.bad = `want true, false or "auto", not ` + jsonKind(x)
			}
		})
	}
	s.stage = number("zero_optimization.stage")
	s.optDevice = str("zero_optimization.offload_optimizer.device")
	s.optPath = str("zero_optimization.offload_optimizer.nvme_path")
	s.paramDevice = str("zero_optimization.offload_param.device")
	s.paramPath = str("zero_optimization.offload_param.nvme_path")
	s.fp16 = enabled("fp16.enabled")
	s.bf16 = enabled("bf16.enabled")
	if !s.bf16.set {
		s.bf16 = enabled("bfloat16.enabled") // DeepSpeed's other spelling
	}
	s.lossScale = number("fp16.loss_scale")
	s.micro = number("train_micro_batch_size_per_gpu")
	s.accum = number("gradient_accumulation_steps")
	s.batch = number("train_batch_size")
	s.clipping = number("gradient_clipping")
	return s, nil
}

func jsonKind(x any) string {
	switch x.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	}
	return "null"
}

type jsonPosError struct {
	pos Pos
	msg string
}

func (e *jsonPosError) Error() string { return fmt.Sprintf("%d:%d: %s", e.pos.Line, e.pos.Col, e.msg) }

// jsonPositions maps the dotted path of every value in a JSON document
// ("" for the document, "a.b" for a key b in object a, "a[0]" for list
// items) to its line and column. Syntax errors and duplicate keys come
// back as a *jsonPosError.
func jsonPositions(data []byte) (map[string]Pos, error) {
	lineCol := func(off int) Pos {
		off = min(max(off, 0), len(data))
		line := bytes.Count(data[:off], []byte("\n")) + 1
		col := utf8.RuneCount(data[bytes.LastIndexByte(data[:off], '\n')+1:off]) + 1
		return Pos{Line: line, Col: col}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	start := func() int {
		off := int(dec.InputOffset())
		for off < len(data) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
			off++
		}
		return off
	}
	fail := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Offset is where the decoder was; the culprit is the next token.
			off := int(se.Offset)
			for off < len(data) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
				off++
			}
			return &jsonPosError{pos: lineCol(off), msg: se.Error()}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &jsonPosError{pos: lineCol(len(data)), msg: "unexpected end of JSON"}
		}
		return err
	}
	pos := map[string]Pos{}
	var walk func(path string) error
	walk = func(path string) error {
		off := start()
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		pos[path] = lineCol(off)
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				koff := start()
				kt, err := dec.Token()
				if err != nil {
					return fail(err)
				}
				key, _ := kt.(string)
				if seen[key] {
					return &jsonPosError{pos: lineCol(koff), msg: fmt.Sprintf("duplicate key %q", key)}
				}
				seen[key] = true
				child := key
				if path != "" {
					child = path + "." + key
				}
				if err := walk(child); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fail(err)
			}
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fail(err)
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	off := int(dec.InputOffset())
	for off < len(data) && strings.IndexByte(" \t\r\n", data[off]) >= 0 {
		off++
	}
	if off < len(data) {
		return nil, &jsonPosError{pos: lineCol(off), msg: "unexpected text after the JSON object"}
	}
	return pos, nil
}
