package jobs

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sweep is the sweep section: the pipeline is trained and evaluated once
// per point (one Slurm job array each for train and eval), and the best
// point that passed every gate is deployed. The points are the grid's
// cartesian product, each combined with Random.N random draws when Random
// is set. Keys are --set key paths (train.hyperparameters.learning_rate,
// train.lora.r, ...). Package jobs/sweep expands and resolves the points.
type Sweep struct {
	Grid   map[string]SweepParam `yaml:"grid,omitempty"`
	Random *SweepRandom          `yaml:"random,omitempty"`
	// MaxParallel caps how many tasks of an array run at once
	// (--array=0-N%MaxParallel); 0: no cap.
	MaxParallel int         `yaml:"max_parallel,omitempty"`
	Select      SweepSelect `yaml:"select,omitempty"`
}

// SweepRandom is sweep.random: N points drawn from Params with Seed (the
// same seed gives the same points).
type SweepRandom struct {
	N      int                   `yaml:"n"`
	Seed   int64                 `yaml:"seed"`
	Params map[string]SweepParam `yaml:"params"`
}

// SweepSelect is sweep.select: the eval metric that ranks the tasks, and
// whether lower (min) or higher (max) is better.
type SweepSelect struct {
	Metric string `yaml:"metric"`
	Goal   string `yaml:"goal"`
}

// SweepParam is the values of one swept key. Written as a list, they are
// the values themselves (a grid takes each, random picks one). Written as
// a mapping {from, to} it is a range: in a grid, with step (from, from+step,
// ... up to to) or num (num evenly spaced values, log-spaced with log:
// true); in random, a uniform draw (log-uniform with log: true; whole
// numbers with int: true).
type SweepParam struct {
	Values []any
	SweepRange
}

// SweepRange is the mapping form of a SweepParam.
type SweepRange struct {
	From *float64 `yaml:"from"`
	To   *float64 `yaml:"to"`
	Step float64  `yaml:"step,omitempty"`
	Num  int      `yaml:"num,omitempty"`
	Log  bool     `yaml:"log,omitempty"`
	Int  bool     `yaml:"int,omitempty"`
}

// IsRange reports whether the parameter is a range rather than a list.
func (s SweepParam) IsRange() bool { return s.Values == nil }

// MarshalYAML writes the parameter back as it was written.
func (s SweepParam) MarshalYAML() (any, error) {
	if !s.IsRange() {
		return s.Values, nil
	}
	return s.SweepRange, nil
}

func (s *SweepParam) unmarshalNode(d *decoder, n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.SequenceNode:
		s.Values = make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			if c.Kind == yaml.AliasNode {
				c = c.Alias
			}
			ip := fmt.Sprintf("%s[%d]", path, i)
			d.pos[ip] = d.posOf(c)
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				d.errorf(c, "%s: want a value (number, string or boolean), got %s", ip, kindName(c))
				continue
			}
			var v any
			if err := c.Decode(&v); err != nil {
				d.errorf(c, "%s: %v", ip, err)
				continue
			}
			s.Values = append(s.Values, v)
		}
	case yaml.MappingNode:
		d.decodeStruct(n, reflect.ValueOf(&s.SweepRange).Elem(), path)
	default:
		d.errorf(n, "%s: want a list of values or a range {from, to, step|num}, got %s", path, kindName(n))
	}
}

// On reports whether the pipeline is a sweep.
func (s *Sweep) On() bool { return s != nil }

// Keys returns the swept key paths, grid first then random, each
// sorted.
func (s *Sweep) Keys() (grid, random []string) {
	if s == nil {
		return nil, nil
	}
	for k := range s.Grid {
		grid = append(grid, k)
	}
	sort.Strings(grid)
	if s.Random != nil {
		for k := range s.Random.Params {
			random = append(random, k)
		}
		sort.Strings(random)
	}
	return grid, random
}

