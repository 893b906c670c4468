package stage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/slurmtune/slurmtune/eval"
	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/store/atomicfile"
	"github.com/slurmtune/slurmtune/templates"
)

// RunFiles is what the review needs of the filesystem the run directory
// is on (a slurm.FileSystem of the run's cluster has it).
type RunFiles interface {
	ReadFile(ctx context.Context, path string) ([]byte, error)
	WriteFile(ctx context.Context, path string, data []byte, perm fs.FileMode) error
	MkdirAll(ctx context.Context, path string, perm fs.FileMode) error
}

// Metrics records a run's metrics (the store).
type Metrics interface {
	SetMetric(ctx context.Context, runID, stage, name string, value float64) error
}

// Exported is what `slurmtune review export -o FILE --json` prints.
type Exported struct {
	Run     string `json:"run"`
	Sampled int    `json:"sampled"`
	Output  string `json:"output"`
}

// ExportReview samples n (0: all) of the predictions of the run runID in
// runDir with seed for raters, as a CSV with an empty score column. With
// output "" the CSV is returned; else it is written there (mode 600:
// prompts and predictions are the user's to share, not the world's).
func ExportReview(ctx context.Context, files RunFiles, runID, runDir string, n int, seed int64, output string) ([]byte, Exported, error) {
	x := Exported{Run: runID, Output: output}
	path := filepath.Join(templates.LayoutOf(runDir).Eval, "predictions.jsonl")
	data, err := files.ReadFile(ctx, path)
	if err != nil {
		return nil, x, fmt.Errorf("review export: the run's predictions: %w", err)
	}
	var preds []eval.Prediction
	rd := eval.NewPredictionReader(bytes.NewReader(data), path)
	for {
		p, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, x, fmt.Errorf("review export: %w", err)
		}
		preds = append(preds, p.Clone())
	}
	var buf bytes.Buffer
	if err := eval.WriteReviewSample(&buf, preds, n, seed); err != nil {
		return nil, x, fmt.Errorf("review export: %w", err)
	}
	x.Sampled = len(preds)
	if n > 0 && n < x.Sampled {
		x.Sampled = n
	}
	if output == "" {
		return buf.Bytes(), x, nil
	}
	return nil, x, atomicfile.Write(output, buf.Bytes(), 0o600)
}

// Review is a filled-in review CSV, checked: its scores and their mean.
type Review struct {
	File   string
	Data   []byte
	Scores int
	Mean   float64
}

// BadReviewError is ReadReview's error for a CSV that is not a usable
// review (bad input, not a failure to read it).
type BadReviewError struct{ err error }

func (e BadReviewError) Error() string { return e.err.Error() }
func (e BadReviewError) Unwrap() error { return e.err }

// ReadReview reads and checks the review CSV file.
func ReadReview(file string) (*Review, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("review import: %w", err)
	}
	scores, err := eval.ReadReviewScores(bytes.NewReader(data))
	if err != nil {
		return nil, BadReviewError{fmt.Errorf("review import %s: %w", file, err)}
	}
	mean, ok := eval.MeanHumanScore(scores)
	if !ok {
		return nil, BadReviewError{fmt.Errorf("review import %s: no scored rows", file)}
	}
	return &Review{File: file, Data: data, Scores: len(scores), Mean: mean}, nil
}

// Imported is what `slurmtune review import --json` prints.
type Imported struct {
	Run    string  `json:"run"`
	Scores int     `json:"scores"`
	Mean   float64 `json:"mean"`
}

// WriteText writes what `slurmtune review import` prints.
func (x Imported) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%d scores, mean %.3f, recorded for run %s\n", x.Scores, x.Mean, x.Run)
}

// Import stores the review beside the predictions of the run runID in
// runDir, where the eval stage's gate finds it, and records its mean as
// the run's human_eval.
func (rv *Review) Import(ctx context.Context, files RunFiles, metrics Metrics, runID, runDir string) (Imported, error) {
	dir := templates.LayoutOf(runDir).Eval
	// The run directory's own modes (private unless share: group).
	modes := runModes(ctx, files, runDir)
	if err := files.MkdirAll(ctx, dir, modes.Dir); err != nil {
		return Imported{}, err
	}
	if err := files.WriteFile(ctx, filepath.Join(dir, "human.csv"), rv.Data, modes.File); err != nil {
		return Imported{}, fmt.Errorf("review import: %w", err)
	}
	return Imported{Run: runID, Scores: rv.Scores, Mean: rv.Mean}, metrics.SetMetric(ctx, runID, "eval", "human_eval", rv.Mean)
}

// runModes are the permissions of a run directory's contents, as its
// pipeline snapshot's share asks (private when it cannot be read).
func runModes(ctx context.Context, files RunFiles, runDir string) jobs.Modes {
	p := &jobs.Pipeline{}
	if b, err := files.ReadFile(ctx, templates.LayoutOf(runDir).Pipeline); err == nil {
		var doc struct {
			Share string `yaml:"share"`
		}
		if yaml.Unmarshal(b, &doc) == nil {
			p.Share = doc.Share
		}
	}
	return p.Modes()
}
