package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/templates"
)

// preflight checks a valid pipeline against the cluster it names (validate
// --cluster): the partition exists and is up, the nodes can hold the train
// stage, every stage's time fits the partition's MaxTime (or train chains
// over it), the account and QOS exist, and Slurm accepts every rendered
// script (sbatch --test-only). Problems come back as jobs.Errors, at the
// pipeline key they concern; warnings are what could not be checked. An
// error means the cluster could not be asked at all.
func preflight(ctx context.Context, run cmdline.Runner, p *jobs.Pipeline, file string, scripts []templates.Script) (jobs.Errors, []string, error) {
	var errs jobs.Errors
	var warnings []string
	at := func(keys ...string) jobs.Pos {
		for _, k := range keys {
			if pos, ok := p.Pos[k]; ok {
				return pos
			}
		}
		return jobs.Pos{}
	}
	problem := func(pos jobs.Pos, format string, args ...any) {
		errs = append(errs, &jobs.FieldError{File: file, Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	parts, err := cmdline.New(run).Partitions(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("validate --cluster: %w", err)
	}
	var part *slurm.Partition
	var names []string
	for i, pt := range parts {
		names = append(names, pt.Name)
		if pt.Name == p.Cluster.Partition || p.Cluster.Partition == "" && pt.Default {
			part = &parts[i]
		}
	}
	switch {
	case part == nil && p.Cluster.Partition != "":
		problem(at("cluster.partition"), "cluster.partition: the cluster has no partition %q (it has: %s)", p.Cluster.Partition, strings.Join(names, ", "))
	case part == nil:
		problem(at("cluster"), "cluster.partition: not set and the cluster has no default partition (it has: %s)", strings.Join(names, ", "))
	}
	if part == nil {
		return errs, warnings, nil
	}
	what := "partition " + part.Name
	if p.Cluster.Partition == "" {
		what = "the default partition " + part.Name
	}
	if part.State != "UP" {
		problem(at("cluster.partition", "cluster"), "cluster.partition: %s is %s, not UP", what, part.State)
	}

	// Nodes: can the partition hold the train stage at all?
	out, err := run.Run(ctx, cmdline.Command{Argv: []string{"sinfo", "--noheader", "--Node", "--partition=" + part.Name, "--format=%N|%c|%m|%G|%T"}})
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("could not list the nodes of %s: %v", what, err))
	} else if nodes, err := parseSinfoNodes(out); err != nil {
		warnings = append(warnings, err.Error())
	} else if p.StageOn(jobs.StageTrain) {
		t := p.Train
		cpus := t.TasksPerNode * t.CPUs
		fit := 0
		for _, n := range nodes {
			if n.CPUs >= cpus && n.GPUs >= t.GPUsPerNode && (n.MemMB == 0 || n.MemMB >= t.Mem.MiB) {
				fit++
			}
		}
		if fit < t.Nodes {
			need := fmt.Sprintf("%d CPUs and %s of memory", cpus, t.Mem.Slurm())
			if t.GPUsPerNode > 0 {
				need = fmt.Sprintf("%d GPUs, ", t.GPUsPerNode) + need
			}
			problem(at("train.nodes", "train"), "train.nodes: %d nodes with %s each do not fit %s: %d of its %d nodes have that", t.Nodes, need, what, fit, len(nodes))
		}
	}

	// Time limits.
	if max := part.MaxTime; max > 0 {
		for _, st := range p.Stages() {
			var c jobs.StageCommon
			switch st {
			case jobs.StagePrep:
				c = p.Prep
			case jobs.StageTrain:
				c = p.Train.StageCommon
			case jobs.StageEval:
				c = p.Eval.StageCommon
			case jobs.StageDeploy:
				c = p.Deploy.StageCommon
			}
			if c.Time.Duration <= max {
				continue
			}
			key := st + ".time"
			if st != jobs.StageTrain || !p.Train.ChainTimeLimit {
				hint := ""
				if st == jobs.StageTrain {
					hint = " (or set train.chain_time_limit: true to run it as a chain of requeued jobs)"
				}
				problem(at(key, st), "%s: %s is above the MaxTime of %s (%s)%s", key, c.Time.Slurm(), what, jobs.Duration{Duration: max}.Slurm(), hint)
				continue
			}
			// Chained: each job gets MaxTime; enough restarts to cover train.time?
			jobsNeeded := int((c.Time.Duration + max - 1) / max)
			if r := p.Train.Restarts(); jobsNeeded-1 > r {
				problem(at("train.max_restarts", "train.chain_time_limit"), "train.max_restarts: %d restarts of %s jobs (%s each) cover %s, less than train.time %s: allow at least %d",
					r, what, jobs.Duration{Duration: max}.Slurm(), jobs.Duration{Duration: time.Duration(r+1) * max}.Slurm(), c.Time.Slurm(), jobsNeeded-1)
			}
			if g := time.Duration(p.Train.SignalGrace) * time.Second; g >= max {
				problem(at("train.signal_grace", "train"), "train.signal_grace: %d s is not shorter than the MaxTime of %s", p.Train.SignalGrace, what)
			}
		}
	}

	// Account and QOS.
	for _, q := range []struct{ key, entity, name string }{{"cluster.account", "account", p.Cluster.Account}, {"cluster.qos", "qos", p.Cluster.QOS}} {
		if q.name == "" {
			continue
		}
		field := "account"
		if q.entity == "qos" {
			field = "name"
		}
		out, err := run.Run(ctx, cmdline.Command{Argv: []string{"sacctmgr", "--noheader", "--parsable2", "show", q.entity, q.name, "format=" + field}})
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("could not check %s %q (accounting unavailable?): %v", q.key, q.name, err))
			continue
		}
		found := false
		for _, l := range strings.Split(string(out), "\n") {
			if strings.EqualFold(strings.TrimSpace(l), q.name) {
				found = true
			}
		}
		if !found {
			problem(at(q.key), "%s: the cluster has no %s %q", q.key, q.entity, q.name)
		}
	}

	// Features, reservations and GPU types the stages name.
	errs = append(errs, checkStageOptions(ctx, run, p, file, at, &warnings)...)

	// Would Slurm take each script as it will be submitted?
	for _, sc := range scripts {
		argv := []string{"sbatch", "--test-only", "--comment=" + templates.Comment("preflight", sc.Stage), "--output=" + sc.Log}
		_, err := run.Run(ctx, cmdline.Command{Argv: argv, Stdin: sc.Body})
		var ee *cmdline.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			problem(at(sc.Stage, "cluster"), "%s: sbatch --test-only refuses the %s script: %s", sc.Stage, sc.Stage, sbatchComplaint(ee.Stderr))
		default:
			return nil, nil, fmt.Errorf("validate --cluster: sbatch --test-only: %w", err)
		}
	}
	return errs, warnings, nil
}

