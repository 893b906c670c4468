package eval

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestGateOneHugePredictionBoundedMemory evaluates, in a child process, a
// predictions file whose second record holds a 64 MiB prediction: gate
// refuses it with FILE:LINE and the limit, and the child's peak RSS
// (getrusage) stays under 300 MB.
func TestGateOneHugePredictionBoundedMemory(t *testing.T) {
	if p := os.Getenv("SLURMTUNE_GATE_CHILD"); p != "" {
		_, err := Evaluate(context.Background(), Inputs{PredictionPaths: []string{p}, Gates: mustGates(t, "bleu>=1")})
		if err == nil {
			t.Fatal("a 64 MiB prediction was accepted")
		}
		fmt.Println("ERROR:", err)
		return
	}
	if testing.Short() {
		t.Skip("writes a 64 MiB file")
	}
	path := filepath.Join(t.TempDir(), "predictions.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	// A bufio.Writer's error sticks: Flush reports any of these.
	_, _ = w.WriteString(`{"prediction":"the cat sat","reference":"the cat sat down"}` + "\n")
	_, _ = w.WriteString(`{"id":"big-1","reference":"short","prediction":"`)
	const word = "lorem ipsum dolor sit amet "
	for n := 0; n+len(word) < 64<<20-100; n += len(word) {
		_, _ = w.WriteString(word)
	}
	_, _ = w.WriteString(`"}` + "\n")
	_, _ = w.WriteString(`{"prediction":"a dog","reference":"a dog"}` + "\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGateOneHugePredictionBoundedMemory$", "-test.v")
	cmd.Env = append(os.Environ(), "SLURMTUNE_GATE_CHILD="+path, "GOGC=100", "GOMEMLIMIT=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	var msg string
	for _, l := range strings.Split(string(out), "\n") {
		if m, ok := strings.CutPrefix(l, "ERROR: "); ok {
			msg = m
		}
	}
	t.Logf("gate over a 64 MiB prediction: peak RSS %.1f MB; %s", float64(rss)/1e6, msg)
	if rss >= 300e6 {
		t.Errorf("peak RSS %d bytes, want under 300 MB", rss)
	}
	if !strings.Contains(msg, path+":2:") || !strings.Contains(msg, "limit") || strings.Count(msg, "\n") > 0 {
		t.Errorf("refusal %q: want one line naming %s:2 and the limit", msg, path)
	}
}

func mustGates(t *testing.T, specs ...string) []Gate {
	t.Helper()
	var gs []Gate
	for _, s := range specs {
		g, err := ParseGate(s)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

// TestMaxTextBytes: a prediction or reference over the limit is refused
// with its record; the limit is configurable.
func TestMaxTextBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	big := strings.Repeat("word ", 300<<10) // 1.5 MiB
	data := `{"prediction":"a b","reference":"a b"}` + "\n" + `{"id":7,"prediction":"x","references":["y","` + big + `"]}` + "\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Evaluate(context.Background(), Inputs{PredictionPaths: []string{path}, Gates: mustGates(t, "bleu>=0")})
	if err == nil || !strings.Contains(err.Error(), path+`:2: record (id "7"): reference 2 is 1536000 bytes, over the limit of 1048576`) {
		t.Fatalf("default limit: %v", err)
	}
	rep, err := Evaluate(context.Background(), Inputs{PredictionPaths: []string{path}, Gates: mustGates(t, "bleu>=0"), MaxTextBytes: 2 << 20})
	if err != nil || rep.Stats.Predictions != 2 {
		t.Fatalf("2 MiB limit: %v %+v", err, rep)
	}
}
