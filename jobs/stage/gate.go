package stage

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/slurmtune/slurmtune/dataprep"
	"github.com/slurmtune/slurmtune/eval"
	"github.com/slurmtune/slurmtune/jobs"
)

// GateSpecs turns eval.gates of a pipeline into gate specs ("bleu>=40"),
// in metric name order.
func GateSpecs(p *jobs.Pipeline) []string {
	names := make([]string, 0, len(p.Eval.Gates))
	for m := range p.Eval.Gates {
		names = append(names, m)
	}
	sort.Strings(names)
	var specs []string
	for _, m := range names {
		g := p.Eval.Gates[m]
		if g.Min != nil {
			specs = append(specs, fmt.Sprintf("%s>=%v", m, *g.Min))
		}
		if g.Max != nil {
			specs = append(specs, fmt.Sprintf("%s<=%v", m, *g.Max))
		}
	}
	return specs
}

// Gate is one `slurmtune gate`: the metrics of the predictions, NLL shards
// and review scores in Inputs, checked against Inputs.Gates.
type Gate struct {
	// Pipeline, when given, sets the toxicity scorer (data.toxicity) and
	// the default of Inputs.MaxTextBytes (eval.max_text_bytes).
	Pipeline *jobs.Pipeline
	Inputs   eval.Inputs
	// Output is where the report is written.
	Output string
}

// Run evaluates and writes the report; it returns the report and the
// report's absolute path.
func (g Gate) Run(ctx context.Context) (*eval.Report, string, error) {
	in := g.Inputs
	tox := dataprep.DefaultOptions().Toxicity
	if g.Pipeline != nil {
		tox = PrepOptions(g.Pipeline).Toxicity
		if in.MaxTextBytes == 0 {
			in.MaxTextBytes = g.Pipeline.Eval.MaxTextBytes
		}
	}
	if tox.Enabled {
		scorer, err := dataprep.NewToxicityScorer(tox)
		if err != nil {
			return nil, "", fmt.Errorf("gate: %w", err)
		}
		in.Toxicity = scorer
	}
	rep, err := eval.Evaluate(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("gate: %w", err)
	}
	out, err := filepath.Abs(g.Output)
	if err != nil {
		return nil, "", err
	}
	if err := eval.WriteReport(out, rep); err != nil {
		return nil, "", fmt.Errorf("gate: %w", err)
	}
	return rep, out, nil
}
