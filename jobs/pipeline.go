// Package jobs is the pipeline file: its schema, strict parsing with
// file:line:col errors, --set overrides, validation and the resolved
// pipeline that templates render and runs snapshot.
package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Stage names, in chain order.
const (
	StagePrep   = "prep"
	StageTrain  = "train"
	StageEval   = "eval"
	StageDeploy = "deploy"
)

// StageOrder is the order in which stages run.
var StageOrder = []string{StagePrep, StageTrain, StageEval, StageDeploy}

// Pipeline is one pipeline file (schema version 1).
type Pipeline struct {
	Version     int         `yaml:"version"`
	Name        string      `yaml:"name"`
	Cluster     Cluster     `yaml:"cluster"`
	Workdir     string      `yaml:"workdir"`
	Model       Model       `yaml:"model"`
	Data        Data        `yaml:"data"`
	Prep        StageCommon `yaml:"prep"`
	Train       Train       `yaml:"train"`
	Eval        Eval        `yaml:"eval"`
	Deploy      Deploy      `yaml:"deploy"`
	Monitor     Monitor     `yaml:"monitor,omitempty"`
	Notify      Notify      `yaml:"notify,omitempty"`
	Environment Environment `yaml:"environment"`
	// Share is who may read a run's directory besides its owner: "private"
	// (default; directories 0700, files 0600, scripts 0700) or "group"
	// (0750, 0640, 0750).
	Share string `yaml:"share,omitempty"`
	// Sweep makes the run a sweep (see sweep.go); nil for one point.
	Sweep *Sweep `yaml:"sweep,omitempty"`

	// File is the pipeline file's absolute path; Dir its directory.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`
	// Pos maps every key path that was set (e.g. "train.nodes") to where.
	Pos map[string]Pos `yaml:"-"`
}

// Cluster says how to reach the cluster and which defaults to ask it for.
type Cluster struct {
	Transport string `yaml:"transport"`
	Partition string `yaml:"partition"`
	Account   string `yaml:"account"`
	QOS       string `yaml:"qos"`
	// Slurmtune is the slurmtune binary as the compute nodes see it, or
	// "upload" (copy this binary into the workdir before submitting). The
	// default is this binary's own path for the local transport and
	// upload otherwise.
	Slurmtune string  `yaml:"slurmtune"`
	SSH       SSHConf `yaml:"ssh"`
	REST      REST    `yaml:"rest"`
}

// SSHConf is cluster.ssh.
type SSHConf struct {
	Host         string `yaml:"host"`
	Port         int    `yaml:"port"`
	User         string `yaml:"user"`
	IdentityFile string `yaml:"identity_file"`
	KnownHosts   string `yaml:"known_hosts"`
	ProxyJump    string `yaml:"proxy_jump"`
}

// REST is cluster.rest.
type REST struct {
	URL       string `yaml:"url"`
	User      string `yaml:"user"`
	TokenFile string `yaml:"token_file"`
}

// Model names the model being fine-tuned.
type Model struct {
	Name string `yaml:"name"`
	// Base is the base model (an HF id or a path); empty for from-scratch.
	Base string `yaml:"base"`
	// Config and Tokenizer are for the HF payload (see hf.go): an HF
	// config.json to build a randomly initialised model from instead of
	// Base, and the tokenizer (an HF id or directory, or "train"; empty:
	// Base's).
	Config    string `yaml:"config,omitempty"`
	Tokenizer string `yaml:"tokenizer,omitempty"`
}

// Data is the training data and how prep treats it.
type Data struct {
	Inputs   []string     `yaml:"inputs"`
	Format   string       `yaml:"format"`
	Split    Split        `yaml:"split"`
	NearDup  NearDup      `yaml:"near_dup"`
	Toxicity Toxicity     `yaml:"toxicity"`
	Length   LengthLimits `yaml:"length"`
	PII      string       `yaml:"pii"`
	Checks   DataChecks   `yaml:"checks"`
}

// NearDup is data.near_dup: MinHash/LSH near-duplicate detection.
type NearDup struct {
	Enabled     *bool   `yaml:"enabled"`
	Threshold   float64 `yaml:"threshold"`
	NumPerm     int     `yaml:"num_perm"`
	ShingleSize int     `yaml:"shingle_size"`
	Shingle     string  `yaml:"shingle"`
}

// Toxicity is data.toxicity: the lexicon scorer and an optional classifier.
type Toxicity struct {
	Enabled    *bool    `yaml:"enabled"`
	Threshold  float64  `yaml:"threshold"`
	WordLists  []string `yaml:"word_lists"`
	Classifier []string `yaml:"classifier"`
}

// LengthLimits is data.length (0: no bound).
type LengthLimits struct {
	MinChars int `yaml:"min_chars"`
	MaxChars int `yaml:"max_chars"`
	MinWords int `yaml:"min_words"`
	MaxWords int `yaml:"max_words"`
}

// DataChecks is data.checks: thresholds that fail the prep stage.
type DataChecks struct {
	MaxRemovedRatio   *float64 `yaml:"max_removed_ratio"`
	MaxMalformedRatio *float64 `yaml:"max_malformed_ratio"`
	MinExamples       *int     `yaml:"min_examples"`
}

// Split is the train/validation split.
type Split struct {
	Train      float64 `yaml:"train"`
	Validation float64 `yaml:"validation"`
	Seed       int64   `yaml:"seed"`
}

// StageCommon is what every stage can say about its job.
type StageCommon struct {
	Enabled      *bool    `yaml:"enabled"`
	CPUs         int      `yaml:"cpus"`
	Mem          Memory   `yaml:"mem"`
	Time         Duration `yaml:"time"`
	Retries      Retries  `yaml:"retries"`
	SlurmOptions `yaml:",inline"`
	// Container runs the stage's program in an image (train and eval:
	// environment.container unless set here; prep: only when set).
	Container *Container `yaml:"container,omitempty"`
}

// Retries is a stage's retry policy: when its job ends in one of the On
// states, the stage and every stage after it are resubmitted as a new
// attempt, at most Max times.
type Retries struct {
	Max int      `yaml:"max"`
	On  []string `yaml:"on"`
}

