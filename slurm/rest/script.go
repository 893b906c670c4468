package rest

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
)

// jobSpec is one batch job as slurmtune asks for it, independent of the API
// version: what sbatch would have made of the script's #SBATCH lines, the
// request's fields and its ExtraArgs.
//
// slurmrestd does not read #SBATCH lines (checked on 22.05: a script with
// --job-name, --output and --time ran unnamed, logged to slurm-%j.out in its
// working directory and without a time limit), so Submit parses them here,
// as sbatch does: from the first line up to the first line that is neither
// blank nor a comment. Options slurmtune's templates use are mapped; any
// other option is an error rather than silently dropped.
type jobSpec struct {
	Script  string
	Name    string
	Comment string
	WorkDir string
	Output  string
	Error   string
	Input   string
	// OpenMode is "append" or "truncate" ("" = cluster default).
	OpenMode    string
	Partition   string
	Account     string
	QOS         string
	Reservation string
	// MailTypes are --mail-type's events as sbatch names them (END, FAIL,
	// TIME_LIMIT_90, ...); MailUser --mail-user.
	MailTypes  []string
	MailUser   string
	Dependency string
	// Array is --array's task ids ("0-5%2"); "" for a plain job.
	Array string
	// KillOnInvalidDep is set with AfterOK (--kill-on-invalid-dep=yes).
	KillOnInvalidDep   *bool
	MinNodes, MaxNodes int
	Tasks              int
	TasksPerNode       int
	CPUsPerTask        int
	// MemPerNode and MemPerCPU are in MiB; nil when not given (0 means
	// "all the node's memory" for --mem=0).
	MemPerNode *int64
	MemPerCPU  *int64
	// TimeLimit is in minutes, 0 when not given; unlimited is -1.
	TimeLimit   int
	Gres        string
	Constraints string
	Nodelist    string
	Exclude     string
	Exclusive   bool
	Hold        bool
	Requeue     *bool
	// BatchSignal and BatchSignalDelay are --signal=B:SIG@T: SIG (a name
	// without "SIG", or a number) sent to the batch shell only, T seconds
	// before the time limit. "" when not given.
	BatchSignal      string
	BatchSignalDelay int
	Env              map[string]string
}

// SelfSignalEnv is the variable through which a job learns that it must
// send itself --signal=B:SIG@T ("SIG@T"): the API versions that cannot ask
// Slurm for a batch-only warning signal (v0.0.38) set it instead, and the
// train script arms a timer for it (templates/sbatch/train.sbatch.tmpl).
const SelfSignalEnv = "SLURMTUNE_SELF_SIGNAL"

// selfSignalEnv is s.Env plus SelfSignalEnv when s has a batch signal.
func (s *jobSpec) selfSignalEnv() map[string]string {
	if s.BatchSignal == "" {
		return s.Env
	}
	env := make(map[string]string, len(s.Env)+1)
	for k, v := range s.Env {
		env[k] = v
	}
	env[SelfSignalEnv] = s.BatchSignal + "@" + strconv.Itoa(s.BatchSignalDelay)
	return env
}

// defaultPath is the PATH a job gets when the request sets none. slurmrestd
// passes no environment of its own (and v0.0.38 refuses an empty one).
const defaultPath = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

