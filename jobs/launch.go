package jobs

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// TrainNetwork is train.network.
type TrainNetwork struct {
	// Interface is the network interface the ranks talk over; it sets
	// NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME.
	Interface string `yaml:"interface,omitempty"`
}

// TrainCheckpoint is train.checkpoint.
type TrainCheckpoint struct {
	// EverySteps is how often the payload checkpoints (0: its own default);
	// the payload reads it from SLURMTUNE_CHECKPOINT_EVERY.
	EverySteps int `yaml:"every_steps,omitempty"`
}

// Container is environment.container: the image the training program runs in.
type Container struct {
	// Runtime is apptainer (apptainer exec around the program) or pyxis
	// (srun --container-image).
	Runtime string `yaml:"runtime"`
	Image   string `yaml:"image"`
	// Mounts are extra SRC[:DST] bind mounts; the run directory is always
	// mounted at its own path.
	Mounts []string `yaml:"mounts,omitempty"`
}

// Launch defaults.
const (
	DefaultSignal         = "USR2"
	DefaultSignalGrace    = 120
	DefaultMaxRestarts    = 3
	DefaultMasterPortBase = 20000
	// MasterPortSpan is how many ports MASTER_PORT is spread over.
	MasterPortSpan = 20000
)

// stopSignals are the signals a batch script may be asked to trap: not
// TERM/INT/KILL/STOP (Slurm's own ways of ending a job) nor CHLD/CONT.
var stopSignals = []string{"USR1", "USR2", "HUP", "URG", "XCPU", "WINCH"}

var ifaceRe = regexp.MustCompile(`^[A-Za-z0-9_.:@^,-]+$`)

func (t *Train) applyLaunchDefaults() {
	if t.Signal == "" {
		t.Signal = DefaultSignal
	}
	t.Signal = strings.TrimPrefix(strings.ToUpper(t.Signal), "SIG")
	if t.SignalGrace == 0 {
		t.SignalGrace = DefaultSignalGrace
	}
	if t.MaxRestarts == nil {
		n := DefaultMaxRestarts
		t.MaxRestarts = &n
	}
	if t.MasterPortBase == 0 {
		t.MasterPortBase = DefaultMasterPortBase
	}
}

// ProcsPerNode is the number of ranks on each node: one per GPU, or
// tasks_per_node without GPUs.
func (t Train) ProcsPerNode() int {
	if t.GPUsPerNode > 0 {
		return t.GPUsPerNode
	}
	return t.TasksPerNode
}

// WorldSize is the number of ranks: nodes x GPUs per node, or nodes x
// tasks per node on CPU.
func (t Train) WorldSize() int { return t.Nodes * t.ProcsPerNode() }

// Requeues reports whether the batch script traps the stop signal and
// requeues itself (preemptible, or chained over time limits).
func (t Train) Requeues() bool { return t.Preemptible || t.ChainTimeLimit }

// Restarts is train.max_restarts with its default.
func (t Train) Restarts() int {
	if t.MaxRestarts == nil {
		return DefaultMaxRestarts
	}
	return *t.MaxRestarts
}

// MasterPortRange is how many ports above train.master_port_base
// MASTER_PORT may take (base + job id % range).
func (t Train) MasterPortRange() int {
	return min(MasterPortSpan, 65536-t.MasterPortBase)
}

// ChainedTime is the time limit of one job of a train stage whose
// train.time may exceed the partition's limit: train.time capped at
// maxTime (0: no cap).
func (t Train) ChainedTime(maxTime time.Duration) time.Duration {
	if t.ChainTimeLimit && maxTime > 0 && t.Time.Duration > maxTime {
		return maxTime
	}
	return t.Time.Duration
}