// RetryableStates are the job end states a retries block may name.
var RetryableStates = []string{"NODE_FAIL", "PREEMPTED", "TIMEOUT"}

// RetriesOf returns the retry policy of a stage.
func (p *Pipeline) RetriesOf(stage string) Retries {
	switch stage {
	case StagePrep:
		return p.Prep.Retries
	case StageTrain:
		return p.Train.Retries
	case StageEval:
		return p.Eval.Retries
	case StageDeploy:
		return p.Deploy.Retries
	}
	return Retries{}
}

// Allows reports whether a job that ended in state on attempt number
// attempt (1 for the first) may be retried.
func (r Retries) Allows(state string, attempt int) bool {
	return attempt <= r.Max && contains(r.On, state)
}

// On reports whether the stage runs (stages are on unless turned off).
func (s StageCommon) On() bool { return s.Enabled == nil || *s.Enabled }

// Train is the training stage.
type Train struct {
	StageCommon `yaml:",inline"`
	Nodes       int `yaml:"nodes"`
	// GPUs is train.gpus_per_node as written (4, or a100:4 with its GRES
	// type); GPUsPerNode its count, and a type goes to GPUType.
	GPUs            GPUSpec        `yaml:"gpus_per_node"`
	GPUsPerNode     int            `yaml:"-"`
	TasksPerNode    int            `yaml:"tasks_per_node"`
	Launcher        string         `yaml:"launcher"`
	Python          string         `yaml:"python"`
	Script          string         `yaml:"script"`
	Args            []string       `yaml:"args"`
	Hyperparameters map[string]any `yaml:"hyperparameters"`
	// The rest is multi-node launching, DeepSpeed, preemption and time
	// limits (see deepspeed.go and train.go).
	DeepSpeed *DeepSpeed `yaml:"deepspeed,omitempty"`
	// Preemptible makes the job requeueable: on Signal (sent by Slurm
	// SignalGrace seconds before the time limit, or by hand) every rank
	// checkpoints and stops, and the job requeues itself.
	Preemptible bool `yaml:"preemptible,omitempty"`
	// MaxRestarts caps the requeues (SLURM_RESTART_COUNT) of the job.
	MaxRestarts *int `yaml:"max_restarts,omitempty"`
	// ChainTimeLimit lets train.time exceed the partition's MaxTime: the
	// job asks for at most MaxTime and requeues itself at the limit until
	// the payload writes its final checkpoint.
	ChainTimeLimit bool            `yaml:"chain_time_limit,omitempty"`
	Signal         string          `yaml:"signal,omitempty"`
	SignalGrace    int             `yaml:"signal_grace,omitempty"`
	MasterPortBase int             `yaml:"master_port_base,omitempty"`
	Network        TrainNetwork    `yaml:"network,omitempty"`
	Checkpoint     TrainCheckpoint `yaml:"checkpoint,omitempty"`
	// LoRA trains a LoRA adapter (HF payload, see hf.go).
	LoRA *LoRA `yaml:"lora,omitempty"`
}

// Eval is the evaluation stage.
type Eval struct {
	StageCommon `yaml:",inline"`
	// GPUs is the eval job's --gres=gpu:N (0: none).
	GPUs   int             `yaml:"gpus,omitempty"`
	Python string          `yaml:"python"`
	Script string          `yaml:"script"`
	Args   []string        `yaml:"args"`
	Gates  map[string]Gate `yaml:"gates"`
	// MaxTextBytes bounds one prediction or reference the gate reads
	// (default 1 MiB).
	MaxTextBytes int `yaml:"max_text_bytes,omitempty"`
}

