package jobs

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/slurmtune/slurmtune/slurm"
)

// SlurmOptions are the sbatch options of one stage's job (prep, train,
// eval, deploy, and the serving job a deploy starts). Partition, account
// and QOS default to the cluster section's.
type SlurmOptions struct {
	Partition   string `yaml:"partition,omitempty"`
	Account     string `yaml:"account,omitempty"`
	QOS         string `yaml:"qos,omitempty"`
	Constraint  string `yaml:"constraint,omitempty"`
	Reservation string `yaml:"reservation,omitempty"`
	Exclusive   bool   `yaml:"exclusive,omitempty"`
	// GPUType is the GRES type of the stage's GPUs (--gres=gpu:TYPE:N).
	GPUType string `yaml:"gpu_type,omitempty"`
	Mail    Mail   `yaml:"mail,omitempty"`
	// SbatchArgs are further sbatch options, one option a word
	// ("--nodelist=n[1-4]", "--gpus-per-task=1"), checked against sbatch's
	// own table.
	SbatchArgs []string `yaml:"sbatch_args,omitempty"`
}

// Mail is Slurm's mail notification of the stage's job.
type Mail struct {
	Type string `yaml:"type,omitempty"` // sbatch --mail-type, e.g. END,FAIL
	User string `yaml:"user,omitempty"`
}

// GPUSpec is a GPU count with an optional GRES type: 4 or "a100:4".
type GPUSpec struct {
	Type  string
	Count int
}

func (g *GPUSpec) unmarshalScalar(s string) error {
	typ, n, typed := strings.Cut(s, ":")
	if !typed {
		n, typ = s, ""
	}
	c, err := strconv.Atoi(n)
	if err != nil || typed && !gresTypeRe.MatchString(typ) {
		return fmt.Errorf("want a GPU count or TYPE:COUNT (e.g. 4 or a100:4), got %q", s)
	}
	g.Type, g.Count = typ, c
	return nil
}

// MarshalYAML writes the spec as it is read.
func (g GPUSpec) MarshalYAML() (any, error) {
	if g.Type != "" {
		return g.Type + ":" + strconv.Itoa(g.Count), nil
	}
	return g.Count, nil
}

var (
	gresTypeRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	// Slurm's feature expressions: names, & | , ! * [ ] ( ) and counts.
	constraintRe = regexp.MustCompile(`^[A-Za-z0-9_.&|,!*\[\]():-]+$`)
	mailTypes    = map[string]bool{"NONE": true, "BEGIN": true, "END": true, "FAIL": true, "REQUEUE": true, "ALL": true,
		"INVALID_DEPEND": true, "STAGE_OUT": true, "TIME_LIMIT": true, "TIME_LIMIT_90": true, "TIME_LIMIT_80": true,
		"TIME_LIMIT_50": true, "ARRAY_TASKS": true}
)

// ownedSbatchOptions are the sbatch options a stage's job gets from
// slurmtune itself or from a pipeline key: sbatch_args may not set them.
var ownedSbatchOptions = map[string]string{
	"dependency": "slurmtune chains the stages", "kill-on-invalid-dep": "slurmtune chains the stages",
	"comment": "slurmtune tags every job with its run and stage", "output": "logs go to the run directory's logs/",
	"error": "logs go to the run directory's logs/", "parsable": "slurmtune reads the job id",
	"array": "slurmtune submits one job per stage", "job-name": "set by name", "open-mode": "slurmtune appends to the logs",
	"chdir": "jobs run in the run directory", "wrap": "the stage's script is rendered by slurmtune",
	"nodes": "use train.nodes", "ntasks-per-node": "use train.tasks_per_node", "cpus-per-task": "use STAGE.cpus",
	"mem": "use STAGE.mem", "time": "use STAGE.time", "partition": "use STAGE.partition (or cluster.partition)",
	"account": "use STAGE.account (or cluster.account)", "qos": "use STAGE.qos (or cluster.qos)",
	"constraint": "use STAGE.constraint", "reservation": "use STAGE.reservation", "exclusive": "use STAGE.exclusive",
	"gres": "use STAGE.gpu_type and the stage's GPU count", "mail-type": "use STAGE.mail.type", "mail-user": "use STAGE.mail.user",
	"requeue": "use train.preemptible", "no-requeue": "use train.preemptible", "signal": "use train.signal",
	"hold": "slurmtune submits jobs to run", "test-only": "use slurmtune validate --cluster", "wait": "use slurmtune submit --wait",
	"export": "use environment.env and environment.secrets",
}

// validateSlurmOptions checks one stage's Slurm options; key is the stage's
// key path ("train", "deploy.serve") and gpus its GPU count.
func validateSlurmOptions(key string, o SlurmOptions, gpus int, bad func(path, format string, args ...any)) {
	for field, v := range map[string]string{"partition": o.Partition, "account": o.Account, "qos": o.QOS, "reservation": o.Reservation} {
		if v != "" && !slurmNameRe.MatchString(v) {
			bad(key+"."+field, "%q is not a Slurm name", v)
		}
	}
	if o.Constraint != "" && !constraintRe.MatchString(o.Constraint) {
		bad(key+".constraint", "%q is not a Slurm feature expression (names joined by & | , with ! * [ ] ( ))", o.Constraint)
	}
	if o.GPUType != "" {
		if !gresTypeRe.MatchString(o.GPUType) {
			bad(key+".gpu_type", "%q is not a GRES type name", o.GPUType)
		} else if gpus == 0 {
			bad(key+".gpu_type", "set, but the stage asks for no GPUs")
		}
	}
	if o.Mail.Type != "" || o.Mail.User != "" {
		for _, t := range strings.Split(o.Mail.Type, ",") {
			if !mailTypes[t] {
				bad(key+".mail.type", "%q is not a mail type (NONE, BEGIN, END, FAIL, REQUEUE, ALL, INVALID_DEPEND, STAGE_OUT, TIME_LIMIT, TIME_LIMIT_90/80/50, ARRAY_TASKS)", t)
				break
			}
		}
		if o.Mail.User != "" && strings.ContainsAny(o.Mail.User, " \t\n'\"\\") {
			bad(key+".mail.user", "%q is not a mail address", o.Mail.User)
		}
	}
	for i, a := range o.SbatchArgs {
		path := fmt.Sprintf("%s.sbatch_args[%d]", key, i)
		if strings.ContainsAny(a, " \t\n'\"\\") || !strings.HasPrefix(a, "-") {
			bad(path, "%q: want one option a word, such as --gpus-per-task=1 (no spaces or quotes)", a)
			continue
		}
		opts, rest, err := slurm.ParseSbatchOptions([]string{a})
		switch {
		case err != nil:
			bad(path, "%q: %v (give the value in the same word: --opt=value)", a, err)
		case len(rest) > 0 || len(opts) != 1:
			bad(path, "%q: want exactly one option", a)
		case !opts[0].Known():
			bad(path, "%q is not an sbatch option", a)
		case ownedSbatchOptions[opts[0].Name] != "":
			bad(path, "--%s is not for sbatch_args: %s", opts[0].Name, strings.ReplaceAll(ownedSbatchOptions[opts[0].Name], "STAGE", key))
		}
	}
}
