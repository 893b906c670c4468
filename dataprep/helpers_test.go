package dataprep

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// testOptions returns options with every filter off except the exact
// de-duplication, so a test can switch on what it checks.
func testOptions(format Format, outDir string, inputs ...string) Options {
	o := DefaultOptions()
	o.Format = format
	o.Inputs = inputs
	o.OutDir = outDir
	o.NearDup.Enabled = false
	o.Toxicity.Enabled = false
	o.Length = LengthOptions{}
	o.PII.Mode = PIIOff
	o.Checks = CheckOptions{MaxRemovedRatio: -1, MaxMalformedRatio: -1}
	o.Workers = 2
	return o
}

func mustRun(t testing.TB, o Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

type qEntry struct {
	File      string          `json:"file"`
	Line      int             `json:"line"`
	Reason    string          `json:"reason"`
	Kind      string          `json:"kind"`
	Detail    string          `json:"detail"`
	Record    json.RawMessage `json:"record"`
	Raw       *string         `json:"raw"`
	RawBase64 *string         `json:"raw_base64"`
}

func readQuarantine(t testing.TB, dir string) []qEntry {
	t.Helper()
	var out []qEntry
	for _, l := range readLines(t, filepath.Join(dir, QuarantineFile)) {
		var q qEntry
		if err := json.Unmarshal([]byte(l), &q); err != nil {
			t.Fatalf("quarantine line %q: %v", l, err)
		}
		out = append(out, q)
	}
	return out
}

func readReportFile(t testing.TB, dir string) Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// chatLine builds a valid chat record.
func chatLine(user, assistant string) string {
	b, _ := json.Marshal(map[string]any{"messages": []map[string]string{
		{"role": "user", "content": user},
		{"role": "assistant", "content": assistant},
	}})
	return string(b)
}

func textLine(text string) string {
	b, _ := json.Marshal(map[string]string{"text": text})
	return string(b)
}

func findingAt(rep *Report, file string, line int) (Finding, bool) {
	for _, f := range rep.Findings {
		if f.File == file && f.Line == line {
			return f, true
		}
	}
	return Finding{}, false
}

func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func joinLines(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