// Gate is a bound on one metric.
type Gate struct {
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

// Deploy is the deploy stage. With strategy record it only records the
// model; blue-green and canary start a serving job for the model (see
// package serve/deploy), smoke-test it and shift the router's traffic to it.
// The fields other than Strategy are omitted from snapshots when unset.
type Deploy struct {
	StageCommon `yaml:",inline"`
	Strategy    string `yaml:"strategy"`
	// Checkpoint serves an existing final checkpoint directory instead of
	// the run's own checkpoints/final (only with train disabled).
	Checkpoint     string       `yaml:"checkpoint,omitempty"`
	Serve          DeployServe  `yaml:"serve,omitempty"`
	Smoke          Smoke        `yaml:"smoke,omitempty"`
	RollbackWindow Duration     `yaml:"rollback_window,omitempty"`
	Canary         Canary       `yaml:"canary,omitempty"`
	Router         DeployRouter `yaml:"router,omitempty"`
}

// DeployServe is deploy.serve: the serving job. Command is an argv in which
// {model} (the checkpoint directory), {port} (a free port picked on the
// node), {name} (model.name) and {host} are replaced; the same values are in
// SLURMTUNE_SERVE_MODEL, SLURMTUNE_SERVE_PORT and SLURMTUNE_SERVE_NAME.
// Arguments starting with ./ or ../ resolve against the pipeline file's
// directory. Default: vllm serve {model} --port {port} --served-model-name {name}.
type DeployServe struct {
	SlurmOptions `yaml:",inline"`
	// Container runs the model server in an image (only when set).
	Container      *Container `yaml:"container,omitempty"`
	Command        []string   `yaml:"command,omitempty"`
	CPUs           int        `yaml:"cpus,omitempty"`
	Mem            Memory     `yaml:"mem,omitempty"`
	GPUs           int        `yaml:"gpus,omitempty"`
	Time           Duration   `yaml:"time,omitempty"` // unset: no limit of its own (the partition's)
	StartupTimeout Duration   `yaml:"startup_timeout,omitempty"`
}

// Smoke is deploy.smoke: requests sent to a new model server before it gets
// any traffic. The deploy fails unless at least MinSuccess prompts (default:
// all) answer within Latency with a completion that contains every Expect
// substring and matches Regex.
type Smoke struct {
	Prompts    []SmokePrompt `yaml:"prompts,omitempty"`
	Latency    Duration      `yaml:"latency,omitempty"`
	MinSuccess int           `yaml:"min_success,omitempty"`
}

// SmokePrompt is one smoke test request.
type SmokePrompt struct {
	Prompt    string   `yaml:"prompt"`
	Expect    []string `yaml:"expect,omitempty"`
	Regex     string   `yaml:"regex,omitempty"`
	MaxTokens int      `yaml:"max_tokens,omitempty"`
}

// Canary is deploy.canary: the share of traffic a canary gets, for how long,
// and how much worse than the stable model it may be before it is rolled
// back.
type Canary struct {
	Percent         int      `yaml:"percent,omitempty"`
	Duration        Duration `yaml:"duration,omitempty"`
	MinRequests     int      `yaml:"min_requests,omitempty"`
	ErrorRateMargin *float64 `yaml:"error_rate_margin,omitempty"`
	LatencyMargin   *float64 `yaml:"latency_margin,omitempty"`
}

// DeployRouter is deploy.router: how the deploy stage reaches the router,
// through its state file on a shared filesystem and/or its admin API.
type DeployRouter struct {
	State     string `yaml:"state,omitempty"`
	AdminURL  string `yaml:"admin_url,omitempty"`
	TokenFile string `yaml:"token_file,omitempty"`
}

// Monitor is the monitor section: drift checks of a deployed model
// (slurmtune drift) and where to send alerts.
type Monitor struct {
	Webhook string `yaml:"webhook,omitempty"`
	// Baseline is a JSONL file of prompts (or training records) to compare
	// production prompts with; default: the run's training split.
	Baseline        string     `yaml:"baseline,omitempty"`
	PSI             PSIMonitor `yaml:"psi,omitempty"`
	MinPrompts      int        `yaml:"min_prompts,omitempty"`
	MaxPrompts      int        `yaml:"max_prompts,omitempty"`
	ErrorRateMargin *float64   `yaml:"error_rate_margin,omitempty"`
	LatencyMargin   *float64   `yaml:"latency_margin,omitempty"`
	MinRequests     int        `yaml:"min_requests,omitempty"`
	BaselineWindow  Duration   `yaml:"baseline_window,omitempty"`
	Window          Duration   `yaml:"window,omitempty"`
}

// Monitor defaults: the newest 10000 production prompts are compared, and
// performance drift compares the model's first hour of sampled router
// counters with its last 15 minutes. (The drift thresholds' defaults are
// serve/drift's DefaultConfig.)
const (
	DefaultMonitorMaxPrompts = 10000
	DefaultMonitorBaseline   = time.Hour
	DefaultMonitorWindow     = 15 * time.Minute
)

// WithDefaults returns m with the defaults of its unset max_prompts,
// baseline_window and window. (They are applied where the section is used,
// not when the pipeline is loaded, so a pipeline's snapshot and
// fingerprint stay as they were.)
func (m Monitor) WithDefaults() Monitor {
	if m.MaxPrompts <= 0 {
		m.MaxPrompts = DefaultMonitorMaxPrompts
	}
	if m.BaselineWindow.Duration <= 0 {
		m.BaselineWindow.Duration = DefaultMonitorBaseline
	}
	if m.Window.Duration <= 0 {
		m.Window.Duration = DefaultMonitorWindow
	}
	return m
}

// Notify is the notify section: a webhook that gets a JSON event when a
// run ends, a gate fails, a job is preempted or drift is found.
type Notify struct {
	Webhook string   `yaml:"webhook,omitempty"`
	On      []string `yaml:"on,omitempty"`
}

// NotifyEvents are the events notify.on may name; all of them by default.
var NotifyEvents = []string{"succeeded", "failed", "gate_failed", "preempted", "drift"}

// PSIMonitor is monitor.psi: the PSI levels of the prompt drift checks.
type PSIMonitor struct {
	Warn  float64 `yaml:"warn,omitempty"`
	Alert float64 `yaml:"alert,omitempty"`
}

// Environment is what every stage's script sets up before it runs.
type Environment struct {
	Modules []string          `yaml:"modules"`
	Setup   []string          `yaml:"setup"`
	Env     map[string]string `yaml:"env"`
	// Secrets are environment variables whose values never enter the run
	// directory: the scripts and the pipeline snapshot hold only where
	// each comes from.
	Secrets map[string]Secret `yaml:"secrets,omitempty"`
	// Container runs the training program in a container image.
	Container *Container `yaml:"container,omitempty"`
}

// Secret says where one secret environment variable's value comes from:
// exactly one of File and Env.
type Secret struct {
	// File is a file on the cluster that only its owner can read; the job
	// script reads it when the job starts (and refuses to start if group
	// or others can read it). Absolute, or ~/... for the job's $HOME.
	File string `yaml:"file,omitempty"`
	// Env is a variable of the environment slurmtune runs in (transports
	// local and rest): its value is sent with the job's environment at
	// submit time and written nowhere.
	Env string `yaml:"env,omitempty"`
}

// Share modes.
const (
	SharePrivate = "private"
	ShareGroup   = "group"
)

// Modes are the permissions of a run directory's contents.
type Modes struct {
	Dir, File, Script fs.FileMode
}

// Modes returns the permissions Share asks for.
func (p *Pipeline) Modes() Modes {
	if p.Share == ShareGroup {
		return Modes{Dir: 0o750, File: 0o640, Script: 0o750}
	}
	return Modes{Dir: 0o700, File: 0o600, Script: 0o700}
}

// tokenPrefixes are how common API tokens begin; an environment.env value
// that starts like one probably belongs in environment.secrets.
var tokenPrefixes = []string{"hf_", "sk-", "sk_live_", "ghp_", "gho_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "AKIA", "ASIA", "AIza"}

// Warnings are problems that do not stop a pipeline from running (yet): an
// environment.env value that looks like a token (it would be written into
// every script of the run), and, with transport local, a secret file that
// group or others can read (the job would refuse to start).
// file is how the messages name the pipeline file.
func (p *Pipeline) Warnings(file string) []*FieldError {
	var out []*FieldError
	keys := make([]string, 0, len(p.Environment.Env))
	for k := range p.Environment.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.TrimSpace(p.Environment.Env[k])
		for _, pre := range tokenPrefixes {
			if strings.HasPrefix(v, pre) && len(v) >= len(pre)+12 {
				path := "environment.env." + k
				out = append(out, &FieldError{File: file, Pos: p.Pos[path], Msg: fmt.Sprintf(
					"warning: %s: the value looks like a token (%s...) and would be written into every script of the run: use environment.secrets.%s: {file: PATH} or {env: VAR}", path, pre, k)})
				break
			}
		}
	}
	if p.Cluster.Transport == "local" {
		names := make([]string, 0, len(p.Environment.Secrets))
		for k := range p.Environment.Secrets {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			f := p.Environment.Secrets[k].File
			if rest, ok := strings.CutPrefix(f, "~/"); ok {
				home, err := os.UserHomeDir()
				if err != nil {
					continue
				}
				f = filepath.Join(home, rest)
			}
			if f == "" {
				continue
			}
			path := "environment.secrets." + k + ".file"
			fi, err := os.Stat(f)
			switch {
			case err != nil:
				out = append(out, &FieldError{File: file, Pos: p.Pos[path], Msg: fmt.Sprintf("warning: %s: %v: the job will not start without it", path, err)})
			case fi.Mode().Perm()&0o077 != 0:
				out = append(out, &FieldError{File: file, Pos: p.Pos[path], Msg: fmt.Sprintf(
					"warning: %s: %s is readable by group or others (mode %v): the job will refuse to start; chmod 600 %s", path, f, fi.Mode().Perm(), f)})
			}
		}
	}
	return out
}

// Duration is a Slurm time limit ("MM", "HH:MM:SS", "D-HH:MM" ...), or a Go
// duration ("90m").
type Duration struct{ time.Duration }

func (d *Duration) unmarshalScalar(s string) error {
	v, err := ParseSlurmTime(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Slurm formats d as Slurm's D-HH:MM:SS, rounding a fraction of a second
// up (a limit of 0 means "no limit" to Slurm).
func (d Duration) Slurm() string {
	total := int64((d.Duration + time.Second - 1) / time.Second)
	days := total / 86400
	h := total % 86400 / 3600
	m := total % 3600 / 60
	s := total % 60
	if days > 0 {
		return fmt.Sprintf("%d-%02d:%02d:%02d", days, h, m, s)
	}
	return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
}

// ParseSlurmTime reads a time limit as sbatch --time takes it, or a Go
// duration.
func ParseSlurmTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, fmt.Errorf("time limit %q is not positive", s)
		}
		return d, nil
	}
	var days int64
	rest := s
	if i := strings.IndexByte(s, '-'); i >= 0 {
		v, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("bad time limit %q (want e.g. 30, 02:00:00 or 1-12:00:00)", s)
		}
		days, rest = v, s[i+1:]
	}
	parts := strings.Split(rest, ":")
	nums := make([]int64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 || len(parts) > 3 {
			return 0, fmt.Errorf("bad time limit %q (want e.g. 30, 02:00:00 or 1-12:00:00)", s)
		}
		nums[i] = v
	}
	var h, m, sec int64
	switch {
	case days > 0 || strings.Contains(s, "-"):
		h = nums[0]
		if len(nums) > 1 {
			m = nums[1]
		}
		if len(nums) > 2 {
			sec = nums[2]
		}
	case len(nums) == 1:
		m = nums[0]
	case len(nums) == 2:
		m, sec = nums[0], nums[1]
	default:
		h, m, sec = nums[0], nums[1], nums[2]
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	if d <= 0 {
		return 0, fmt.Errorf("time limit %q is not positive", s)
	}
	return d, nil
}

