// Package stage is what the stage commands that the prep and eval jobs run
// on a compute node (slurmtune prep, slurmtune gate) and a run's human
// review (slurmtune review) do with a pipeline: it maps the data and eval
// sections onto dataprep's and eval's options, runs the quality gate, and
// moves review samples and scores in and out of a run directory.
package stage

import (
	"github.com/slurmtune/slurmtune/dataprep"
	"github.com/slurmtune/slurmtune/jobs"
)

// PrepOptions maps a pipeline's data section onto dataprep's options.
func PrepOptions(p *jobs.Pipeline) dataprep.Options {
	o := dataprep.DefaultOptions()
	d := p.Data
	o.Format = dataprep.Format(d.Format)
	o.Inputs = d.Inputs
	o.Split.Train, o.Split.Validation = d.Split.Train, d.Split.Validation
	o.Split.Seed = uint64(d.Split.Seed)
	if d.NearDup.Enabled != nil {
		o.NearDup.Enabled = *d.NearDup.Enabled
	}
	if d.NearDup.Threshold > 0 {
		o.NearDup.Threshold = d.NearDup.Threshold
	}
	if d.NearDup.NumPerm > 0 {
		o.NearDup.NumPerm = d.NearDup.NumPerm
	}
	if d.NearDup.ShingleSize > 0 {
		o.NearDup.ShingleSize = d.NearDup.ShingleSize
	}
	if d.NearDup.Shingle != "" {
		o.NearDup.Shingle = dataprep.ShingleKind(d.NearDup.Shingle)
	}
	if d.Toxicity.Enabled != nil {
		o.Toxicity.Enabled = *d.Toxicity.Enabled
	}
	if d.Toxicity.Threshold > 0 {
		o.Toxicity.Threshold = d.Toxicity.Threshold
	}
	o.Toxicity.WordLists = d.Toxicity.WordLists
	o.Toxicity.Classifier = d.Toxicity.Classifier
	o.Length = dataprep.LengthOptions{MinChars: d.Length.MinChars, MaxChars: d.Length.MaxChars, MinWords: d.Length.MinWords, MaxWords: d.Length.MaxWords}
	if d.PII != "" {
		o.PII.Mode = dataprep.PIIMode(d.PII)
	}
	if d.Checks.MaxRemovedRatio != nil {
		o.Checks.MaxRemovedRatio = *d.Checks.MaxRemovedRatio
	}
	if d.Checks.MaxMalformedRatio != nil {
		o.Checks.MaxMalformedRatio = *d.Checks.MaxMalformedRatio
	}
	if d.Checks.MinExamples != nil {
		o.Checks.MinExamples = *d.Checks.MinExamples
	}
	return o
}