// buildSpec turns a SubmitRequest into a jobSpec, in sbatch's order of
// precedence: #SBATCH lines, then the request's own fields (as cmdline passes
// them on sbatch's command line), then ExtraArgs.
func buildSpec(req slurm.SubmitRequest) (*jobSpec, error) {
	if len(bytes.TrimSpace(req.Script)) == 0 {
		return nil, fmt.Errorf("submit: the REST transport sends the script itself, and the request has none")
	}
	s := &jobSpec{Script: string(req.Script), Env: map[string]string{}}
	for _, d := range directives(req.Script) {
		if err := s.apply(d, "#SBATCH line"); err != nil {
			return nil, err
		}
	}
	if dep, kill := req.Dependency(); dep != "" {
		s.Dependency = dep
		if kill {
			yes := true
			s.KillOnInvalidDep = &yes
		}
	}
	s.Array = req.Array
	if req.Comment != "" {
		s.Comment = req.Comment
	}
	if req.WorkDir != "" {
		s.WorkDir = req.WorkDir
	}
	for _, a := range splitArgs(req.ExtraArgs) {
		if err := s.apply(a, "extra argument"); err != nil {
			return nil, err
		}
	}
	// Secrets travel like Env: in the request body, to slurmrestd only.
	for _, m := range []map[string]string{req.Env, req.Secrets} {
		for k, v := range m {
			s.Env[k] = v
		}
	}
	if _, ok := s.Env["PATH"]; !ok {
		s.Env["PATH"] = defaultPath
	}
	if s.Name == "" {
		// sbatch names a job after its script file.
		if req.ScriptPath != "" {
			s.Name = path.Base(req.ScriptPath)
		} else {
			s.Name = "sbatch"
		}
	}
	if s.WorkDir == "" {
		if req.ScriptPath != "" {
			s.WorkDir = path.Dir(req.ScriptPath)
		} else {
			return nil, fmt.Errorf("submit: no working directory (set SubmitRequest.WorkDir or #SBATCH --chdir): slurmrestd has none of its own to give the job")
		}
	}
	return s, nil
}

// envList is the environment as v0.0.40+ take it: sorted "K=V" strings.
func (s *jobSpec) envList() []string {
	out := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// directives returns the options of the script's leading #SBATCH lines.
func directives(script []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(script))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "#") {
			break
		}
		rest, ok := strings.CutPrefix(line, "#SBATCH")
		if !ok || rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			continue
		}
		out = append(out, slurm.DirectiveWords(rest)...)
	}
	return joinSeparateValues(out)
}

// splitArgs normalises ExtraArgs (each may be "--opt=v", "--opt v" split
// in two, or "-o v").
func splitArgs(args []string) []string { return joinSeparateValues(args) }

// joinSeparateValues turns ["--time", "5", "-o", "x", "-Jname"] into
// ["--time=5", "-o=x", "-J=name"].
func joinSeparateValues(words []string) []string {
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		name, _, hasVal := strings.Cut(w, "=")
		switch {
		case strings.HasPrefix(w, "--"):
			if !hasVal && takesValue(name) && i+1 < len(words) {
				w = name + "=" + words[i+1]
				i++
			}
		case strings.HasPrefix(w, "-") && len(w) >= 2:
			short := w[:2]
			if len(w) > 2 {
				w = short + "=" + strings.TrimPrefix(w[2:], "=")
			} else if takesValue(short) && i+1 < len(words) {
				w = short + "=" + words[i+1]
				i++
			}
		}
		out = append(out, w)
	}
	return out
}

var shortNames = map[string]string{
	"-J": "--job-name", "-o": "--output", "-e": "--error", "-i": "--input", "-p": "--partition",
	"-A": "--account", "-q": "--qos", "-N": "--nodes", "-n": "--ntasks", "-c": "--cpus-per-task",
	"-t": "--time", "-d": "--dependency", "-D": "--chdir", "-C": "--constraint", "-w": "--nodelist",
	"-x": "--exclude", "-H": "--hold",
}

// restSupported are the sbatch options the REST transport maps to
// slurmrestd's job description (--export only as NONE, --signal only as
// B:SIG[@T]).
var restSupported = strings.Fields("--job-name --comment --output --error --input --chdir --open-mode --partition --account --qos --reservation --mail-type --mail-user --dependency --kill-on-invalid-dep --nodes --ntasks --ntasks-per-node --cpus-per-task --mem --mem-per-cpu --time --gres --constraint --nodelist --exclude --exclusive --hold --requeue --no-requeue --signal=B: --export=NONE")

var restOptions = func() map[string]bool {
	m := map[string]bool{}
	for _, o := range restSupported {
		o, _, _ = strings.Cut(o, "=")
		m[o] = true
	}
	return m
}()

func unsupported(opt, where string) error {
	return fmt.Errorf("submit: %s %q: option not supported by the REST transport (supported: %s)", where, opt, strings.Join(restSupported, " "))
}