// Memory is a Slurm memory size ("2G", "500M", "1024"), kept in MiB.
type Memory struct{ MiB int64 }

var memRe = regexp.MustCompile(`^([0-9]+)([KMGT]?)B?$`)

func (m *Memory) unmarshalScalar(s string) error {
	g := memRe.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
	if g == nil {
		return fmt.Errorf("bad memory size %q (want e.g. 512M or 2G)", s)
	}
	v, _ := strconv.ParseInt(g[1], 10, 64)
	switch g[2] {
	case "K":
		v = (v + 1023) / 1024
	case "G":
		v *= 1024
	case "T":
		v *= 1024 * 1024
	}
	if v <= 0 {
		return fmt.Errorf("memory size %q is not positive", s)
	}
	m.MiB = v
	return nil
}

// MarshalYAML writes the limit as Slurm reads it.
func (d Duration) MarshalYAML() (any, error) { return d.Slurm(), nil }

// MarshalYAML writes the size as Slurm reads it.
func (m Memory) MarshalYAML() (any, error) { return m.Slurm(), nil }

// Slurm formats m for --mem.
func (m Memory) Slurm() string { return fmt.Sprintf("%dM", m.MiB) }

// LoadOptions are the ways a command changes a pipeline file as it loads.
type LoadOptions struct {
	// Sets are --set key.path=value overrides, applied in order.
	Sets []string
}

// Load reads, decodes, defaults and validates a pipeline file. All problems
// come back together as Errors, each with file:line:col.
func Load(path string, opts LoadOptions) (*Pipeline, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline file: %w", err)
	}
	// A FIFO or device would block the read (or never end): regular
	// files only.
	if fi, err := os.Stat(abs); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read pipeline file: %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("read pipeline file: %w", err)
	}
	return Parse(path, abs, data, opts)
}

