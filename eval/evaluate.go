package eval

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
)

// Names of the CLI inputs, used in the reasons of gates whose metric has
// no input ("perplexity: no --nll input").
const (
	FlagPredictions = "--predictions"
	FlagNLL         = "--nll"
	FlagHuman       = "--human"
)

// Inputs is what Evaluate reads. Every input is optional; a metric whose
// input is missing is absent from the report and its gates fail.
type Inputs struct {
	// PredictionPaths are JSONL files of Prediction records; they feed
	// accuracy, bleu, rouge1/2/L and toxicity.
	PredictionPaths []string
	// NLLPaths are JSONL shards of {"nll_sum": x, "tokens": n}; they feed
	// perplexity.
	NLLPaths []string
	// HumanCSVPath is a filled-in review CSV (see WriteReviewSample); it
	// feeds human_eval.
	HumanCSVPath string
	// Toxicity scores predictions for the toxicity rate; nil leaves the
	// toxicity metric out.
	Toxicity ToxicityScorer
	// Gates to check (from ParseGate / ParseGates / ParseGateMap).
	Gates []Gate

	// BLEU and Rouge options; the zero values are sacrebleu's and
	// rouge_score's defaults.
	BLEU  BLEUOptions
	Rouge RougeOptions
	// MaxTextBytes bounds one prediction or reference (0:
	// DefaultMaxTextBytes): a longer one stops the evaluation with an
	// error naming its record.
	MaxTextBytes int
}

// Evaluate computes the metrics for in, checks the gates and returns the
// report. It returns an error for unreadable or malformed inputs (with
// file:line), invalid gates or options, and when ctx is cancelled; a gate
// that fails, including for a missing input, is not an error but makes
// Report.Passed false.
func Evaluate(ctx context.Context, in Inputs) (*Report, error) {
	gates := make([]Gate, len(in.Gates))
	for i, g := range in.Gates {
		vg, err := g.validate()
		if err != nil {
			return nil, err
		}
		gates[i] = vg
	}
	rep := &Report{Stats: Stats{Missing: map[string]string{}}}
	missing := rep.Stats.Missing
	m := &rep.Metrics

	// Perplexity.
	if len(in.NLLPaths) == 0 {
		missing[MetricPerplexity] = "no " + FlagNLL + " input"
	} else {
		var st NLLStats
		for _, p := range in.NLLPaths {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := st.ReadNLLFile(p); err != nil {
				return nil, err
			}
		}
		rep.Stats.NLLLines, rep.Stats.NLLTokens = st.Lines, st.Tokens
		if st.Lines == 0 {
			missing[MetricPerplexity] = FlagNLL + " input has no records"
		} else {
			ppl, err := st.Perplexity()
			if err != nil {
				return nil, err
			}
			m.Perplexity = &ppl
		}
	}

	// Prediction-based metrics.
	predMetrics := []string{MetricAccuracy, MetricBLEU, MetricRouge1, MetricRouge2, MetricRougeL, MetricToxicity}
	if len(in.PredictionPaths) == 0 {
		for _, name := range predMetrics {
			missing[name] = "no " + FlagPredictions + " input"
		}
	} else {
		pe, err := newPredEval(in)
		if err != nil {
			return nil, err
		}
		for _, p := range in.PredictionPaths {
			if err := pe.addFile(ctx, p); err != nil {
				return nil, err
			}
		}
		pe.finish(rep)
	}
	if in.Toxicity == nil {
		if _, ok := missing[MetricToxicity]; !ok {
			missing[MetricToxicity] = "no toxicity scorer"
		}
		m.Toxicity = nil
	}

	// Human evaluation.
	if in.HumanCSVPath == "" {
		missing[MetricHumanEval] = "no " + FlagHuman + " input"
	} else {
		f, err := openInput(in.HumanCSVPath)
		if err != nil {
			return nil, err
		}
		scores, err := ReadReviewScores(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.HumanCSVPath, err)
		}
		rep.Stats.HumanRated = len(scores)
		if mean, ok := MeanHumanScore(scores); ok {
			m.HumanEval = &mean
		} else {
			missing[MetricHumanEval] = "no rated rows in " + FlagHuman + " input"
		}
	}

	for _, name := range MetricNames {
		if v, ok := m.Get(name); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
			return nil, fmt.Errorf("eval: %s is not finite", name)
		}
	}
	rep.Gates, rep.Passed = CheckGates(*m, gates, missing)
	return rep, nil
}

// predEval accumulates the prediction-based metrics record by record.
type predEval struct {
	maxText int
	tox     ToxicityScorer
	bleu    *bleuCorpus
	rouge   *rougeScorer
	norm    normalizer

	seg *segmenter

	refs         []string
	predNorm     []byte
	refNorm      []byte
	bIDs, rIDs   []int32
	bOff, rOff   []int
	bRefs, rRefs [][]int32

	records     int
	withRefs    int
	accN, accOK int
	toxic       int
	r1, r2, rl  float64
}

