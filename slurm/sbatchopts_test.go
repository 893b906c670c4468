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

// TestDirectiveWords: as sbatch 22.05 reads a directive (checked against it:
// "#SBATCH --job-name=a#b --comment=x" queues a job named "a", no comment).
func TestDirectiveWords(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		" --job-name=a#b --comment=x":     {"--job-name=a"},
		` --output="a b.log" # trailing`:  {"--output=a b.log"},
		" -J 'it''s' -t 5\r":              {"-J", "its", "-t", "5"},
		` --comment="x # y" --wrap='a"b'`: {"--comment=x # y", `--wrap=a"b`},
		"":                                nil,
	} {
		if got := DirectiveWords(in); !reflect.DeepEqual(got, want) {
			t.Errorf("DirectiveWords(%q) = %q, want %q", in, got, want)
		}
	}
}