// Parse is Load on bytes already read. name is how errors name the file.
func Parse(name, abs string, data []byte, opts LoadOptions) (*Pipeline, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Msg: "empty pipeline file"}}
		}
		return nil, Errors{yamlSyntaxError(name, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errors{{File: name, Pos: Pos{Line: extra.Line, Col: extra.Column}, Msg: "more than one YAML document in a pipeline file"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, Errors{yamlSyntaxError(name, err)}
	}
	root := doc.Content[0]
	sets := map[*yaml.Node]string{}
	for _, s := range opts.Sets {
		if err := applySet(root, s, sets); err != nil {
			return nil, Errors{{File: name, Msg: err.Error()}}
		}
	}
	p := &Pipeline{}
	d := &decoder{file: name, pos: map[string]Pos{}, sets: sets}
	d.decode(root, reflect.ValueOf(p).Elem(), "")
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	p.File = abs
	p.Dir = filepath.Dir(abs)
	p.Pos = d.pos
	p.applyDefaults()
	if errs := p.validate(name); len(errs) > 0 {
		return nil, errs.sorted()
	}
	p.resolvePaths()
	return p, nil
}

var yamlLineRe = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner) errors, whose "line N" is 0-based: yaml.v3 adds 1 to scanner
// error lines only.
var yamlParserProblems = []string{"did not find expected ", "found undefined tag handle",
	"found duplicate %YAML directive", "found incompatible YAML document", "found duplicate %TAG directive"}

func yamlSyntaxError(name string, err error) *FieldError {
	if g := yamlLineRe.FindStringSubmatch(err.Error()); g != nil {
		line, _ := strconv.Atoi(g[1])
		for _, p := range yamlParserProblems {
			if strings.HasPrefix(g[2], p) {
				line++
				break
			}
		}
		return &FieldError{File: name, Pos: Pos{Line: line, Col: 1}, Msg: g[2]}
	}
	return &FieldError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

func (p *Pipeline) applyDefaults() {
	if p.Version == 0 {
		p.Version = 1
	}
	if p.Cluster.Transport == "" {
		p.Cluster.Transport = "local"
	}
	if p.Workdir == "" {
		p.Workdir = "runs"
	}
	if p.Data.Format == "" {
		p.Data.Format = "text"
	}
	if p.Data.Split.Train == 0 && p.Data.Split.Validation == 0 {
		p.Data.Split.Train, p.Data.Split.Validation = 0.8, 0.2
	}
	def := func(s *StageCommon, cpus int, mem int64, t time.Duration) {
		if s.CPUs == 0 {
			s.CPUs = cpus
		}
		if s.Mem.MiB == 0 {
			s.Mem.MiB = mem
		}
		if s.Time.Duration == 0 {
			s.Time.Duration = t
		}
	}
	def(&p.Prep, 1, 1024, 30*time.Minute)
	def(&p.Train.StageCommon, 1, 2048, time.Hour)
	def(&p.Eval.StageCommon, 1, 1024, 30*time.Minute)
	def(&p.Deploy.StageCommon, 1, 512, 10*time.Minute)
	if _, given := p.Pos["train.nodes"]; p.Train.Nodes == 0 && !given {
		p.Train.Nodes = 1 // unset; an explicit 0 is refused by validate
	}
	if _, given := p.Pos["train.gpus_per_node"]; given {
		p.Train.GPUsPerNode = p.Train.GPUs.Count
		if p.Train.GPUType == "" {
			p.Train.GPUType = p.Train.GPUs.Type
		}
	}
	p.Train.GPUs.Count = p.Train.GPUsPerNode
	if p.Train.TasksPerNode == 0 {
		p.Train.TasksPerNode = max(p.Train.GPUsPerNode, 1)
	}
	if p.Train.Launcher == "" {
		p.Train.Launcher = "srun"
	}
	p.Train.applyLaunchDefaults()
	if p.Train.Python == "" {
		p.Train.Python = "python3"
	}
	if p.Eval.Python == "" {
		p.Eval.Python = p.Train.Python
	}
	if p.Eval.Script == "" {
		p.Eval.Script = p.Train.Script
	}
	if p.Deploy.Strategy == "" {
		p.Deploy.Strategy = "record"
	}
	if p.Deploy.On() && p.Deploy.Strategy != "record" {
		_, timeSet := p.Pos["deploy.time"]
		p.Deploy.applyServingDefaults(p.Model.Name, timeSet)
	}
}

// DefaultServeCommand is deploy.serve.command when the file names none.
var DefaultServeCommand = []string{"vllm", "serve", "{model}", "--port", "{port}", "--served-model-name", "{name}"}

// DefaultRollbackWindow is deploy.rollback_window when the file names none
// (and the rollback window of a deployment known by its state file alone).
const DefaultRollbackWindow = 5 * time.Minute

// applyServingDefaults fills in the serving settings of a blue-green or
// canary deploy. Unless deploy.time was given, the stage's time limit covers
// the server's startup, the canary and the rollback window.
func (d *Deploy) applyServingDefaults(model string, timeSet bool) {
	if len(d.Serve.Command) == 0 {
		d.Serve.Command = append([]string(nil), DefaultServeCommand...)
	}
	if d.Serve.CPUs == 0 {
		d.Serve.CPUs = 1
	}
	if d.Serve.Mem.MiB == 0 {
		d.Serve.Mem.MiB = 2048
	}
	if d.Serve.StartupTimeout.Duration == 0 {
		d.Serve.StartupTimeout.Duration = 10 * time.Minute
	}
	if len(d.Smoke.Prompts) == 0 {
		d.Smoke.Prompts = []SmokePrompt{{Prompt: "Hello"}}
	}
	for i := range d.Smoke.Prompts {
		if d.Smoke.Prompts[i].MaxTokens == 0 {
			d.Smoke.Prompts[i].MaxTokens = 16
		}
	}
	if d.Smoke.Latency.Duration == 0 {
		d.Smoke.Latency.Duration = 30 * time.Second
	}
	if d.RollbackWindow.Duration == 0 {
		d.RollbackWindow.Duration = DefaultRollbackWindow
	}
	if d.Strategy == "canary" {
		if d.Canary.Percent == 0 {
			d.Canary.Percent = 10
		}
		if d.Canary.Duration.Duration == 0 {
			d.Canary.Duration.Duration = 5 * time.Minute
		}
		if d.Canary.MinRequests == 0 {
			d.Canary.MinRequests = 20
		}
		if d.Canary.ErrorRateMargin == nil {
			v := 0.02
			d.Canary.ErrorRateMargin = &v
		}
		if d.Canary.LatencyMargin == nil {
			v := 0.5
			d.Canary.LatencyMargin = &v
		}
	}
	if !timeSet {
		d.Time.Duration = d.MinTime() + 10*time.Minute
	}
}

// MinTime is the least time limit a serving deploy stage needs: the
// server's startup, the canary (if any) and the rollback window.
func (d *Deploy) MinTime() time.Duration {
	t := d.Serve.StartupTimeout.Duration + d.RollbackWindow.Duration
	if d.Strategy == "canary" {
		t += d.Canary.Duration.Duration
	}
	return t
}

var (
	slurmNameRe = regexp.MustCompile(`^[A-Za-z0-9_.+-]+$`)
	envNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	moduleRe    = regexp.MustCompile(`^[A-Za-z0-9_.+/@:-]+$`)
)

// KnownMetrics are the metrics eval gates may name.
var KnownMetrics = []string{"perplexity", "accuracy", "bleu", "rouge1", "rouge2", "rougeL", "toxicity", "human_eval"}

func (p *Pipeline) validate(file string) Errors {
	var errs Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Pos: p.Pos[path], Msg: path + ": " + fmt.Sprintf(format, args...)})
	}
	// required reports a missing (or empty) key at its position, else at
	// its parent's.
	required := func(parent, key, msg string) {
		path := parent + "." + key
		pos, ok := p.Pos[path]
		if !ok {
			pos = p.Pos[parent]
		}
		errs = append(errs, &FieldError{File: file, Pos: pos, Msg: path + ": " + msg})
	}
	if p.Version != 1 {
		bad("version", "unsupported pipeline file version %d (this slurmtune reads version 1)", p.Version)
	}
	if strings.TrimSpace(p.Name) == "" {
		errs = append(errs, &FieldError{File: file, Pos: Pos{Line: 1, Col: 1}, Msg: "name: required"})
	}
	switch p.Cluster.Transport {
	case "local", "ssh", "rest":
	default:
		bad("cluster.transport", "must be local, ssh or rest, not %q", p.Cluster.Transport)
	}
	for key, v := range map[string]string{"cluster.partition": p.Cluster.Partition, "cluster.account": p.Cluster.Account, "cluster.qos": p.Cluster.QOS} {
		if v != "" && !slurmNameRe.MatchString(v) {
			bad(key, "%q is not a valid Slurm name", v)
		}
	}
	if p.Cluster.Transport == "ssh" && p.Cluster.SSH.Host == "" {
		bad("cluster.transport", "ssh transport needs cluster.ssh.host")
	}
	if p.Cluster.Transport == "rest" && p.Cluster.REST.URL == "" && os.Getenv("SLURMTUNE_REST_URL") == "" {
		bad("cluster.transport", "rest transport needs cluster.rest.url (or SLURMTUNE_REST_URL)")
	}
	if p.Cluster.SSH.Port < 0 || p.Cluster.SSH.Port > 65535 {
		bad("cluster.ssh.port", "%d is not a TCP port", p.Cluster.SSH.Port)
	}
	if strings.ContainsAny(p.Workdir, "\n\r%") {
		bad("workdir", "must not contain a newline or %% (Slurm reads %% in log paths as a pattern)")
	}
	if len(p.Data.Inputs) == 0 && p.Prep.On() {
		required("data", "inputs", "at least one input file or glob is required while prep is enabled")
	}
	switch p.Data.Format {
	case "text", "chat", "instruction":
	default:
		bad("data.format", "must be text, chat or instruction, not %q", p.Data.Format)
	}
	switch p.Data.PII {
	case "", "off", "flag", "redact", "drop":
	default:
		bad("data.pii", "must be off, flag, redact or drop, not %q", p.Data.PII)
	}
	switch p.Data.NearDup.Shingle {
	case "", "word", "char":
	default:
		bad("data.near_dup.shingle", "must be word or char, not %q", p.Data.NearDup.Shingle)
	}
	if t := p.Data.NearDup.Threshold; t < 0 || t > 1 {
		bad("data.near_dup.threshold", "must be between 0 and 1, not %g", t)
	}
	if t := p.Data.Toxicity.Threshold; t < 0 || t > 1 {
		bad("data.toxicity.threshold", "must be between 0 and 1, not %g", t)
	}
	if r := p.Data.Checks.MaxRemovedRatio; r != nil && (*r < 0 || *r > 1) {
		bad("data.checks.max_removed_ratio", "must be between 0 and 1, not %g", *r)
	}
	if r := p.Data.Checks.MaxMalformedRatio; r != nil && (*r < 0 || *r > 1) {
		bad("data.checks.max_malformed_ratio", "must be between 0 and 1, not %g", *r)
	}
	if m := p.Data.Checks.MinExamples; m != nil && *m < 0 {
		bad("data.checks.min_examples", "must not be negative")
	}
	sp := p.Data.Split
	if sp.Train <= 0 || sp.Validation < 0 || sp.Train > 1 || sp.Validation > 1 {
		bad("data.split", "train must be in (0,1] and validation in [0,1]")
	} else if d := sp.Train + sp.Validation - 1; d > 1e-9 || d < -1e-9 {
		bad("data.split", "train (%g) and validation (%g) must add up to 1", sp.Train, sp.Validation)
	}
	for _, st := range []struct {
		name string
		c    StageCommon
	}{{"prep", p.Prep}, {"train", p.Train.StageCommon}, {"eval", p.Eval.StageCommon}, {"deploy", p.Deploy.StageCommon}} {
		validateSlurmOptions(st.name, st.c.SlurmOptions, p.stageGPUs(st.name), bad)
		if st.name == StageDeploy {
			validateSlurmOptions("deploy.serve", p.Deploy.Serve.SlurmOptions, p.Deploy.Serve.GPUs, bad)
		}
		if st.c.CPUs < 1 {
			bad(st.name+".cpus", "must be at least 1, not %d", st.c.CPUs)
		}
		if st.c.Retries.Max < 0 {
			bad(st.name+".retries.max", "must not be negative")
		}
		for i, on := range st.c.Retries.On {
			if !contains(RetryableStates, on) {
				bad(fmt.Sprintf("%s.retries.on[%d]", st.name, i), "%q cannot be retried (retryable: %s)", on, strings.Join(RetryableStates, ", "))
			}
		}
		if st.c.Retries.Max > 0 && len(st.c.Retries.On) == 0 {
			bad(st.name+".retries", "max is %d but on lists no state to retry on", st.c.Retries.Max)
		}
	}
	t := p.Train
	if t.Nodes < 1 {
		bad("train.nodes", "must be at least 1, not %d", t.Nodes)
	}
	if t.GPUs.Type != "" && t.GPUType != t.GPUs.Type {
		bad("train.gpu_type", "%q is not the type train.gpus_per_node names (%q)", t.GPUType, t.GPUs.Type)
	}
	if t.GPUsPerNode < 0 {
		bad("train.gpus_per_node", "must not be negative")
	}
	if t.TasksPerNode < 1 {
		bad("train.tasks_per_node", "must be at least 1, not %d", t.TasksPerNode)
	}
	if t.GPUsPerNode > 0 && t.TasksPerNode != t.GPUsPerNode && t.Launcher == "srun" {
		bad("train.tasks_per_node", "the srun launcher runs one task per GPU: tasks_per_node (%d) must equal gpus_per_node (%d)", t.TasksPerNode, t.GPUsPerNode)
	}
	switch t.Launcher {
	case "srun", "torchrun", "deepspeed":
	default:
		bad("train.launcher", "must be srun, torchrun or deepspeed, not %q", t.Launcher)
	}
	if t.On() && t.Script == "" {
		required("train", "script", "the training program is required")
	}
	for k := range t.Hyperparameters {
		if !envNameRe.MatchString(k) {
			bad("train.hyperparameters."+k, "hyperparameter names must be identifiers (letters, digits, _)")
		}
	}
	errs = append(errs, p.validateLaunch(file, bad)...)
	errs = append(errs, p.validateModel(file)...)
	for m, g := range p.Eval.Gates {
		key := "eval.gates." + m
		if !contains(KnownMetrics, m) {
			bad(key, "unknown metric %q (known: %s)", m, strings.Join(KnownMetrics, ", "))
			continue
		}
		if g.Min == nil && g.Max == nil {
			bad(key, "a gate needs min or max")
		}
		if g.Min != nil && g.Max != nil && *g.Min > *g.Max {
			bad(key, "min %g is above max %g", *g.Min, *g.Max)
		}
		if m == "perplexity" && g.Max != nil && *g.Max < 1 {
			bad(key+".max", "perplexity is never below 1; a max of %g can never pass", *g.Max)
		}
	}
	switch p.Deploy.Strategy {
	case "record", "blue-green", "canary":
	default:
		bad("deploy.strategy", "must be record, blue-green or canary, not %q", p.Deploy.Strategy)
	}
	p.validateDeploy(bad, required)
	p.validateMonitor(bad)
	p.validateNotify(bad)
	p.validateSweep(bad)
	for i, m := range p.Environment.Modules {
		if !moduleRe.MatchString(m) {
			bad(fmt.Sprintf("environment.modules[%d]", i), "%q is not a module name", m)
		}
	}
	for k := range p.Environment.Env {
		if !envNameRe.MatchString(k) {
			bad("environment.env."+k, "%q is not a valid environment variable name", k)
		}
	}
	if p.Eval.MaxTextBytes < 0 {
		bad("eval.max_text_bytes", "must not be negative")
	}
	switch p.Share {
	case "", SharePrivate, ShareGroup:
	default:
		bad("share", "must be private or group, not %q", p.Share)
	}
	for k, s := range p.Environment.Secrets {
		path := "environment.secrets." + k
		switch {
		case !envNameRe.MatchString(k):
			bad(path, "%q is not a valid environment variable name", k)
		case (s.File == "") == (s.Env == ""):
			bad(path, "give exactly one of {file: PATH} or {env: VAR}")
		case s.File != "" && !strings.HasPrefix(s.File, "/") && !strings.HasPrefix(s.File, "~/"):
			bad(path+".file", "%q: want an absolute path or ~/... on the cluster", s.File)
		case s.File != "" && strings.ContainsAny(s.File, "\n\x00"):
			bad(path+".file", "path contains a newline or NUL")
		case s.Env != "" && !envNameRe.MatchString(s.Env):
			bad(path+".env", "%q is not a valid environment variable name", s.Env)
		case s.Env != "" && p.Cluster.Transport == "ssh":
			bad(path+".env", "the ssh transport passes a job's environment on the login node's command line, where others can read it: use {file: PATH} on the cluster")
		}
		if _, ok := p.Environment.Env[k]; ok {
			bad(path, "also set in environment.env")
		}
	}
	enabled := 0
	for _, s := range StageOrder {
		if p.StageOn(s) {
			enabled++
		}
	}
	if enabled == 0 {
		errs = append(errs, &FieldError{File: file, Pos: Pos{Line: 1, Col: 1}, Msg: "every stage is disabled: nothing to run"})
	}
	return errs
}

