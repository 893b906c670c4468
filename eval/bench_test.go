package eval

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// lexiconScorer stands in for the data-prep lexicon scorer.
type lexiconScorer map[string]bool

func (l lexiconScorer) IsToxic(s string) bool {
	var buf [64]byte
	n := 0
	for i := 0; i <= len(s); i++ {
		var c byte = ' '
		if i < len(s) {
			c = s[i]
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'a' <= c && c <= 'z' || c == '\'' {
			if n < len(buf) {
				buf[n] = c
				n++
			}
			continue
		}
		if n > 0 && l[string(buf[:n])] {
			return true
		}
		n = 0
	}
	return false
}

// genSentence returns a sentence of about 20 words drawn from a skewed
// vocabulary, with capitals, punctuation and some numbers.
func genSentence(r *rand.Rand, vocab []string, b *strings.Builder) string {
	b.Reset()
	n := 10 + r.IntN(21) // 10..30, mean 20
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		// Skewed: squares bias towards frequent words.
		x := r.Float64()
		w := vocab[int(x*x*float64(len(vocab)))]
		if i == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
		switch r.IntN(12) {
		case 0:
			b.WriteByte(',')
		case 1:
			fmt.Fprintf(b, " %d.%d", r.IntN(100), r.IntN(10))
		}
	}
	b.WriteString(".")
	return b.String()
}

// genInputs writes a 100k-record evaluation set to dir.
func genInputs(tb testing.TB, dir string, records int) Inputs {
	r := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 5000)
	for i := range vocab {
		l := 2 + r.IntN(8)
		var w []byte
		for j := 0; j < l; j++ {
			w = append(w, byte('a'+r.IntN(26)))
		}
		vocab[i] = string(w)
	}
	vocab[0], vocab[1], vocab[2], vocab[3] = "the", "a", "of", "don't"
	write := func(name string, fill func(w *bufio.Writer)) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			tb.Fatal(err)
		}
		w := bufio.NewWriter(f)
		fill(w)
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		return p
	}
	var sb strings.Builder
	preds := write("preds.jsonl", func(w *bufio.Writer) {
		for i := 0; i < records; i++ {
			ref := genSentence(r, vocab, &sb)
			var pred string
			if r.IntN(3) == 0 {
				pred = genSentence(r, vocab, &sb)
			} else { // a noisy copy of the reference
				words := strings.Fields(ref)
				for k := 0; k < len(words)/4; k++ {
					words[r.IntN(len(words))] = vocab[r.IntN(len(vocab))]
				}
				pred = strings.Join(words, " ")
			}
			fmt.Fprintf(w, "{\"id\": \"%d\", \"prediction\": %q, \"references\": [%q]}\n", i, pred, ref)
		}
	})
	nll := write("nll.jsonl", func(w *bufio.Writer) {
		for i := 0; i < records; i++ {
			fmt.Fprintf(w, "{\"nll_sum\": %.4f, \"tokens\": %d}\n", 20+r.Float64()*40, 10+r.IntN(30))
		}
	})
	human := write("review.csv", func(w *bufio.Writer) {
		fmt.Fprint(w, "id,prompt,prediction,reference,score\n")
		for i := 0; i < 200; i++ {
			fmt.Fprintf(w, "%d,p,x,y,%d\n", i, 1+r.IntN(5))
		}
	})
	gates, _ := ParseGates([]string{"perplexity<=100", "bleu>=10", "rougeL>=0.2", "accuracy>=0", "toxicity<=0.1", "human_eval>=3"})
	return Inputs{
		PredictionPaths: []string{preds},
		NLLPaths:        []string{nll},
		HumanCSVPath:    human,
		Toxicity:        lexiconScorer{vocab[17]: true, vocab[4000]: true},
		Gates:           gates,
	}
}

// BenchmarkEvaluate100k evaluates 100,000 prediction/reference pairs of
// about 20 words each (plus 100,000 NLL lines and a review CSV): all
// metrics, all gates. Run it on one core with scripts/bench/gate.sh.
func BenchmarkEvaluate100k(b *testing.B) {
	in := genInputs(b, b.TempDir(), 100000)
	var fi os.FileInfo
	fi, _ = os.Stat(in.PredictionPaths[0])
	b.SetBytes(fi.Size())
	runtime.GC()
	cpu0 := processCPUTime()
	n := 0
	for b.Loop() {
		rep, err := Evaluate(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Metrics.BLEU == nil || rep.Stats.Predictions != 100000 {
			b.Fatal("incomplete report")
		}
		n++
	}
	// CPU time (all threads, GC included) per evaluation: the number to
	// hold against the 2 s budget when the machine is shared.
	if cpu := processCPUTime() - cpu0; cpu > 0 {
		b.ReportMetric(cpu.Seconds()/float64(n), "cpu-s/op")
	}
}
