// Package sweep owns a pipeline's sweep: expanding sweep.grid and
// sweep.random into points (deterministic for a seed), resolving each point
// into the pipeline its task runs (the file with the point's --set
// overrides, checked like any pipeline), the per-task settings files of the
// run directory, the checks against the cluster's MaxArraySize, and picking
// the winner among the tasks that passed every gate.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
)

// MaxPoints bounds one sweep, whatever the cluster allows.
const MaxPoints = 100000

// Point is one point of a sweep: the value of every swept key.
type Point struct {
	// Index is the point's array task id (0, 1, ...).
	Index int `json:"task"`
	// Keys are the swept key paths in the order the point was made (grid
	// keys sorted, then random keys sorted); Values holds their values.
	Keys   []string       `json:"keys"`
	Values map[string]any `json:"values"`
}

// Sets returns the point as --set key=value overrides, in Keys order.
func (p Point) Sets() []string {
	out := make([]string, len(p.Keys))
	for i, k := range p.Keys {
		out[i] = k + "=" + setValue(p.Values[k])
	}
	return out
}

// String is the point as key=value pairs.
func (p Point) String() string { return strings.Join(p.Sets(), " ") }

// setValue writes v so that --set reads it back as the same value and type.
func setValue(v any) string {
	switch x := v.(type) {
	case float64:
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEn") {
			s += ".0" // stays a float
		}
		return s
	case string:
		var back any
		if err := yaml.Unmarshal([]byte(x), &back); err == nil && back == x && !strings.ContainsAny(x, "\n\r") {
			return x
		}
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	}
	return fmt.Sprint(v)
}

// Count is how many points s makes, or an error when that is more than
// MaxPoints.
func Count(s *jobs.Sweep) (int, error) {
	grid, _ := s.Keys()
	n := 1
	for _, k := range grid {
		vs, err := gridValues(s.Grid[k])
		if err != nil {
			return 0, fmt.Errorf("sweep.grid.%s: %w", k, err)
		}
		n *= len(vs)
		if n > MaxPoints {
			return 0, fmt.Errorf("sweep: more than %d points", MaxPoints)
		}
	}
	if s.Random != nil {
		n *= s.Random.N
	}
	if n > MaxPoints {
		return 0, fmt.Errorf("sweep: %d points is more than %d", n, MaxPoints)
	}
	return n, nil
}

// Expand returns the points of s: the grid's cartesian product (last key
// varying fastest), each grid point followed by Random.N draws when random
// is set. The same sweep (and seed) always gives the same points.
func Expand(s *jobs.Sweep) ([]Point, error) {
	if s == nil {
		return nil, errors.New("not a sweep")
	}
	total, err := Count(s)
	if err != nil {
		return nil, err
	}
	grid, random := s.Keys()
	values := make([][]any, len(grid))
	for i, k := range grid {
		values[i], _ = gridValues(s.Grid[k]) // checked by Count
	}
	var rng *rand.Rand
	draws := 1
	if s.Random != nil {
		rng = rand.New(rand.NewPCG(uint64(s.Random.Seed), 0x5eed))
		draws = s.Random.N
	}
	keys := append(append([]string{}, grid...), random...)
	out := make([]Point, 0, total)
	idx := make([]int, len(grid))
	for {
		for d := 0; d < draws; d++ {
			pt := Point{Index: len(out), Keys: keys, Values: make(map[string]any, len(keys))}
			for i, k := range grid {
				pt.Values[k] = values[i][idx[i]]
			}
			for _, k := range random {
				pt.Values[k] = draw(rng, s.Random.Params[k])
			}
			out = append(out, pt)
		}
		// Next grid index, last key fastest.
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(values[i]) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return out, nil
		}
	}
}

// round6 keeps 6 significant digits, so generated values read well in a
// table and in --set.
func round6(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 6, 64), 64)
	return v
}

func number(x float64, whole bool) any {
	if whole {
		return int(math.Round(x))
	}
	return round6(x)
}

