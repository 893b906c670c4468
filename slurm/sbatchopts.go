package slurm

import (
	"fmt"
	"strings"
)

// Short sbatch options and their long names; those in sbatchShortArg take
// an argument.
var sbatchShort = map[byte]string{
	'a': "array", 'A': "account", 'b': "begin", 'B': "extra-node-info", 'c': "cpus-per-task", 'C': "constraint",
	'd': "dependency", 'D': "chdir", 'e': "error", 'F': "nodefile", 'G': "gpus", 'h': "help", 'H': "hold",
	'i': "input", 'J': "job-name", 'k': "no-kill", 'L': "licenses", 'm': "distribution", 'M': "clusters",
	'n': "ntasks", 'N': "nodes", 'o': "output", 'O': "overcommit", 'p': "partition", 'q': "qos", 'Q': "quiet",
	's': "oversubscribe", 'S': "core-spec", 't': "time", 'u': "usage", 'v': "verbose", 'V': "version",
	'w': "nodelist", 'W': "wait", 'x': "exclude",
}

const sbatchShortArg = "aAbBcCdDeFGiJLmMnNopqStwx"

// sbatchLongArg are sbatch 22.05's long options that require an argument
// (which may be the next word); the others take none or an optional one
// (which must be given as --opt=value).
var sbatchLongArg = nameSet(
	"account", "acctg-freq", "array", "batch", "bb", "bbf", "begin", "chdir", "cluster-constraint", "clusters",
	"comment", "constraint", "container", "core-spec", "cores-per-socket", "cpu-freq", "cpus-per-gpu",
	"cpus-per-task", "deadline", "delay-boot", "dependency", "distribution", "error", "exclude", "export",
	"export-file", "extra-node-info", "gid", "gpu-bind", "gpu-freq", "gpus", "gpus-per-node", "gpus-per-socket",
	"gpus-per-task", "gres", "gres-flags", "hint", "input", "job-name", "kill-on-invalid-dep", "licenses",
	"mail-type", "mail-user", "mcs-label", "mem", "mem-bind", "mem-per-cpu", "mem-per-gpu", "mincpus", "network",
	"nodefile", "nodelist", "nodes", "ntasks", "ntasks-per-core", "ntasks-per-gpu", "ntasks-per-node",
	"ntasks-per-socket", "open-mode", "output", "partition", "power", "prefer", "priority", "profile", "qos",
	"reservation", "signal", "sockets-per-node", "switches", "thread-spec", "threads-per-core", "time",
	"time-min", "tmp", "tres-per-task", "uid", "wait-all-nodes", "wckey", "wrap",
)

var sbatchLongNoArg = nameSet(
	"contiguous", "exclusive", "get-user-env", "help", "hold", "ignore-pbs", "no-kill", "no-requeue", "nice",
	"overcommit", "oversubscribe", "parsable", "propagate", "quiet", "reboot", "requeue", "spread-job",
	"test-only", "usage", "use-min-nodes", "verbose", "version", "wait",
)

func nameSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// SbatchOpt is one parsed option: its long name (or the raw word for an
// option sbatch's table lacks), and its value.
type SbatchOpt struct {
	Name     string
	Value    string
	HasValue bool
	Raw      string // set for unknown options: passed on as written
}

// Known reports whether sbatch's table has the option.
func (o SbatchOpt) Known() bool { return o.Raw == "" }

// Arg is the option as one command-line word.
func (o SbatchOpt) Arg() string {
	switch {
	case o.Raw != "":
		return o.Raw
	case o.HasValue:
		return "--" + o.Name + "=" + o.Value
	}
	return "--" + o.Name
}

// longName resolves a long option name, allowing unique abbreviations as
// getopt_long does.
func longName(n string) string {
	if sbatchLongArg[n] || sbatchLongNoArg[n] {
		return n
	}
	match := ""
	for _, m := range []map[string]bool{sbatchLongArg, sbatchLongNoArg} {
		for k := range m {
			if strings.HasPrefix(k, n) {
				if match != "" {
					return n // ambiguous: sbatch will say so
				}
				match = k
			}
		}
	}
	if match == "" {
		return n
	}
	return match
}