// validateSweep checks the sweep section on its own; whether its keys
// exist and its tasks fit one array is checked by package jobs/sweep when
// it resolves them.
func (p *Pipeline) validateSweep(bad func(path, format string, args ...any)) {
	s := p.Sweep
	if s == nil {
		return
	}
	grid, random := s.Keys()
	if s.Grid == nil && s.Random == nil {
		bad("sweep", "give grid: {KEY: [VALUES]} and/or random: {n, seed, params}")
	}
	if s.Grid != nil && len(grid) == 0 {
		bad("sweep.grid", "is empty: give at least one KEY: [VALUES]")
	}
	for _, k := range grid {
		validateSweepParam(bad, "sweep.grid."+k, k, s.Grid[k], true)
	}
	if r := s.Random; r != nil {
		if r.N < 1 {
			at := "sweep.random.n"
			if _, ok := p.Pos[at]; !ok {
				at = "sweep.random"
			}
			bad(at, "n must be at least 1, not %d", r.N)
		}
		if len(random) == 0 {
			bad("sweep.random.params", "is empty: give at least one KEY: {from, to} or KEY: [VALUES]")
		}
		for _, k := range random {
			if _, dup := s.Grid[k]; dup {
				bad("sweep.random.params."+k, "%s is in sweep.grid too: sweep each key one way", k)
			}
			validateSweepParam(bad, "sweep.random.params."+k, k, r.Params[k], false)
		}
	}
	if s.MaxParallel < 0 {
		bad("sweep.max_parallel", "must not be negative")
	}
	if !p.Train.On() || !p.Eval.On() {
		bad("sweep", "a sweep trains and evaluates every point: train and eval must be on")
	}
	m := s.Select.Metric
	switch {
	case m == "":
		bad("sweep.select.metric", "is required: the eval metric that picks the winner (e.g. perplexity)")
	case !contains(KnownMetrics, m):
		bad("sweep.select.metric", "unknown metric %q (known: %s)", m, strings.Join(KnownMetrics, ", "))
	case p.Eval.Gates[m] == (Gate{}):
		bad("sweep.select.metric", "eval does not produce %q: it computes the metrics its gates name (%s); add a gate eval.gates.%s", m, strings.Join(gateNames(p.Eval.Gates), ", "), m)
	}
	switch s.Select.Goal {
	case "min", "max":
	case "":
		bad("sweep.select.goal", "is required: min or max")
	default:
		bad("sweep.select.goal", "must be min or max, not %q", s.Select.Goal)
	}
}

func gateNames(g map[string]Gate) []string {
	out := make([]string, 0, len(g))
	for k := range g {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

func validateSweepParam(bad func(path, format string, args ...any), path, key string, v SweepParam, grid bool) {
	if strings.HasPrefix(key, "sweep.") || key == "sweep" {
		bad(path, "a sweep cannot sweep its own settings")
		return
	}
	for _, part := range strings.Split(key, ".") {
		if part == "" {
			bad(path, "%q is not a key path (want e.g. train.hyperparameters.learning_rate)", key)
			return
		}
	}
	if !v.IsRange() {
		if len(v.Values) == 0 {
			bad(path, "is empty: give at least one value")
		}
		return
	}
	if v.From == nil || v.To == nil {
		bad(path, "a range needs from and to")
		return
	}
	from, to := *v.From, *v.To
	if from > to {
		bad(path, "from %g is above to %g", from, to)
	}
	if v.Log && (from <= 0 || to <= 0) {
		bad(path, "a log range needs from and to above 0")
	}
	if v.Int && (from != math.Trunc(from) || to != math.Trunc(to)) {
		bad(path, "int: true needs whole from and to")
	}
	if !grid {
		if v.Step != 0 || v.Num != 0 {
			bad(path, "a random range is drawn from: step and num are for grids")
		}
		return
	}
	switch {
	case v.Step != 0 && v.Num != 0:
		bad(path, "give step or num, not both")
	case v.Step < 0:
		bad(path+".step", "must be above 0")
	case v.Num < 0:
		bad(path+".num", "must be at least 1")
	case v.Step == 0 && v.Num == 0:
		bad(path, "a grid range needs step (from, from+step, ... to) or num (that many values)")
	case v.Step > 0 && v.Log:
		bad(path, "a log range takes num, not step")
	case v.Step > 0 && (to-from)/v.Step > 100000:
		bad(path, "step %g makes more than 100000 values", v.Step)
	case v.Num > 100000:
		bad(path+".num", "more than 100000 values")
	}
}

// TaskStage is the stage name of a sweep task's train or eval (train[3]).
func TaskStage(stage string, task int) string { return stage + "[" + strconv.Itoa(task) + "]" }

// IsTaskStage reports whether a stage name is a sweep task's.
func IsTaskStage(name string) bool {
	return strings.HasSuffix(name, "]") && strings.Contains(name, "[")
}

// ParseTaskStage splits train[3] into train and 3; ok is false for a stage
// that is not a task's.
func ParseTaskStage(name string) (stage string, task int, ok bool) {
	i := strings.IndexByte(name, '[')
	if i < 0 || !strings.HasSuffix(name, "]") {
		return name, 0, false
	}
	n, err := strconv.Atoi(name[i+1 : len(name)-1])
	if err != nil || n < 0 {
		return name, 0, false
	}
	return name[:i], n, true
}
