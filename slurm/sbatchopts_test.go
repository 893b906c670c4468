package slurm

import (
	"reflect"
	"testing"
)

func TestParseDirectives(t *testing.T) {
	t.Parallel()
	d, err := ParseDirectives([]byte("#!/bin/bash\n# comment\n#SBATCH --output=\"a b.log\" # trailing\n#SBATCH -W -t 5\n\n#SBATCH --gres=gpu:2\necho hi\n#SBATCH --array=1-3\n"))
	if err != nil {
		t.Fatal(err)
	}
	wantLines := []string{`#SBATCH --output="a b.log" # trailing`, "#SBATCH --time=5", "#SBATCH --gres=gpu:2"}
	if !reflect.DeepEqual(d.Lines, wantLines) || len(d.Opts) != 4 || d.Opts[0].Value != "a b.log" {
		t.Errorf("directives: %q %+v", d.Lines, d.Opts)
	}
}
