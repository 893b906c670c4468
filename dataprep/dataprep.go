// Package dataprep checks, de-duplicates, filters and splits fine-tuning data
// (the prep stage).
//
// Run streams one or more JSONL files in one of three formats (chat,
// instruction, text), checks every line, removes exact and near duplicates,
// toxic content, records that are too short or too long and (optionally)
// records containing PII, and writes four files into the output directory:
//
//	train.jsonl         kept records (original line bytes, or redacted)
//	validation.jsonl    kept records assigned to the validation split
//	quarantine.jsonl    every removed record with file, line, reason, detail
//	quality_report.json counts, thresholds and a sample of findings
//
// Checks run in this order and a removed record is counted once, under the
// first that applies: malformed, exact_duplicate, near_duplicate, toxic,
// too_short, too_long, pii. De-duplication looks at every well-formed
// record: the first occurrence wins, even when a later filter removes it.
// One exception keeps a huge record cheap: a record over the character
// limit (length.max_chars) is too_long before any other check, and takes
// no part in de-duplication.
// Findings name the file and line ("data.jsonl:12: malformed
// (missing_field): ...").
//
// A quarantine.jsonl line is
//
//	{"file":"data.jsonl","line":12,"reason":"malformed","kind":"invalid_json",
//	 "detail":"...","raw":"<the line as a string>"}
//
// with the original record under "record" when the line is valid JSON,
// under "raw" (a JSON string) when it is not, and under "raw_base64" when
// it is not valid UTF-8. "kind" is present for malformed and pii records.
//
// Each output is written to a temporary file in the output directory and
// renamed into place only when the whole run succeeded, so a failed or
// cancelled run leaves no partial outputs.
//
// The per-record work (parsing, normalisation, hashing, MinHash signatures,
// toxicity, PII) runs on Options.Workers goroutines; de-duplication decisions
// are made by a single sequencer in input order, so the outputs are byte
// identical whatever the number of workers.
package dataprep

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Format is the record layout of the input JSONL files.
type Format string

// Supported formats.
const (
	// FormatChat is {"messages": [{"role": ..., "content": ...}, ...]} with
	// roles system, user, assistant and tool; at least one assistant turn.
	FormatChat Format = "chat"
	// FormatInstruction is {"instruction": ..., "input": ... (optional), "output": ...}.
	FormatInstruction Format = "instruction"
	// FormatText is {"text": ...}.
	FormatText Format = "text"
)

// ShingleKind selects how near-duplicate detection cuts a text into shingles.
type ShingleKind string

// Shingle kinds.
const (
	ShingleWord ShingleKind = "word" // n consecutive words (letters/digits runs)
	ShingleChar ShingleKind = "char" // n consecutive characters of the normalised text
)

// PIIMode says what happens to records that contain PII.
type PIIMode string

// PII modes.
const (
	PIIOff    PIIMode = "off"    // no PII scanning
	PIIFlag   PIIMode = "flag"   // keep the record, report a finding
	PIIRedact PIIMode = "redact" // replace matches with [EMAIL], [PHONE], [IP]
	PIIDrop   PIIMode = "drop"   // remove the record (reason "pii")
)

// Options configures Run. Start from DefaultOptions and set Format, Inputs
// and OutDir.
type Options struct {
	// Format of every input file.
	Format Format
	// Inputs are files, directories (their *.jsonl files) or globs
	// (filepath.Match syntax). Matches of a glob are read in lexical order;
	// a path given twice is read once.
	Inputs []string
	// OutDir receives train.jsonl, validation.jsonl, quarantine.jsonl and
	// quality_report.json. It is created if needed.
	OutDir string

	NearDup  NearDupOptions
	Toxicity ToxicityOptions
	Length   LengthOptions
	PII      PIIOptions
	Split    SplitOptions
	Checks   CheckOptions

	// Workers is the number of goroutines doing per-record work;
	// 0 means runtime.GOMAXPROCS(0). Outputs do not depend on it.
	Workers int
	// MaxLineBytes is the longest accepted input line; a longer line stops
	// the run with an error naming the file and line. Default 64 MiB.
	MaxLineBytes int
	// MaxFindings caps the findings sample kept in the report (counts are
	// always complete). Default 1000; negative means none.
	MaxFindings int
}