func newPredEval(in Inputs) (*predEval, error) {
	v := newVocab()
	b, err := newBLEUCorpus(in.BLEU, v)
	if err != nil {
		return nil, err
	}
	r := newRougeScorer(in.Rouge, v)
	return &predEval{maxText: in.MaxTextBytes, tox: in.Toxicity, bleu: b, rouge: r, seg: newSegmenter(b, r)}, nil
}

func (pe *predEval) addFile(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := openInput(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pe.addReader(ctx, f, path)
}

func (pe *predEval) addReader(ctx context.Context, r io.Reader, name string) error {
	pr := NewPredictionReaderLimit(r, name, pe.maxText)
	for n := 0; ; n++ {
		if n&1023 == 1023 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		p, err := pr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		pe.add(p)
	}
}

// add scores one record.
func (pe *predEval) add(p *Prediction) {
	pe.records++
	refs := pe.refs[:0]
	for _, r := range p.References {
		if r != "" {
			refs = append(refs, r)
		}
	}
	pe.refs = refs

	// Accuracy: label match, else exact match against any reference.
	if p.HasLabel || len(refs) > 0 {
		pe.accN++
		pe.predNorm = pe.norm.normalize(pe.predNorm[:0], p.Prediction)
		if p.HasLabel {
			pe.refNorm = pe.norm.normalize(pe.refNorm[:0], p.Label)
			if bytes.Equal(pe.predNorm, pe.refNorm) {
				pe.accOK++
			}
		} else {
			for _, r := range refs {
				pe.refNorm = pe.norm.normalize(pe.refNorm[:0], r)
				if bytes.Equal(pe.predNorm, pe.refNorm) {
					pe.accOK++
					break
				}
			}
		}
	}

	if len(refs) > 0 {
		pe.withRefs++
		// Token ids of the prediction and each reference, for BLEU and
		// ROUGE, in two flat buffers.
		pe.bIDs, pe.rIDs = pe.seg.tokens(p.Prediction, pe.bIDs[:0], pe.rIDs[:0])
		pe.bOff = append(pe.bOff[:0], len(pe.bIDs))
		pe.rOff = append(pe.rOff[:0], len(pe.rIDs))
		for _, r := range refs {
			pe.bIDs, pe.rIDs = pe.seg.tokens(r, pe.bIDs, pe.rIDs)
			pe.bOff = append(pe.bOff, len(pe.bIDs))
			pe.rOff = append(pe.rOff, len(pe.rIDs))
		}
		pe.bRefs, pe.rRefs = pe.bRefs[:0], pe.rRefs[:0]
		for k := 1; k < len(pe.bOff); k++ {
			pe.bRefs = append(pe.bRefs, pe.bIDs[pe.bOff[k-1]:pe.bOff[k]])
			pe.rRefs = append(pe.rRefs, pe.rIDs[pe.rOff[k-1]:pe.rOff[k]])
		}
		pe.bleu.addIDs(pe.bIDs[:pe.bOff[0]], pe.bRefs)
		s := pe.rouge.scoreMultiIDs(pe.rIDs[:pe.rOff[0]], pe.rRefs)
		pe.r1 += s.R1.FMeasure
		pe.r2 += s.R2.FMeasure
		pe.rl += s.RL.FMeasure
	}

	if pe.tox != nil && pe.tox.IsToxic(p.Prediction) {
		pe.toxic++
	}
}

func (pe *predEval) finish(rep *Report) {
	m := &rep.Metrics
	missing := rep.Stats.Missing
	rep.Stats.Predictions = pe.records
	rep.Stats.WithReferences = pe.withRefs
	rep.Stats.AccuracyRecords = pe.accN
	if pe.records == 0 {
		for _, name := range []string{MetricAccuracy, MetricBLEU, MetricRouge1, MetricRouge2, MetricRougeL, MetricToxicity} {
			missing[name] = FlagPredictions + " input has no records"
		}
		return
	}
	if pe.accN > 0 {
		m.Set(MetricAccuracy, float64(pe.accOK)/float64(pe.accN))
	} else {
		missing[MetricAccuracy] = "no prediction record has a reference or label"
	}
	if pe.withRefs > 0 {
		s := pe.bleu.score()
		rep.Stats.BLEU = &s
		m.Set(MetricBLEU, s.Score)
		n := float64(pe.withRefs)
		m.Set(MetricRouge1, pe.r1/n)
		m.Set(MetricRouge2, pe.r2/n)
		m.Set(MetricRougeL, pe.rl/n)
	} else {
		for _, name := range []string{MetricBLEU, MetricRouge1, MetricRouge2, MetricRougeL} {
			missing[name] = "no prediction record has a non-empty reference"
		}
	}
	if pe.tox != nil {
		m.Set(MetricToxicity, float64(pe.toxic)/float64(pe.records))
	}
}
