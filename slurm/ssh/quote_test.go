package ssh

import (
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestQuoteArgs(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"squeue", "--noheader", "--jobs=1,2"}, `squeue --noheader '--jobs=1,2'`},
		{[]string{"sbatch", "--parsable", "/home/u/run/job.sh"}, `sbatch --parsable /home/u/run/job.sh`},
		{[]string{""}, `''`},
		{[]string{"a b"}, `'a b'`},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{"'"}, `''\'''`},
		{[]string{"$(id)", "`id`", "$HOME"}, `'$(id)' '` + "`id`" + `' '$HOME'`},
		{[]string{"a\nb"}, "'a\nb'"},
		{[]string{"~", "~/x", "#c", "*", "?"}, `'~' '~/x' '#c' '*' '?'`},
		{[]string{"A=B"}, `'A=B'`},
		{[]string{"-n", "x@y:z", "100%", "a+b,c"}, `-n x@y:z 100% a+b,c`},
		{[]string{`back\slash`}, `'back\slash'`},
		{nil, ``},
	}
	for _, tt := range tests {
		if got := QuoteArgs(tt.args); got != tt.want {
			t.Errorf("QuoteArgs(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got, err := CommandLine([]string{"sbatch", "--parsable"}, map[string]string{"B": "x y", "A": "1"})
	if err != nil || got != `env 'A=1' 'B=x y' sbatch --parsable` {
		t.Errorf("CommandLine = %s, %v", got, err)
	}
	for _, bad := range []struct {
		argv []string
		env  map[string]string
	}{
		{nil, nil},
		{[]string{"a\x00b"}, nil},
		{[]string{"x"}, map[string]string{"1A": "x"}},
		{[]string{"x"}, map[string]string{"A-B": "x"}},
		{[]string{"x"}, map[string]string{"": "x"}},
		{[]string{"x"}, map[string]string{"A": "a\x00"}},
		{[]string{"A=B"}, map[string]string{"C": "d"}},
	} {
		if _, err := CommandLine(bad.argv, bad.env); err == nil {
			t.Errorf("CommandLine(%q, %q) accepted", bad.argv, bad.env)
		}
	}
}

// TestQuoteArgsShell checks the quoting against the local /bin/sh.
func TestQuoteArgsShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	args := append([]string{"printf", `%s\0`}, awkwardArgs...)
	out, err := exec.Command(sh, "-c", QuoteArgs(args)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !reflect.DeepEqual(got, awkwardArgs) {
		t.Errorf("sh split %q\ninto %q", awkwardArgs, got)
	}
}

// splitShellWords is a reference parser for the subset QuoteArgs emits:
// words separated by single spaces, each either bare safe characters or
// single-quoted runs joined by \'. Anything else is an error.
func splitShellWords(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			if !inWord {
				return nil, errors.New("empty word")
			}
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '\\':
			if i+1 >= len(s) || s[i+1] != '\'' {
				return nil, errors.New("stray backslash")
			}
			cur.WriteByte('\'')
			inWord = true
			i += 2
		case isSafeWord(string(c)):
			cur.WriteByte(c)
			inWord = true
			i++
		default:
			return nil, errors.New("unquoted special character " + string(c))
		}
	}
	if !inWord {
		return nil, errors.New("trailing space")
	}
	return append(words, cur.String()), nil
}

func FuzzQuoteArgs(f *testing.F) {
	for _, a := range awkwardArgs {
		f.Add(a, "x", "")
	}
	f.Add("'", "''", "'\\''")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		args := []string{a, b, c}
		for _, s := range args {
			if strings.IndexByte(s, 0) >= 0 {
				t.Skip()
			}
		}
		q := QuoteArgs(args)
		got, err := splitShellWords(q)
		if err != nil {
			t.Fatalf("QuoteArgs(%q) = %s: %v", args, q, err)
		}
		if !reflect.DeepEqual(got, args) {
			t.Fatalf("QuoteArgs(%q) = %s splits into %q", args, q, got)
		}
	})
}