// NearDupOptions configures MinHash/LSH near-duplicate detection. Exact
// duplicate detection (hash of the lowercased, whitespace-collapsed text) is
// always on.
type NearDupOptions struct {
	Enabled bool
	// Threshold is the Jaccard similarity above which two records are near
	// duplicates (default 0.8). It picks Bands and Rows when they are 0.
	Threshold float64
	// NumPerm is the number of MinHash permutations (default 128).
	NumPerm int
	// Shingle is ShingleWord (default) or ShingleChar.
	Shingle ShingleKind
	// ShingleSize is the number of words or characters per shingle (default 5).
	ShingleSize int
	// Bands and Rows of the LSH index (Bands*Rows <= NumPerm). When both are
	// 0 they are chosen, like datasketch, to minimise the sum of the false
	// positive and false negative areas at Threshold.
	Bands, Rows int
	// Seed of the MinHash permutations (default 1).
	Seed uint64
}

// ToxicityOptions configures the toxicity scorer (also usable on its own
// through NewToxicityScorer, e.g. by the eval stage).
type ToxicityOptions struct {
	Enabled bool
	// Threshold: a record whose score is >= Threshold is toxic (default 0.5).
	Threshold float64
	// Builtin uses the shipped starter English word list (default true).
	Builtin bool
	// WordLists are extra word list files: one term per line, '#' starts a
	// comment, an optional weight in [0,1] (default 1) after the last
	// whitespace, a trailing '*' matches any word with that prefix, several
	// words form a phrase.
	WordLists []string
	// Classifier is an optional external command (argv). It reads JSONL
	// {"id":n,"text":"..."} on stdin and must write one {"id":n,"score":x}
	// line per input, x in [0,1]. A record's score is the maximum of the
	// lexicon and classifier scores. A failing classifier fails the run.
	Classifier []string
	// ClassifierBatch is the number of texts sent per classifier invocation
	// (default 256).
	ClassifierBatch int
	// ClassifierTimeout bounds one classifier invocation (0: no limit).
	ClassifierTimeout time.Duration
}

// LengthOptions bounds the length of a record's text (the concatenated
// message contents or fields). Characters are Unicode code points, words are
// whitespace-separated. 0 means no bound.
type LengthOptions struct {
	MinChars, MaxChars int
	MinWords, MaxWords int
}

// PIIOptions configures PII detection (emails, phone numbers, IPv4 and IPv6
// addresses) in the text fields.
type PIIOptions struct {
	Mode PIIMode
}

// SplitOptions configures the deterministic train/validation split. A record
// goes to train when a seeded hash of its normalised text falls below
// Train/(Train+Validation), so the split depends only on the content and
// the seed, never on input order or worker count.
type SplitOptions struct {
	Train, Validation float64 // default 0.8 and 0.2
	Seed              uint64  // default 0
}

// CheckOptions are the data quality thresholds. When one fails, Run still
// writes every output and then returns a *CheckFailedError.
type CheckOptions struct {
	// MaxRemovedRatio is the largest accepted removed/total ratio
	// (default 0.5; negative disables).
	MaxRemovedRatio float64
	// MaxMalformedRatio is the largest accepted malformed/total ratio
	// (default 0.1; negative disables).
	MaxMalformedRatio float64
	// MinExamples is the smallest accepted number of kept records
	// (default 1; 0 disables).
	MinExamples int
}

// Default values.
const (
	DefaultMaxLineBytes = 64 << 20
	DefaultMaxFindings  = 1000
)

// DefaultOptions returns the default configuration; Format is chat and
// Inputs and OutDir are empty.
func DefaultOptions() Options {
	return Options{
		Format: FormatChat,
		NearDup: NearDupOptions{
			Enabled:     true,
			Threshold:   0.8,
			NumPerm:     128,
			Shingle:     ShingleWord,
			ShingleSize: 5,
			Seed:        1,
		},
		Toxicity: ToxicityOptions{
			Enabled:         true,
			Threshold:       0.5,
			Builtin:         true,
			ClassifierBatch: 256,
		},
		Length: LengthOptions{MinChars: 10, MaxChars: 200_000, MinWords: 2},
		PII:    PIIOptions{Mode: PIIFlag},
		Split:  SplitOptions{Train: 0.8, Validation: 0.2},
		Checks: CheckOptions{
			MaxRemovedRatio:   0.5,
			MaxMalformedRatio: 0.1,
			MinExamples:       1,
		},
		MaxLineBytes: DefaultMaxLineBytes,
		MaxFindings:  DefaultMaxFindings,
	}
}