var flagOptions = map[string]bool{"--hold": true, "--requeue": true, "--no-requeue": true, "--exclusive": true}

func takesValue(name string) bool {
	if long, ok := shortNames[name]; ok {
		name = long
	}
	return !flagOptions[name]
}

// apply sets one option ("--name=value", "--flag" or "-x=value").
func (s *jobSpec) apply(opt, where string) error {
	name, val, hasVal := strings.Cut(opt, "=")
	if long, ok := shortNames[name]; ok {
		name = long
	}
	bad := func(err error) error {
		return fmt.Errorf("submit: %s %q: %v", where, opt, err)
	}
	if !restOptions[name] {
		return unsupported(opt, where)
	}
	need := func() error {
		if !hasVal || val == "" && name != "--comment" {
			return bad(fmt.Errorf("needs a value"))
		}
		return nil
	}
	posInt := func() (int, error) {
		n, err := strconv.Atoi(val)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("want a positive integer")
		}
		return n, nil
	}
	if !flagOptions[name] {
		if err := need(); err != nil {
			return err
		}
	}
	var err error
	switch name {
	case "--job-name":
		s.Name = val
	case "--comment":
		s.Comment = val
	case "--output":
		s.Output = val
	case "--error":
		s.Error = val
	case "--input":
		s.Input = val
	case "--chdir":
		s.WorkDir = val
	case "--open-mode":
		switch val {
		case "append", "truncate":
			s.OpenMode = val
		default:
			err = fmt.Errorf("want append or truncate")
		}
	case "--partition":
		s.Partition = val
	case "--account":
		s.Account = val
	case "--qos":
		s.QOS = val
	case "--reservation":
		s.Reservation = val
	case "--mail-type":
		s.MailTypes = nil
		for _, t := range strings.Split(val, ",") {
			if _, ok := mailTypes[t]; !ok {
				err = fmt.Errorf("unknown mail type %q", t)
				break
			}
			if t != "NONE" {
				s.MailTypes = append(s.MailTypes, t)
			}
		}
	case "--mail-user":
		s.MailUser = val
	case "--dependency":
		s.Dependency = val
	case "--kill-on-invalid-dep":
		var b bool
		switch val {
		case "yes":
			b = true
		case "no":
		default:
			err = fmt.Errorf("want yes or no")
		}
		s.KillOnInvalidDep = &b
	case "--nodes":
		s.MinNodes, s.MaxNodes, err = parseNodes(val)
	case "--ntasks":
		s.Tasks, err = posInt()
	case "--ntasks-per-node":
		s.TasksPerNode, err = posInt()
	case "--cpus-per-task":
		s.CPUsPerTask, err = posInt()
	case "--mem":
		var mb int64
		mb, err = parseMem(val)
		s.MemPerNode = &mb
	case "--mem-per-cpu":
		var mb int64
		mb, err = parseMem(val)
		s.MemPerCPU = &mb
	case "--time":
		s.TimeLimit, err = parseTimeLimit(val)
	case "--gres":
		s.Gres = val
	case "--constraint":
		s.Constraints = val
	case "--nodelist":
		s.Nodelist = val
	case "--exclude":
		s.Exclude = val
	case "--exclusive":
		if hasVal {
			err = fmt.Errorf("only the plain --exclusive is supported")
		}
		s.Exclusive = true
	case "--hold":
		s.Hold = true
	case "--requeue", "--no-requeue":
		b := name == "--requeue"
		s.Requeue = &b
	case "--signal":
		s.BatchSignal, s.BatchSignalDelay, err = parseBatchSignal(val)
	case "--export":
		// The REST transport always sends exactly SubmitRequest.Env (plus
		// PATH); --export=NONE is what it does anyway.
		if val != "NONE" {
			err = fmt.Errorf("the REST transport sends only SubmitRequest.Env; use that instead")
		}
	default:
		return unsupported(opt, where)
	}
	if err != nil {
		return bad(err)
	}
	return nil
}

