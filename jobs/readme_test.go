package jobs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEPipelineExamples keeps the pipeline file shown in the README
// and its reference of the deploy and monitor keys valid: the first is
// loaded as it is, the second in place of the example's own deploy and
// monitor sections.
func TestREADMEPipelineExamples(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	var pipeline, deployRef, stageOpts string
	for _, b := range blocks {
		switch {
		case strings.HasPrefix(b[1], "train:\n  partition:"):
			stageOpts = b[1]
		case strings.HasPrefix(b[1], "version: 1"):
			pipeline = b[1]
		case strings.HasPrefix(b[1], "deploy:\n"):
			deployRef = b[1]
		}
	}
	if pipeline == "" || deployRef == "" {
		t.Fatalf("README: the pipeline file or the deploy key reference is missing (%d yaml blocks)", len(blocks))
	}
	// Relative paths in the example resolve as in examples/tiny.
	abs, err := filepath.Abs(filepath.Join("..", "examples", "tiny", "README-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("README.md (pipeline file)", abs, []byte(pipeline), LoadOptions{}); err != nil {
		t.Errorf("the README's pipeline file:\n%v", err)
	}
	if stageOpts == "" {
		t.Error("README: the per-stage Slurm options example is missing")
	} else if p, err := Parse("README.md (stage options)", abs, []byte("name: readme\ndata: {inputs: [data/*.jsonl]}\n"+stageOpts+"  script: train.py\n"), LoadOptions{}); err != nil {
		t.Errorf("the README's stage options:\n%v", err)
	} else if p.Train.GPUsPerNode != 4 || p.Train.GPUType != "a100" || len(p.Train.SbatchArgs) != 2 {
		t.Errorf("the README's stage options parse as %+v", p.Train.SlurmOptions)
	}
	top := regexp.MustCompile(`(?m)^(deploy|monitor):.*\n(?:[ #].*\n|\n)*`)
	withRef := top.ReplaceAllString(pipeline, "") + deployRef
	p, err := Parse("README.md (deploy keys)", abs, []byte(withRef), LoadOptions{})
	if err != nil {
		t.Fatalf("the README's deploy and monitor keys:\n%v", err)
	}
	if p.Deploy.Strategy != "canary" || p.Deploy.Canary.Percent != 10 || p.Monitor.Window.Minutes() != 15 {
		t.Errorf("parsed deploy %+v monitor %+v", p.Deploy, p.Monitor)
	}
}