// ParseSbatchOptions parses sbatch options up to the first word that is
// not one (the script) or "--"; rest is that word and what follows.
func ParseSbatchOptions(words []string) (opts []SbatchOpt, rest []string, err error) {
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--":
			return opts, words[i+1:], nil
		case strings.HasPrefix(w, "--"):
			n, v, hasV := strings.Cut(w[2:], "=")
			n = longName(n)
			switch {
			case sbatchLongArg[n]:
				if !hasV {
					if i+1 >= len(words) {
						return nil, nil, fmt.Errorf("option --%s requires an argument", n)
					}
					i++
					v = words[i]
				}
				opts = append(opts, SbatchOpt{Name: n, Value: v, HasValue: true})
			case sbatchLongNoArg[n]:
				opts = append(opts, SbatchOpt{Name: n, Value: v, HasValue: hasV})
			default:
				opts = append(opts, SbatchOpt{Name: n, Value: v, HasValue: hasV, Raw: w})
			}
		case strings.HasPrefix(w, "-") && len(w) > 1:
			for j := 1; j < len(w); j++ {
				c := w[j]
				long, known := sbatchShort[c]
				if !known {
					opts = append(opts, SbatchOpt{Name: string(c), Raw: "-" + string(c)})
					continue
				}
				if strings.IndexByte(sbatchShortArg, c) < 0 {
					opts = append(opts, SbatchOpt{Name: long})
					continue
				}
				v := w[j+1:]
				if v == "" {
					if i+1 >= len(words) {
						return nil, nil, fmt.Errorf("option -%c requires an argument", c)
					}
					i++
					v = words[i]
				}
				opts = append(opts, SbatchOpt{Name: long, Value: v, HasValue: true})
				break
			}
		default:
			return opts, words[i:], nil
		}
	}
	return opts, nil, nil
}

// Directives are a batch script's #SBATCH lines (those before its first
// command), as sbatch reads them.
type Directives struct {
	// Lines are the directive lines to copy into a wrapper script, less
	// the options that make sense only on a command line (--wait,
	// --parsable).
	Lines []string
	Opts  []SbatchOpt
}

// ParseDirectives reads a script's #SBATCH lines. The first line is the #!
// line; the directives end at the first line that is not blank or a comment.
func ParseDirectives(script []byte) (Directives, error) {
	var d Directives
	lines := strings.Split(string(script), "\n")
	for _, line := range lines[1:] { // the first is the #! line
		t := strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		switch {
		case t == "":
			continue
		case strings.HasPrefix(line, "#SBATCH"):
			words := DirectiveWords(line[len("#SBATCH"):])
			opts, rest, err := ParseSbatchOptions(words)
			if err != nil {
				return d, fmt.Errorf("directive %q: %w", line, err)
			}
			if len(rest) > 0 {
				return d, fmt.Errorf("directive %q: %q is not an option", line, rest[0])
			}
			keep := true
			for _, o := range opts {
				if o.Name == "wait" || o.Name == "parsable" {
					keep = false
				}
			}
			if keep {
				d.Lines = append(d.Lines, line)
			} else {
				var kept []string
				for _, o := range opts {
					if o.Name != "wait" && o.Name != "parsable" {
						kept = append(kept, quoteDirective(o.Arg()))
					}
				}
				if len(kept) > 0 {
					d.Lines = append(d.Lines, "#SBATCH "+strings.Join(kept, " "))
				}
			}
			d.Opts = append(d.Opts, opts...)
		case strings.HasPrefix(t, "#"):
			continue
		default:
			return d, nil
		}
	}
	return d, nil
}

// DirectiveWords splits what follows #SBATCH as sbatch 22.05 does: on blanks,
// quotes grouping (and removed), up to an unquoted # (the rest of the line
// is a comment, even inside a word: "--job-name=a#b" names the job "a").
func DirectiveWords(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQ != 0:
			if c == inQ {
				inQ = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			inQ, have = c, true
		case c == '#':
			i = len(s)
			continue
		case c == ' ' || c == '\t' || c == '\r':
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

func quoteDirective(w string) string {
	if strings.ContainsAny(w, " \t#'") {
		return `"` + w + `"`
	}
	return w
}