// parseBatchSignal reads --signal's B:SIG[@T] (T defaults to 60 s, as
// sbatch's). Only the batch-only form is taken: it is what the templates
// use, and a signal to every step is not what a script trapping it wants.
func parseBatchSignal(v string) (string, int, error) {
	rest, ok := strings.CutPrefix(v, "B:")
	if !ok {
		return "", 0, fmt.Errorf("only the batch-only form B:SIG[@SECONDS] is supported over REST")
	}
	sig, delay, hasDelay := strings.Cut(rest, "@")
	sig = strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if sig == "" || strings.Trim(sig, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		return "", 0, fmt.Errorf("want B:SIG[@SECONDS], e.g. B:USR2@120")
	}
	t := 60
	if hasDelay {
		n, err := strconv.Atoi(delay)
		if err != nil || n < 0 || n > 0xffff {
			return "", 0, fmt.Errorf("want B:SIG[@SECONDS] with 0 to 65535 seconds")
		}
		t = n
	}
	return sig, t, nil
}

// parseNodes reads --nodes N or N-M.
func parseNodes(v string) (int, int, error) {
	lo, hi, isRange := strings.Cut(v, "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a <= 0 {
		return 0, 0, fmt.Errorf("want N or N-M nodes")
	}
	if !isRange {
		return a, a, nil
	}
	b, err := strconv.Atoi(hi)
	if err != nil || b < a {
		return 0, 0, fmt.Errorf("want N or N-M nodes")
	}
	return a, b, nil
}

// parseMem reads sbatch's memory sizes (default unit MiB) into MiB.
func parseMem(v string) (int64, error) {
	v = strings.TrimSpace(v)
	mult := int64(1)
	if v != "" {
		switch strings.ToUpper(v[len(v)-1:]) {
		case "K":
			mult = -1024
		case "M":
			mult = 1
		case "G":
			mult = 1024
		case "T":
			mult = 1024 * 1024
		}
		if strings.ContainsAny(strings.ToUpper(v[len(v)-1:]), "KMGT") {
			v = v[:len(v)-1]
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size like 4000, 16G or 512M")
	}
	if mult < 0 {
		return (n + 1023) / 1024, nil
	}
	return n * mult, nil
}

// parseTimeLimit reads sbatch's --time (minutes, MM:SS, HH:MM:SS, D-HH,
// D-HH:MM, D-HH:MM:SS, UNLIMITED) into minutes, rounding seconds up as
// Slurm does.
func parseTimeLimit(v string) (int, error) {
	switch strings.ToUpper(v) {
	case "UNLIMITED", "INFINITE", "-1":
		return -1, nil
	}
	d, err := cmdline.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("want a time like 30, 1:00:00 or 2-00:00:00")
	}
	min := int((d.Seconds() + 59) / 60)
	if min <= 0 {
		return 0, fmt.Errorf("want a positive time")
	}
	return min, nil
}

// mailTypes maps sbatch's --mail-type names to the newer APIs' (v0.0.40 and
// later name them differently; v0.0.38 takes sbatch's string as it is).
var mailTypes = map[string][]string{
	"NONE": nil, "BEGIN": {"BEGIN"}, "END": {"END"}, "FAIL": {"FAIL"}, "REQUEUE": {"REQUEUE"},
	"ALL":            {"BEGIN", "END", "FAIL", "INVALID_DEPENDENCY", "REQUEUE", "STAGE_OUT"},
	"INVALID_DEPEND": {"INVALID_DEPENDENCY"}, "STAGE_OUT": {"STAGE_OUT"}, "TIME_LIMIT": {"TIME=100%"},
	"TIME_LIMIT_90": {"TIME=90%"}, "TIME_LIMIT_80": {"TIME=80%"}, "TIME_LIMIT_50": {"TIME=50%"}, "ARRAY_TASKS": {"ARRAY_TASKS"},
}

// newMailTypes is s.MailTypes in v0.0.40/v0.0.41's names.
func newMailTypes[T ~string](s *jobSpec) *[]T {
	if len(s.MailTypes) == 0 {
		return nil
	}
	var out []T
	for _, t := range s.MailTypes {
		for _, n := range mailTypes[t] {
			out = append(out, T(n))
		}
	}
	return &out
}