func gridValues(p jobs.SweepParam) ([]any, error) {
	if !p.IsRange() {
		if len(p.Values) == 0 {
			return nil, errors.New("no values")
		}
		return p.Values, nil
	}
	if p.From == nil || p.To == nil {
		return nil, errors.New("a range needs from and to")
	}
	from, to := *p.From, *p.To
	whole := p.Int || !p.Log && from == math.Trunc(from) && to == math.Trunc(to) && p.Step == math.Trunc(p.Step)
	var out []any
	switch {
	case p.Step > 0:
		n := int(math.Floor((to-from)/p.Step+1e-9)) + 1
		if n > MaxPoints {
			return nil, fmt.Errorf("more than %d values", MaxPoints)
		}
		for i := 0; i < n; i++ {
			out = append(out, number(from+float64(i)*p.Step, whole))
		}
	case p.Num > 0:
		if p.Num > MaxPoints {
			return nil, fmt.Errorf("more than %d values", MaxPoints)
		}
		for i := 0; i < p.Num; i++ {
			t := 0.0
			if p.Num > 1 {
				t = float64(i) / float64(p.Num-1)
			}
			x := from + t*(to-from)
			if p.Log {
				x = math.Exp(math.Log(from) + t*(math.Log(to)-math.Log(from)))
			}
			out = append(out, number(x, p.Int))
		}
	default:
		return nil, errors.New("a grid range needs step or num")
	}
	return out, nil
}

func draw(r *rand.Rand, p jobs.SweepParam) any {
	if !p.IsRange() {
		return p.Values[r.IntN(len(p.Values))]
	}
	from, to := *p.From, *p.To
	u := r.Float64()
	x := from + u*(to-from)
	if p.Log {
		x = math.Exp(math.Log(from) + u*(math.Log(to)-math.Log(from)))
	}
	if p.Int {
		if !p.Log {
			return int(from) + r.IntN(int(to-from)+1)
		}
		return int(math.Round(x))
	}
	return round6(x)
}

