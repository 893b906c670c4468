package eval_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/slurmtune/slurmtune/eval"
)

// How `slurmtune gate` uses the library: gates from flags and from the
// pipeline config, inputs from flags, and eval_report.json written
// atomically. A gate whose metric has no input fails with a reason.
func Example() {
	dir, _ := os.MkdirTemp("", "gate")
	defer os.RemoveAll(dir)
	preds := filepath.Join(dir, "preds.jsonl")
	if err := os.WriteFile(preds, []byte(`{"prediction": "The cat sat on the mat.", "references": ["The cat sat on the mat."]}`+"\n"), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	gates, err := eval.ParseGates([]string{"bleu>=40"}) // --gate bleu>=40
	if err != nil {
		log.Fatal(err)
	}
	fromConfig, err := eval.ParseGateMap(map[string]any{"perplexity": map[string]any{"max": 15}})
	if err != nil {
		log.Fatal(err)
	}
	rep, err := eval.Evaluate(context.Background(), eval.Inputs{
		PredictionPaths: []string{preds},
		Gates:           append(gates, fromConfig...),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := eval.WriteReport(filepath.Join(dir, "eval_report.json"), rep); err != nil {
		log.Fatal(err)
	}
	for _, g := range rep.Gates {
		line := fmt.Sprintf("%s%s%g passed=%v", g.Metric, g.Op, g.Threshold, g.Passed)
		if g.Reason != "" {
			line += " " + g.Reason
		}
		fmt.Println(line)
	}
	fmt.Println("passed:", rep.Passed)
	// Output:
	// bleu>=40 passed=true
	// perplexity<=15 passed=false perplexity: no --nll input
	// passed: false
}