// sbatchComplaint is sbatch's error output on one line.
func sbatchComplaint(stderr string) string {
	var msgs []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "sbatch: error:"))
		if l != "" {
			msgs = append(msgs, l)
		}
	}
	if len(msgs) == 0 {
		return "no reason given"
	}
	return strings.Join(msgs, "; ")
}

// sinfoNode is one line of sinfo --Node --format=%N|%c|%m|%G|%T.
type sinfoNode struct {
	Name  string
	CPUs  int
	MemMB int64
	GPUs  int
	State string
}

// parseSinfoNodes reads sinfo --noheader --Node --format=%N|%c|%m|%G|%T;
// a node listed twice (in several partitions) counts once.
func parseSinfoNodes(out []byte) ([]sinfoNode, error) {
	seen := map[string]bool{}
	var nodes []sinfoNode
	for i, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 5 {
			return nil, fmt.Errorf("sinfo line %d: want 5 fields, got %d: %q", i+1, len(f), line)
		}
		n := sinfoNode{Name: f[0], State: f[4], GPUs: gpuCount(f[3])}
		var err error
		if n.CPUs, err = strconv.Atoi(strings.TrimSuffix(f[1], "+")); err != nil {
			return nil, fmt.Errorf("sinfo line %d: CPUs %q", i+1, f[1])
		}
		n.MemMB, _ = strconv.ParseInt(strings.TrimSuffix(f[2], "+"), 10, 64)
		if !seen[n.Name] {
			seen[n.Name] = true
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// gpuCount is the number of GPUs in a node's gres as sinfo's %G prints it:
// "gpu:4", "gpu:a100:8(S:0-1)", "gpu:a100:4,gpu:v100:2,shard:8", "(null)".
func gpuCount(gres string) int {
	total := 0
	depth := 0
	var item strings.Builder
	flush := func() {
		s := item.String()
		item.Reset()
		if i := strings.IndexByte(s, '('); i >= 0 {
			s = s[:i]
		}
		f := strings.Split(s, ":")
		if len(f) < 2 || f[0] != "gpu" {
			return
		}
		if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
			total += n
		}
	}
	for _, r := range gres {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			flush()
			continue
		}
		item.WriteRune(r)
	}
	flush()
	return total
}