// validate fills zero values that have an obvious default and rejects
// inconsistent options.
func (o *Options) validate() error {
	var errs []error
	switch o.Format {
	case FormatChat, FormatInstruction, FormatText:
	default:
		errs = append(errs, fmt.Errorf("unknown format %q (want chat, instruction or text)", o.Format))
	}
	if len(o.Inputs) == 0 {
		errs = append(errs, errors.New("no inputs"))
	}
	if o.OutDir == "" {
		errs = append(errs, errors.New("no output directory"))
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.MaxFindings == 0 {
		o.MaxFindings = DefaultMaxFindings
	}
	if o.MaxFindings < 0 {
		o.MaxFindings = 0
	}
	nd := &o.NearDup
	if nd.Enabled {
		if nd.NumPerm == 0 {
			nd.NumPerm = 128
		}
		if nd.Shingle == "" {
			nd.Shingle = ShingleWord
		}
		if nd.ShingleSize == 0 {
			nd.ShingleSize = 5
		}
		if nd.Threshold <= 0 || nd.Threshold >= 1 {
			errs = append(errs, fmt.Errorf("near-dup threshold %v not in (0,1)", nd.Threshold))
		}
		if nd.NumPerm < 1 || nd.NumPerm > 1024 {
			errs = append(errs, fmt.Errorf("near-dup num_perm %d not in [1,1024]", nd.NumPerm))
		}
		if nd.Shingle != ShingleWord && nd.Shingle != ShingleChar {
			errs = append(errs, fmt.Errorf("unknown shingle kind %q (want word or char)", nd.Shingle))
		}
		if nd.ShingleSize < 1 || nd.ShingleSize > 64 {
			errs = append(errs, fmt.Errorf("shingle size %d not in [1,64]", nd.ShingleSize))
		}
		if (nd.Bands == 0) != (nd.Rows == 0) || nd.Bands < 0 || nd.Rows < 0 || nd.Bands*nd.Rows > nd.NumPerm {
			errs = append(errs, fmt.Errorf("near-dup bands %d x rows %d invalid for num_perm %d", nd.Bands, nd.Rows, nd.NumPerm))
		}
	}
	if o.Toxicity.Enabled {
		if o.Toxicity.Threshold < 0 || o.Toxicity.Threshold > 1 {
			errs = append(errs, fmt.Errorf("toxicity threshold %v not in [0,1]", o.Toxicity.Threshold))
		}
		if o.Toxicity.ClassifierBatch <= 0 {
			o.Toxicity.ClassifierBatch = 256
		}
	}
	l := o.Length
	if l.MinChars < 0 || l.MaxChars < 0 || l.MinWords < 0 || l.MaxWords < 0 {
		errs = append(errs, errors.New("negative length bound"))
	}
	if l.MaxChars > 0 && l.MinChars > l.MaxChars || l.MaxWords > 0 && l.MinWords > l.MaxWords {
		errs = append(errs, errors.New("length minimum above maximum"))
	}
	switch o.PII.Mode {
	case "":
		o.PII.Mode = PIIOff
	case PIIOff, PIIFlag, PIIRedact, PIIDrop:
	default:
		errs = append(errs, fmt.Errorf("unknown PII mode %q (want off, flag, redact or drop)", o.PII.Mode))
	}
	s := o.Split
	if s.Train < 0 || s.Validation < 0 || s.Train+s.Validation <= 0 {
		errs = append(errs, fmt.Errorf("split ratios %v/%v invalid", s.Train, s.Validation))
	}
	if o.Checks.MinExamples < 0 {
		errs = append(errs, errors.New("negative min_examples"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("dataprep: invalid options: %w", errors.Join(errs...))
	}
	return nil
}
