// Package preflight checks a valid pipeline against the cluster it names
// (validate --cluster): partitions, nodes, time limits, account and QOS,
// node features, reservations and GPU types, and whether Slurm takes every
// rendered script. It asks the cluster through a slurm.Inspector and
// reports problems at the pipeline key they concern.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/templates"
)

// Inspector is what preflight asks the cluster (a slurm.Inspector).
type Inspector interface {
	Partitions(ctx context.Context) ([]slurm.Partition, error)
	Nodes(ctx context.Context, partition string) ([]slurm.Node, error)
	Reservations(ctx context.Context) ([]string, error)
	HasAccount(ctx context.Context, name string) (bool, error)
	HasQOS(ctx context.Context, name string) (bool, error)
	TestSubmit(ctx context.Context, req slurm.SubmitRequest) error
}

// Check checks a valid pipeline against the cluster it names (validate
// --cluster): the partition exists and is up, the nodes can hold the train
// stage, every stage's time fits the partition's MaxTime (or train chains
// over it), the account and QOS exist, and Slurm accepts every rendered
// script (sbatch --test-only). Problems come back as jobs.Errors, at the
// pipeline key they concern; warnings are what could not be checked. An
// error means the cluster could not be asked at all.
func Check(ctx context.Context, insp Inspector, p *jobs.Pipeline, file string, scripts []templates.Script) (jobs.Errors, []string, error) {
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
	parts, err := insp.Partitions(ctx)
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
	if nodes, err := insp.Nodes(ctx, part.Name); err != nil {
		warnings = append(warnings, fmt.Sprintf("could not list the nodes of %s: %v", what, err))
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
	for _, q := range []struct {
		key, entity, name string
		has               func(context.Context, string) (bool, error)
	}{{"cluster.account", "account", p.Cluster.Account, insp.HasAccount}, {"cluster.qos", "qos", p.Cluster.QOS, insp.HasQOS}} {
		if q.name == "" {
			continue
		}
		found, err := q.has(ctx, q.name)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("could not check %s %q (accounting unavailable?): %v", q.key, q.name, err))
			continue
		}
		if !found {
			problem(at(q.key), "%s: the cluster has no %s %q", q.key, q.entity, q.name)
		}
	}

	// Features, reservations and GPU types the stages name.
	errs = append(errs, checkStageOptions(ctx, insp, p, file, at, &warnings)...)

	// Would Slurm take each script as it will be submitted?
	for _, sc := range scripts {
		err := insp.TestSubmit(ctx, slurm.SubmitRequest{Script: sc.Body, Comment: templates.Comment("preflight", sc.Stage),
			ExtraArgs: []string{"--output=" + sc.Log}})
		var refused *slurm.RefusedError
		switch {
		case err == nil:
		case errors.As(err, &refused):
			problem(at(sc.Stage, "cluster"), "%s: sbatch --test-only refuses the %s script: %s", sc.Stage, sc.Stage, refused.Reason)
		default:
			return nil, nil, fmt.Errorf("validate --cluster: %w", err)
		}
	}
	return errs, warnings, nil
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
func checkStageOptions(ctx context.Context, insp Inspector, p *jobs.Pipeline, file string, at func(...string) jobs.Pos, warnings *[]string) jobs.Errors {
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
		nodes, err := insp.Nodes(ctx, "")
		if err != nil {
			*warnings = append(*warnings, fmt.Sprintf("could not list the nodes' features and GPU types: %v", err))
			need.features, need.gpuTypes = false, false
		}
		for _, n := range nodes {
			for _, name := range n.Features {
				features[name] = true
			}
			for _, t := range n.GPUTypes {
				gpuTypes[t] = true
			}
		}
	}
	reservations := map[string]bool{}
	if need.reservations {
		names, err := insp.Reservations(ctx)
		if err != nil {
			*warnings = append(*warnings, fmt.Sprintf("could not list the reservations: %v", err))
			need.reservations = false
		}
		for _, name := range names {
			reservations[name] = true
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