// validateDeploy checks the serving settings of a blue-green or canary
// deploy (they are ignored, and not checked, with strategy record).
func (p *Pipeline) validateDeploy(bad func(path, format string, args ...any), required func(parent, key, msg string)) {
	d := p.Deploy
	if !d.On() || d.Strategy == "record" {
		return
	}
	if d.Checkpoint != "" && p.Train.On() {
		bad("deploy.checkpoint", "serves an existing checkpoint instead of the run's own: turn train off (train.enabled: false) to use it")
	}
	if d.Router.State == "" && d.Router.AdminURL == "" {
		required("deploy", "router", "a "+d.Strategy+" deploy needs deploy.router.state (the router's state file on a shared filesystem) or deploy.router.admin_url")
	}
	if u := d.Router.AdminURL; u != "" {
		if !httpURL(u) {
			bad("deploy.router.admin_url", "%q is not an http(s) URL", u)
		}
		if d.Router.TokenFile == "" {
			required("deploy.router", "token_file", "the router's admin API needs a bearer token file")
		}
	}
	for i, a := range d.Serve.Command {
		if a == "" {
			bad(fmt.Sprintf("deploy.serve.command[%d]", i), "empty argument")
		}
	}
	if d.Serve.CPUs < 1 {
		bad("deploy.serve.cpus", "must be at least 1, not %d", d.Serve.CPUs)
	}
	if d.Serve.GPUs < 0 {
		bad("deploy.serve.gpus", "must not be negative")
	}
	for i, sp := range d.Smoke.Prompts {
		key := fmt.Sprintf("deploy.smoke.prompts[%d]", i)
		if sp.Prompt == "" {
			bad(key+".prompt", "empty prompt")
		}
		if sp.Regex != "" {
			if _, err := regexp.Compile(sp.Regex); err != nil {
				bad(key+".regex", "%v", err)
			}
		}
		if sp.MaxTokens < 0 {
			bad(key+".max_tokens", "must not be negative")
		}
	}
	if m := d.Smoke.MinSuccess; m < 0 || m > len(d.Smoke.Prompts) {
		bad("deploy.smoke.min_success", "must be between 0 (all) and the number of prompts (%d), not %d", len(d.Smoke.Prompts), m)
	}
	if d.Strategy == "canary" {
		c := d.Canary
		if c.Percent < 1 || c.Percent > 99 {
			bad("deploy.canary.percent", "must be between 1 and 99, not %d", c.Percent)
		}
		if c.MinRequests < 1 {
			bad("deploy.canary.min_requests", "must be at least 1, not %d", c.MinRequests)
		}
		if c.ErrorRateMargin != nil && (*c.ErrorRateMargin < 0 || *c.ErrorRateMargin > 1) {
			bad("deploy.canary.error_rate_margin", "must be between 0 and 1, not %g", *c.ErrorRateMargin)
		}
		if c.LatencyMargin != nil && *c.LatencyMargin < 0 {
			bad("deploy.canary.latency_margin", "must not be negative")
		}
	}
	if _, set := p.Pos["deploy.time"]; set && d.Time.Duration < d.MinTime() {
		bad("deploy.time", "%s is shorter than the deploy needs (serve.startup_timeout + canary.duration + rollback_window = %s)", d.Time.Slurm(), Duration{d.MinTime()}.Slurm())
	}
}