// validateLaunch checks the train stage's launcher, preemption, network and
// container settings and its DeepSpeed configuration.
func (p *Pipeline) validateLaunch(file string, bad func(path, format string, args ...any)) Errors {
	var errs Errors
	t := p.Train
	if t.GPUsPerNode > 0 && t.TasksPerNode != t.GPUsPerNode && t.Launcher != "srun" {
		bad("train.tasks_per_node", "the %s launcher starts one rank per GPU: tasks_per_node (%d) must equal gpus_per_node (%d)", t.Launcher, t.TasksPerNode, t.GPUsPerNode)
	}
	if !contains(stopSignals, t.Signal) {
		bad("train.signal", "must be one of %s, not %q (TERM and INT are how Slurm ends a job)", strings.Join(stopSignals, ", "), t.Signal)
	}
	if t.SignalGrace < 10 || t.SignalGrace > 65535 {
		bad("train.signal_grace", "must be between 10 and 65535 seconds, not %d", t.SignalGrace)
	} else if t.Requeues() && time.Duration(t.SignalGrace)*time.Second >= t.Time.Duration {
		bad("train.signal_grace", "%d s is not shorter than train.time (%s): the job would be signalled as it starts", t.SignalGrace, t.Time.Slurm())
	}
	if r := t.Restarts(); r < 0 {
		bad("train.max_restarts", "must not be negative")
	}
	if b := t.MasterPortBase; b < 1024 || b > 65000 {
		bad("train.master_port_base", "must be between 1024 and 65000, not %d", b)
	}
	if t.Checkpoint.EverySteps < 0 {
		bad("train.checkpoint.every_steps", "must not be negative")
	}
	if i := t.Network.Interface; i != "" {
		if !ifaceRe.MatchString(i) {
			bad("train.network.interface", "%q is not a network interface name (or NCCL/Gloo interface list)", i)
		}
		for _, k := range []string{"NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"} {
			if v, ok := p.Environment.Env[k]; ok && v != i {
				bad("environment.env."+k, "%q differs from train.network.interface %q; set one or the other", v, i)
			}
		}
	}
	errs = append(errs, p.validateContainer(file, "environment.container", p.Environment.Container, bad)...)
	for key, c := range map[string]*Container{"prep.container": p.Prep.Container, "train.container": p.Train.Container,
		"eval.container": p.Eval.Container, "deploy.serve.container": p.Deploy.Serve.Container} {
		errs = append(errs, p.validateContainer(file, key, c, bad)...)
	}
	if p.Deploy.Container != nil {
		bad("deploy.container", "the deploy stage submits the serving job with sbatch and runs outside containers: use deploy.serve.container for the model server")
	}
	if p.Eval.GPUs < 0 {
		bad("eval.gpus", "must not be negative")
	}
	return append(errs, p.validateDeepSpeed(file)...)
}

// validateContainer checks a container block at key (nil: none).
func (p *Pipeline) validateContainer(file, key string, c *Container, bad func(path, format string, args ...any)) Errors {
	if c == nil {
		return nil
	}
	var errs Errors
	switch c.Runtime {
	case "apptainer", "pyxis":
	default:
		bad(key+".runtime", "must be apptainer or pyxis, not %q", c.Runtime)
	}
	if strings.TrimSpace(c.Image) == "" {
		errs = append(errs, &FieldError{File: file, Pos: p.posOrParent(key + ".image"), Msg: key + ".image: the container image is required"})
	} else if strings.ContainsAny(c.Image, "\n\r") {
		bad(key+".image", "must not contain a line break")
	}
	for i, m := range c.Mounts {
		if m == "" || strings.ContainsAny(m, ",\n\r") {
			bad(fmt.Sprintf("%s.mounts[%d]", key, i), "%q is not a SRC[:DST] mount (no commas or line breaks)", m)
		}
	}
	return errs
}

// TrainContainer is the train stage's container: train.container, else
// environment.container (nil: none).
func (p *Pipeline) TrainContainer() *Container {
	if p.Train.Container != nil {
		return p.Train.Container
	}
	return p.Environment.Container
}

// EvalContainer is the eval stage's container: eval.container, else
// environment.container (nil: none).
func (p *Pipeline) EvalContainer() *Container {
	if p.Eval.Container != nil {
		return p.Eval.Container
	}
	return p.Environment.Container
}

// posOrParent is where key was set, else where its nearest parent was.
func (p *Pipeline) posOrParent(key string) Pos {
	for {
		if pos, ok := p.Pos[key]; ok {
			return pos
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return Pos{}
		}
		key = key[:i]
	}
}
