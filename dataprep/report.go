package dataprep

import (
	"fmt"
	"strings"
)

// Removal reasons, in the order the checks are applied: a removed record is
// counted once, under the first reason that applies.
const (
	ReasonMalformed      = "malformed"
	ReasonExactDuplicate = "exact_duplicate"
	ReasonNearDuplicate  = "near_duplicate"
	ReasonToxic          = "toxic"
	ReasonTooShort       = "too_short"
	ReasonTooLong        = "too_long"
	ReasonPII            = "pii"
)

type reason uint8

const (
	reasonNone reason = iota
	reasonMalformed
	reasonExactDup
	reasonNearDup
	reasonToxic
	reasonTooShort
	reasonTooLong
	reasonPII
)

var reasonNames = [...]string{"", ReasonMalformed, ReasonExactDuplicate, ReasonNearDuplicate, ReasonToxic, ReasonTooShort, ReasonTooLong, ReasonPII}

// Report is the content of quality_report.json.
type Report struct {
	// Total is the number of records read (non-blank lines).
	Total int `json:"total"`
	// Kept = Train + Validation = Total - removed records.
	Kept       int           `json:"kept"`
	Train      int           `json:"train"`
	Validation int           `json:"validation"`
	Removed    RemovedCounts `json:"removed"`
	// DataHash is the hex SHA-256 over the kept records in their canonical
	// (output) order: the SHA-256 of the sha256sum-style manifest
	// "<train sha256>  train.jsonl\n<validation sha256>  validation.jsonl\n",
	// so `sha256sum train.jsonl validation.jsonl | sha256sum` in the output
	// directory reproduces it. Same data and options give the same hash.
	DataHash string `json:"data_hash"`
	// TrainSHA256 and ValidationSHA256 are the hex SHA-256 of the files.
	TrainSHA256      string `json:"train_sha256"`
	ValidationSHA256 string `json:"validation_sha256"`

	Format Format       `json:"format"`
	Inputs []InputStats `json:"inputs"`
	// MalformedKinds counts malformed records by kind (invalid_json, ...).
	MalformedKinds map[string]int `json:"malformed_kinds"`
	PII            PIIStats       `json:"pii"`
	NearDup        *NearDupStats  `json:"near_duplicate,omitempty"`
	// Checks are the threshold results; Passed is false when one failed.
	Checks []CheckResult `json:"checks"`
	Passed bool          `json:"passed"`
	// Findings is a sample (the first Options.MaxFindings, in input order)
	// of problems: every removed record and every record with PII.
	Findings        []Finding `json:"findings"`
	FindingsOmitted int       `json:"findings_omitted"`
}

// RemovedCounts counts removed records by reason.
type RemovedCounts struct {
	Malformed      int `json:"malformed"`
	ExactDuplicate int `json:"exact_duplicate"`
	NearDuplicate  int `json:"near_duplicate"`
	Toxic          int `json:"toxic"`
	TooShort       int `json:"too_short"`
	TooLong        int `json:"too_long"`
	PII            int `json:"pii"`
}

// Sum is the total number of removed records.
func (r RemovedCounts) Sum() int {
	return r.Malformed + r.ExactDuplicate + r.NearDuplicate + r.Toxic + r.TooShort + r.TooLong + r.PII
}

func (r *RemovedCounts) add(why reason) {
	switch why {
	case reasonMalformed:
		r.Malformed++
	case reasonExactDup:
		r.ExactDuplicate++
	case reasonNearDup:
		r.NearDuplicate++
	case reasonToxic:
		r.Toxic++
	case reasonTooShort:
		r.TooShort++
	case reasonTooLong:
		r.TooLong++
	case reasonPII:
		r.PII++
	}
}

// InputStats describes one input file.
type InputStats struct {
	Path       string `json:"path"`
	Lines      int    `json:"lines"`
	Records    int    `json:"records"`
	BlankLines int    `json:"blank_lines"`
}

// PIIStats counts PII among the records that reached the PII check (kept
// records, and records dropped for PII).
type PIIStats struct {
	Mode    PIIMode `json:"mode"`
	Records int     `json:"records"` // records with at least one match
	Email   int     `json:"email"`
	Phone   int     `json:"phone"`
	IP      int     `json:"ip"`
}

// NearDupStats records the near-duplicate parameters in effect.
type NearDupStats struct {
	Threshold   float64     `json:"threshold"`
	NumPerm     int         `json:"num_perm"`
	Bands       int         `json:"bands"`
	Rows        int         `json:"rows"`
	Shingle     ShingleKind `json:"shingle"`
	ShingleSize int         `json:"shingle_size"`
}

// Finding is one problem found in an input line.
type Finding struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Check  string `json:"check"`          // a Reason* constant
	Kind   string `json:"kind,omitempty"` // malformed kind or PII kinds
	Detail string `json:"detail"`
	Action string `json:"action"` // removed, flagged or redacted
}

// String formats the finding as file:line: check: detail.
func (f Finding) String() string {
	if f.Kind != "" {
		return fmt.Sprintf("%s:%d: %s (%s): %s", f.File, f.Line, f.Check, f.Kind, f.Detail)
	}
	return fmt.Sprintf("%s:%d: %s: %s", f.File, f.Line, f.Check, f.Detail)
}

// CheckResult is the outcome of one data quality threshold.
type CheckResult struct {
	Name      string  `json:"name"` // max_removed_ratio, max_malformed_ratio, min_examples
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Passed    bool    `json:"passed"`
}

// CheckFailedError is returned by Run, after all outputs were written,
// when at least one data quality threshold failed.
type CheckFailedError struct {
	Failed []CheckResult
}

func (e *CheckFailedError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, c := range e.Failed {
		op := ">"
		if c.Name == "min_examples" {
			op = "<"
		}
		parts[i] = fmt.Sprintf("%s: %.4g %s %.4g", c.Name, c.Value, op, c.Threshold)
	}
	return "dataprep: data checks failed: " + strings.Join(parts, "; ")
}

func evalChecks(c CheckOptions, rep *Report) []CheckResult {
	ratio := func(n int) float64 {
		if rep.Total == 0 {
			return 0
		}
		return float64(n) / float64(rep.Total)
	}
	checks := []CheckResult{}
	if c.MaxRemovedRatio >= 0 {
		v := ratio(rep.Removed.Sum())
		checks = append(checks, CheckResult{"max_removed_ratio", v, c.MaxRemovedRatio, v <= c.MaxRemovedRatio})
	}
	if c.MaxMalformedRatio >= 0 {
		v := ratio(rep.Removed.Malformed)
		checks = append(checks, CheckResult{"max_malformed_ratio", v, c.MaxMalformedRatio, v <= c.MaxMalformedRatio})
	}
	if c.MinExamples > 0 {
		checks = append(checks, CheckResult{"min_examples", float64(rep.Kept), float64(c.MinExamples), rep.Kept >= c.MinExamples})
	}
	return checks
}