// stageGPUs is the number of GPUs (per node) a stage's job asks for.
func (p *Pipeline) stageGPUs(stage string) int {
	switch stage {
	case StageTrain:
		return p.Train.GPUsPerNode
	case StageEval:
		return p.Eval.GPUs
	case "deploy.serve":
		return p.Deploy.Serve.GPUs
	}
	return 0
}

// validateNotify checks the notify section.
func (p *Pipeline) validateNotify(bad func(path, format string, args ...any)) {
	n := p.Notify
	if n.Webhook != "" && !httpURL(n.Webhook) {
		bad("notify.webhook", "%q is not an http(s) URL", n.Webhook)
	}
	if n.Webhook == "" && len(n.On) > 0 {
		bad("notify.on", "events without notify.webhook go nowhere")
	}
	for _, ev := range n.On {
		if !slices.Contains(NotifyEvents, ev) {
			bad("notify.on", "unknown event %q (want %s)", ev, strings.Join(NotifyEvents, ", "))
		}
	}
}

// validateMonitor checks the monitor section.
func (p *Pipeline) validateMonitor(bad func(path, format string, args ...any)) {
	m := p.Monitor
	if m.Webhook != "" && !httpURL(m.Webhook) {
		bad("monitor.webhook", "%q is not an http(s) URL", m.Webhook)
	}
	if m.PSI.Warn < 0 || m.PSI.Alert < 0 {
		bad("monitor.psi", "thresholds must not be negative")
	} else if m.PSI.Warn > 0 && m.PSI.Alert > 0 && m.PSI.Warn > m.PSI.Alert {
		bad("monitor.psi", "warn %g is above alert %g", m.PSI.Warn, m.PSI.Alert)
	}
	for key, v := range map[string]int{"monitor.min_prompts": m.MinPrompts, "monitor.max_prompts": m.MaxPrompts, "monitor.min_requests": m.MinRequests} {
		if v < 0 {
			bad(key, "must not be negative")
		}
	}
	if r := m.ErrorRateMargin; r != nil && (*r < 0 || *r > 1) {
		bad("monitor.error_rate_margin", "must be between 0 and 1, not %g", *r)
	}
	if r := m.LatencyMargin; r != nil && *r < 0 {
		bad("monitor.latency_margin", "must not be negative")
	}
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// StageOn reports whether a stage is enabled.
func (p *Pipeline) StageOn(stage string) bool {
	switch stage {
	case StagePrep:
		return p.Prep.On()
	case StageTrain:
		return p.Train.On()
	case StageEval:
		return p.Eval.On()
	case StageDeploy:
		return p.Deploy.On()
	}
	return false
}

// Stages returns the enabled stages in chain order.
func (p *Pipeline) Stages() []string {
	var out []string
	for _, s := range StageOrder {
		if p.StageOn(s) {
			out = append(out, s)
		}
	}
	return out
}

// resolvePaths makes relative paths absolute against the pipeline file's
// directory.
func (p *Pipeline) resolvePaths() {
	abs := func(s *string) {
		if *s != "" && !filepath.IsAbs(*s) && !strings.HasPrefix(*s, "~") {
			*s = filepath.Join(p.Dir, *s)
		}
	}
	if p.Cluster.Transport == "local" {
		abs(&p.Workdir)
	}
	for i := range p.Data.Inputs {
		abs(&p.Data.Inputs[i])
	}
	for i := range p.Data.Toxicity.WordLists {
		abs(&p.Data.Toxicity.WordLists[i])
	}
	p.resolveModelPaths()
	abs(&p.Train.Script)
	if ds := p.Train.DeepSpeed; ds != nil {
		abs(&ds.ConfigFile)
	}
	abs(&p.Eval.Script)
	abs(&p.Deploy.Checkpoint)
	abs(&p.Deploy.Router.State)
	abs(&p.Deploy.Router.TokenFile)
	abs(&p.Monitor.Baseline)
	for i, a := range p.Deploy.Serve.Command {
		if strings.HasPrefix(a, "./") || strings.HasPrefix(a, "../") {
			p.Deploy.Serve.Command[i] = filepath.Join(p.Dir, a)
		}
	}
	abs(&p.Cluster.SSH.IdentityFile)
	abs(&p.Cluster.SSH.KnownHosts)
	abs(&p.Cluster.REST.TokenFile)
	if strings.Contains(p.Train.Python, "/") {
		abs(&p.Train.Python)
	}
	if strings.Contains(p.Eval.Python, "/") {
		abs(&p.Eval.Python)
	}
}

// Snapshot is the resolved pipeline as YAML, saved in every run directory.
func (p *Pipeline) Snapshot() ([]byte, error) {
	return yaml.Marshal(p)
}