// Varying returns the keys whose value differs between points, in order.
func Varying(pts []Point) []string {
	if len(pts) == 0 {
		return nil
	}
	var out []string
	for _, k := range pts[0].Keys {
		first := fmt.Sprint(pts[0].Values[k])
		for _, pt := range pts[1:] {
			if fmt.Sprint(pt.Values[k]) != first {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

// ParamPath is where key sits in the pipeline file.
func ParamPath(s *jobs.Sweep, key string) string {
	if _, ok := s.Grid[key]; ok {
		return "sweep.grid." + key
	}
	return "sweep.random.params." + key
}

// Task is one point resolved: the pipeline its train and eval jobs run.
type Task struct {
	Point
	Pipeline *jobs.Pipeline
}

// Resolve expands p's sweep and loads the pipeline of every point: src
// (the file p was parsed from) with opts' --set overrides and then the
// point's. A point that makes
// the file invalid (a key that does not exist, a value of the wrong type
// or out of range) is reported at the swept key in the file, once per
// problem. name is how errors name the file.
func Resolve(p *jobs.Pipeline, name string, src []byte, opts jobs.LoadOptions) ([]Task, error) {
	pts, err := Expand(p.Sweep)
	if err != nil {
		return nil, jobs.Errors{{File: name, Pos: p.Pos["sweep"], Msg: err.Error()}}
	}
	tasks := make([]Task, 0, len(pts))
	var errs jobs.Errors
	seen := map[string]bool{}
	for _, pt := range pts {
		sets := append(append([]string{}, opts.Sets...), pt.Sets()...)
		tp, err := jobs.Parse(name, p.File, src, jobs.LoadOptions{Sets: sets})
		if err != nil {
			var perrs jobs.Errors
			if !errors.As(err, &perrs) {
				return nil, err
			}
			for _, fe := range perrs {
				// One line per problem, not per value: the first value
				// with it is named.
				e, once := taskError(p, name, pt, fe)
				if !seen[once] {
					seen[once] = true
					errs = append(errs, e)
				}
			}
			continue
		}
		tp.Sweep = nil
		tasks = append(tasks, Task{Point: pt, Pipeline: tp})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return tasks, nil
}

// ArraySizer is a cluster that says its MaxArraySize (a slurm.Inspector).
type ArraySizer interface {
	MaxArraySize(ctx context.Context) (int, error)
}

// Tasks is Load for a pipeline already loaded with opts (nil, nil when it
// is not a sweep): its tasks resolved from its file and, unless cluster is
// nil, checked to fit one array.
func Tasks(ctx context.Context, p *jobs.Pipeline, name string, opts jobs.LoadOptions, cluster ArraySizer) ([]Task, error) {
	if p.Sweep == nil {
		return nil, nil
	}
	src, err := os.ReadFile(p.File)
	if err != nil {
		return nil, fmt.Errorf("read pipeline file: %w", err)
	}
	tasks, err := Resolve(p, name, src, opts)
	if err != nil {
		return nil, err
	}
	if p.Cluster.Transport == "rest" {
		// slurmrestd is not asked about one array task (ARRAY_K), so a
		// sweep's tasks could be queued but not followed: refuse it before
		// anything is queued.
		return nil, jobs.Errors{{File: name, Pos: p.Pos["sweep"], Msg: "sweep: the rest transport cannot follow a job array's tasks yet; submit sweeps with cluster.transport local or ssh"}}
	}
	if cluster != nil {
		max, err := cluster.MaxArraySize(ctx)
		if errors.Is(err, slurm.ErrNotAvailable) {
			return tasks, nil // no Slurm commands here (REST): sbatch itself refuses an array too large
		}
		if err != nil {
			return nil, err
		}
		if err := CheckArraySize(p, name, len(tasks), max); err != nil {
			return nil, err
		}
	}
	return tasks, nil
}

// taskError places a problem of a point's pipeline at the swept key it
// comes from (or where it is, when no swept key caused it); once is the
// problem without the value, to report it once.
func taskError(p *jobs.Pipeline, name string, pt Point, fe *jobs.FieldError) (_ *jobs.FieldError, once string) {
	key := fe.Pos.Set
	if key == "" {
		for _, k := range pt.Keys {
			if strings.Contains(fe.Msg, "--set "+k+"=") {
				key = k
			}
		}
	}
	if _, swept := pt.Values[key]; !swept {
		if fe.Pos.Line == 0 && fe.Pos.Set == "" {
			return &jobs.FieldError{File: name, Pos: p.Pos["sweep"], Msg: fmt.Sprintf("sweep: task %d (%s): %s", pt.Index, pt, fe.Msg)}, fe.Msg
		}
		return fe, fe.Error()
	}
	path := ParamPath(p.Sweep, key)
	msg := strings.TrimPrefix(strings.TrimPrefix(fe.Msg, key+": "), "--set "+key+"="+setValue(pt.Values[key])+": ")
	return &jobs.FieldError{File: name, Pos: p.Pos[path], Msg: fmt.Sprintf("%s: %s=%s: %s", path, key, setValue(pt.Values[key]), msg)}, path + ": " + msg
}

// CheckArraySize refuses a sweep of n tasks on a cluster whose
// MaxArraySize is max (task ids run from 0 to MaxArraySize-1). max <= 0
// means unknown: nothing is checked.
func CheckArraySize(p *jobs.Pipeline, name string, n, max int) error {
	if max <= 0 || n <= max {
		return nil
	}
	return jobs.Errors{{File: name, Pos: p.Pos["sweep"], Msg: fmt.Sprintf(
		"sweep: %d tasks is more than the cluster's MaxArraySize (%d, from scontrol show config): one job array holds task ids 0 to %d", n, max, max-1)}}
}

// Result is how one task ended, as the select job reads it.
type Result struct {
	Task int `json:"task"`
	// Metric is the select metric's value; nil when eval produced none.
	Metric *float64 `json:"metric,omitempty"`
	// Passed is whether the task's train and eval succeeded and every
	// gate passed; Reason says why not.
	Passed bool   `json:"passed"`
	Reason string `json:"reason,omitempty"`
}

// Line is the result as the select job logs it: "perplexity 3.2, passed".
func (r Result) Line(metric string) string {
	s := metric + " -"
	if r.Metric != nil {
		s = fmt.Sprintf("%s %.6g", metric, *r.Metric)
	}
	if r.Passed {
		return s + ", passed"
	}
	return s + ", " + r.Reason
}

// Select returns the best task among those that passed, by metric and goal
// (min or max; ties go to the lower task id). When none passed the error
// says why each did not.
func Select(metric, goal string, results []Result) (int, error) {
	best := -1
	var bestV float64
	var why []string
	for _, r := range results {
		if !r.Passed || r.Metric == nil {
			reason := r.Reason
			if r.Passed {
				reason = "eval produced no " + metric
			}
			why = append(why, fmt.Sprintf("task %d: %s", r.Task, reason))
			continue
		}
		v := *r.Metric
		if best < 0 || goal == "max" && v > bestV || goal != "max" && v < bestV || v == bestV && r.Task < best {
			best, bestV = r.Task, v
		}
	}
	if best < 0 {
		if len(why) == 0 {
			return -1, errors.New("no task passed: the sweep has no tasks")
		}
		return -1, fmt.Errorf("no task passed every gate (%s)", strings.Join(why, "; "))
	}
	return best, nil
}
