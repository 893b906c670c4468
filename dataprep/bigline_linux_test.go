package dataprep

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// bigLine is a text record of exactly n bytes: words, some with PII and
// toxic-looking shapes, so that every costly check would have work to do.
func bigLine(n int) []byte {
	const word = "lorem ipsum alice@example.com 555-0100 dolor "
	head, tail := `{"text":"`, `"}`
	b := make([]byte, 0, n)
	b = append(b, head...)
	for len(b)+len(word)+len(tail) <= n {
		b = append(b, word...)
	}
	for len(b)+len(tail) < n {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// TestPrepOneHugeLineBoundedMemory runs prep in a child process over an
// input whose second line is one 64 MiB record, with every check on
// (near-dup, PII, toxicity lexicon) and the default length limit: the
// record is refused as too long, the others kept, and the child's peak RSS
// (getrusage) stays under 300 MB.
func TestPrepOneHugeLineBoundedMemory(t *testing.T) {
	if os.Getenv("SLURMTUNE_PREP_CHILD") != "" {
		prepChild(t)
		return
	}
	if testing.Short() {
		t.Skip("writes a 64 MiB file")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	// A bufio.Writer's error sticks: Flush reports any of these.
	_, _ = w.WriteString(textLine("A short but perfectly valid first record.") + "\n")
	_, _ = w.Write(bigLine(DefaultMaxLineBytes))
	_, _ = w.WriteString("\n" + textLine("And a short valid record after the huge one.") + "\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out")
	cmd := exec.Command(os.Args[0], "-test.run=^TestPrepOneHugeLineBoundedMemory$")
	cmd.Env = append(os.Environ(), "SLURMTUNE_PREP_CHILD="+in+"|"+out, "GOGC=100", "GOMEMLIMIT=")
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, output)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	t.Logf("prep over a 64 MiB line: peak RSS %.1f MB; %s", float64(rss)/1e6, strings.TrimSpace(string(output)))
	if rss >= 300e6 {
		t.Errorf("peak RSS %d bytes, want under 300 MB", rss)
	}
	data, err := os.ReadFile(filepath.Join(out, "quality_report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Total != 3 || rep.Kept != 2 || rep.Removed.TooLong != 1 {
		t.Errorf("total %d kept %d too long %d, want 3/2/1", rep.Total, rep.Kept, rep.Removed.TooLong)
	}
	fd, ok := findingAt(&rep, in, 2)
	if !ok || fd.Check != ReasonTooLong || !strings.Contains(fd.Detail, "> maximum 200000") {
		t.Errorf("finding at line 2: %+v (found %v)", fd, ok)
	}
}

func prepChild(t *testing.T) {
	in, out, _ := strings.Cut(os.Getenv("SLURMTUNE_PREP_CHILD"), "|")
	o := DefaultOptions()
	o.Format = FormatText
	o.Inputs = []string{in}
	o.OutDir = out
	o.PII.Mode = PIIRedact
	o.Checks = CheckOptions{MaxRemovedRatio: -1, MaxMalformedRatio: -1}
	rep, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kept %d of %d", rep.Kept, rep.Total)
}