// stageOptions lists each stage's Slurm options with its key.
func stageOptions(p *jobs.Pipeline) []struct {
	key string
	o   jobs.SlurmOptions
} {
	type ko = struct {
		key string
		o   jobs.SlurmOptions
	}
	var out []ko
	for _, st := range p.Stages() {
		switch st {
		case jobs.StagePrep:
			out = append(out, ko{st, p.Prep.SlurmOptions})
		case jobs.StageTrain:
			out = append(out, ko{st, p.Train.SlurmOptions})
		case jobs.StageEval:
			out = append(out, ko{st, p.Eval.SlurmOptions})
		case jobs.StageDeploy:
			out = append(out, ko{st, p.Deploy.SlurmOptions}, ko{"deploy.serve", p.Deploy.Serve.SlurmOptions})
		}
	}
	return out
}

var featureNameRe = regexp.MustCompile(`[A-Za-z_.-][A-Za-z0-9_.-]*`)

// checkStageOptions checks the node features of each stage's constraint,
// its reservation and its GPU type against the cluster.
func checkStageOptions(ctx context.Context, run cmdline.Runner, p *jobs.Pipeline, file string, at func(...string) jobs.Pos, warnings *[]string) jobs.Errors {
	var errs jobs.Errors
	problem := func(key, format string, args ...any) {
		errs = append(errs, &jobs.FieldError{File: file, Pos: at(key), Msg: key + ": " + fmt.Sprintf(format, args...)})
	}
	var need struct{ features, reservations, gpuTypes bool }
	for _, s := range stageOptions(p) {
		need.features = need.features || s.o.Constraint != ""
		need.reservations = need.reservations || s.o.Reservation != ""
		need.gpuTypes = need.gpuTypes || s.o.GPUType != ""
	}
	features, gpuTypes := map[string]bool{}, map[string]bool{}
	if need.features || need.gpuTypes {
		out, err := run.Run(ctx, cmdline.Command{Argv: []string{"sinfo", "--noheader", "--Node", "--format=%f|%G"}})
		if err != nil {
			*warnings = append(*warnings, fmt.Sprintf("could not list the nodes' features and GPU types: %v", err))
			need.features, need.gpuTypes = false, false
		}
		for _, line := range strings.Split(string(out), "\n") {
			f, g, _ := strings.Cut(strings.TrimSpace(line), "|")
			for _, name := range strings.Split(f, ",") {
				if name != "" && name != "(null)" {
					features[name] = true
				}
			}
			for _, t := range gresGPUTypes(g) {
				gpuTypes[t] = true
			}
		}
	}
	reservations := map[string]bool{}
	if need.reservations {
		out, err := run.Run(ctx, cmdline.Command{Argv: []string{"scontrol", "--oneliner", "show", "reservation"}})
		if err != nil {
			*warnings = append(*warnings, fmt.Sprintf("could not list the reservations: %v", err))
			need.reservations = false
		}
		for _, line := range strings.Split(string(out), "\n") {
			for _, tok := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(tok, "ReservationName="); ok {
					reservations[v] = true
				}
			}
		}
	}
	for _, s := range stageOptions(p) {
		if need.features && s.o.Constraint != "" {
			for _, name := range featureNameRe.FindAllString(s.o.Constraint, -1) {
				if !features[name] {
					problem(s.key+".constraint", "no node of the cluster has the feature %q (they have: %s)", name, sortedList(features))
				}
			}
		}
		if need.reservations && s.o.Reservation != "" && !reservations[s.o.Reservation] {
			problem(s.key+".reservation", "the cluster has no reservation %q (it has: %s)", s.o.Reservation, sortedList(reservations))
		}
		if need.gpuTypes && s.o.GPUType != "" && !gpuTypes[s.o.GPUType] {
			key := s.key + ".gpu_type"
			if _, ok := p.Pos[key]; !ok && s.key == jobs.StageTrain {
				key = "train.gpus_per_node" // the type came from a100:4
			}
			problem(key, "the cluster has no GPUs of type %q (it has: %s)", s.o.GPUType, sortedList(gpuTypes))
		}
	}
	return errs
}

// gresGPUTypes are the GPU types in a node's gres as sinfo's %G prints it
// ("gpu:a100:4(S:0-1),gpu:v100:2" -> a100, v100; "gpu:4" has none).
func gresGPUTypes(gres string) []string {
	var out []string
	for _, item := range splitGres(gres) {
		if i := strings.IndexByte(item, '('); i >= 0 {
			item = item[:i]
		}
		f := strings.Split(item, ":")
		if len(f) == 3 && f[0] == "gpu" {
			out = append(out, f[1])
		}
	}
	return out
}

// splitGres splits sinfo's %G at the commas outside parentheses.
func splitGres(gres string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range gres {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			out = append(out, gres[start:i])
			start = i + 1
		}
	}
	return append(out, gres[start:])
}

func sortedList(m map[string]bool) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
