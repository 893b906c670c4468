package templates

import (
	"strconv"
	"strings"

	"github.com/slurmtune/slurmtune/jobs"
)

// trainData is what the train template needs beyond the common data:
// the launcher's command line, the container, DeepSpeed and the
// preemption/requeue settings. Every field that holds shell text is already
// quoted.
type trainData struct {
	ProcsPerNode, GPUsPerNode int
	// SrunTasks are the srun options that lay out the tasks: one per rank
	// (srun launcher) or one per node (torchrun, deepspeed).
	SrunTasks string
	// SrunContainer are pyxis's srun options (leading space), if any.
	SrunContainer string
	// Wrap is the apptainer command the program runs under (trailing
	// space), if any.
	Wrap string
	// Python and ScriptArgs are the program for torchrun and deepspeed,
	// which run the interpreter themselves.
	Python     string
	ScriptArgs []string
	Interface  string
	DeepSpeed  bool
	Hostfile   bool
	Every      int
	// Requeue: the job requeues itself on Signal; MaxRestarts caps it.
	Requeue                 bool
	Signal                  string
	Grace, StopWait         int
	MaxRestarts, TimeLimitS int
}

func newTrainData(p *jobs.Pipeline, run Run) trainData {
	t := p.Train
	d := trainData{
		ProcsPerNode: t.ProcsPerNode(), GPUsPerNode: t.GPUsPerNode,
		Python: t.Python, ScriptArgs: append([]string{t.Script}, t.Args...),
		Interface: t.Network.Interface, DeepSpeed: t.DeepSpeedOn(), Hostfile: t.Launcher == "deepspeed",
		Every: t.Checkpoint.EverySteps, Requeue: t.Requeues(), Signal: t.Signal,
		Grace: t.SignalGrace, MaxRestarts: t.Restarts(),
		TimeLimitS: int(t.ChainedTime(run.MaxTime).Seconds()),
	}
	if d.Signal == "" {
		d.Signal = jobs.DefaultSignal
	}
	if d.Grace == 0 {
		d.Grace = jobs.DefaultSignalGrace
	}
	// The ranks get most of the grace period to write their checkpoint; the
	// rest is for the requeue itself.
	d.StopWait = max(d.Grace-15, 5)
	if t.Launcher == "srun" {
		d.SrunTasks = "--ntasks-per-node=" + strconv.Itoa(t.TasksPerNode)
	} else {
		// One launcher per node; it starts the node's ranks itself and gets
		// the CPUs (and GPUs) of all of them.
		d.SrunTasks = `--ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --cpus-per-task=` + strconv.Itoa(t.ProcsPerNode()*t.CPUs)
		if t.GPUsPerNode > 0 {
			d.SrunTasks += " --gres=gpu:" + strconv.Itoa(t.GPUsPerNode)
		}
	}
	d.Wrap, d.SrunContainer = containerWrap(p.TrainContainer(), t.GPUsPerNode > 0)
	return d
}

// containerWrap is how a program runs in container c (nil: none): the
// apptainer command before it (trailing space), or pyxis's srun options
// (leading space); gpu passes the node's GPUs into an apptainer container.
func containerWrap(c *jobs.Container, gpu bool) (wrap, srunOpts string) {
	if c == nil {
		return "", ""
	}
	switch c.Runtime {
	case "apptainer":
		w := []string{"apptainer", "exec"}
		if gpu {
			w = append(w, "--nv")
		}
		words := strings.Join(w, " ") + ` --bind "$SLURMTUNE_RUN_DIR"`
		for _, m := range c.Mounts {
			words += " --bind " + Quote(m)
		}
		return words + " " + Quote(c.Image) + " ", ""
	case "pyxis":
		mounts := `"$SLURMTUNE_RUN_DIR:$SLURMTUNE_RUN_DIR"`
		if len(c.Mounts) > 0 {
			mounts += Quote("," + strings.Join(c.Mounts, ","))
		}
		return "", " --container-image=" + Quote(c.Image) + " --container-mounts=" + mounts +
			` --container-workdir="$SLURMTUNE_RUN_DIR"`
	}
	return "", ""
}

// stepWrap is what a one-task program runs under in container c: its
// apptainer command, or a one-task srun step with pyxis's options (pyxis
// works through srun only); "" without a container. extra are further
// mounts (shell words).
func stepWrap(c *jobs.Container, gpu bool, extra ...string) string {
	if c != nil && len(extra) > 0 {
		cc := *c
		cc.Mounts = append(append([]string(nil), c.Mounts...), extra...)
		c = &cc
	}
	wrap, srunOpts := containerWrap(c, gpu)
	if srunOpts != "" {
		return "srun --ntasks=1" + srunOpts + " "
	}
	return wrap
}

// evalWrap is what the eval program runs under: its container's apptainer
// command, or a one-task srun step with pyxis's options (pyxis works
// through srun only); "" without a container.
func evalWrap(p *jobs.Pipeline) string { return stepWrap(p.EvalContainer(), p.Eval.GPUs > 0) }
