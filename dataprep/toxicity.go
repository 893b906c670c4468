package dataprep

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

//go:embed lexicon/toxic.txt
var builtinLexicon string

const maxPhraseWords = 16

type lexEntry struct {
	term   string // normalised; for a prefix entry, the prefix
	weight float64
	prefix bool
}

// lexicon matches whole words, word prefixes and phrases by the wordHash of
// their normalised bytes (verified against the term).
type lexicon struct {
	entries    []lexEntry
	words      map[uint64]int32
	prefixes   map[uint64]int32
	prefixLens uint64 // bit L: some prefix is L bytes long (L < 64)
	minPrefix  int    // length of the shortest prefix, at most 4
	headMask   uint64 // keeps the first minPrefix bytes of load8
	// heads has bit headIndex(w) set for the first minPrefix bytes w of
	// every prefix: most words miss it and skip the prefix lookups.
	heads       [1 << 10]uint64
	phrases     map[uint64]int32
	phraseLens  uint32   // bit n: some phrase has n words
	prefixTerms []string // all prefixes (to rebuild heads)
	// filter has bit h>>48 set for the hash h of every word entry and of
	// the last word of every phrase: most words miss it and skip the map
	// lookups.
	filter [1 << 10]uint64
}

func (lx *lexicon) mark(h uint64) { lx.filter[h>>54] |= 1 << (h >> 48 & 63) }

func (lx *lexicon) maybe(h uint64) bool { return lx.filter[h>>54]&(1<<(h>>48&63)) != 0 }

// headIndex maps the first minPrefix bytes of a word, packed by load8, to
// a bit of heads.
func headIndex(head uint64) uint64 { return (head + 1) * xxPrime1 >> 48 }

// matchPrefix returns the longest prefix entry matching tok, or -1.
func (lx *lexicon) matchPrefix(tok []byte) int32 {
	for l := min(len(tok), 63); l >= lx.minPrefix; l-- {
		if lx.prefixLens>>uint(l)&1 == 0 {
			continue
		}
		if e, ok := lx.prefixes[wordHash(tok[:l])]; ok && lx.entries[e].term == string(tok[:l]) {
			return e
		}
	}
	return -1
}

func newLexicon() *lexicon {
	return &lexicon{words: map[uint64]int32{}, prefixes: map[uint64]int32{}, phrases: map[uint64]int32{}}
}

// load adds the terms of a word list (see ToxicityOptions.WordLists).
func (lx *lexicon) load(src, name string) error {
	var ts textScan
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		weight := 1.0
		if fs := strings.Fields(line); len(fs) > 1 {
			if w, err := strconv.ParseFloat(fs[len(fs)-1], 64); err == nil && w >= 0 && w <= 1 {
				weight = w
				line = strings.Join(fs[:len(fs)-1], " ")
			}
		}
		prefix := strings.HasSuffix(line, "*")
		line = strings.TrimSuffix(line, "*")
		ts.reset()
		ts.addField(0, []byte(line))
		toks := ts.toks
		switch {
		case len(toks) == 0:
			return fmt.Errorf("%s:%d: term %q has no letters or digits", name, i+1, line)
		case len(toks) > maxPhraseWords:
			return fmt.Errorf("%s:%d: phrase %q has more than %d words", name, i+1, line, maxPhraseWords)
		}
		term := strings.Join(wordsOf(ts.norm), " ")
		if prefix && (len(toks) > 1 || len(term) >= 64) {
			return fmt.Errorf("%s:%d: prefix %q must be one word shorter than 64 bytes", name, i+1, line)
		}
		var m map[uint64]int32
		var key uint64
		switch {
		case prefix:
			m, key = lx.prefixes, toks[0]
			lx.prefixLens |= 1 << uint(len(term))
			lx.prefixTerms = append(lx.prefixTerms, term)
		case len(toks) == 1:
			m, key = lx.words, toks[0]
		default:
			m, key = lx.phrases, combineHashes(toks)
			lx.phraseLens |= 1 << uint(len(toks))
		}
		if !prefix {
			lx.mark(toks[len(toks)-1])
		}
		if e, ok := m[key]; ok {
			lx.entries[e].weight = math.Max(lx.entries[e].weight, weight)
			continue
		}
		m[key] = int32(len(lx.entries))
		lx.entries = append(lx.entries, lexEntry{term: term, weight: weight, prefix: prefix})
	}
	lx.minPrefix = 4
	for _, p := range lx.prefixTerms {
		lx.minPrefix = min(lx.minPrefix, len(p))
	}
	lx.headMask = 1<<(8*uint(lx.minPrefix)) - 1
	clear(lx.heads[:])
	for _, p := range lx.prefixTerms {
		hi := headIndex(load8([]byte(p[:lx.minPrefix])))
		lx.heads[hi>>6] |= 1 << (hi & 63)
	}
	return nil
}

// wordsOf returns the words of a normalised text, as textScan cuts them.
func wordsOf(norm []byte) []string {
	var words []string
	start := -1
	for i, r := range string(norm) {
		if isWordRune(r) {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			words = append(words, string(norm[start:i]))
			start = -1
		}
	}
	if start >= 0 {
		words = append(words, string(norm[start:]))
	}
	return words
}

// score combines the weights of the matches (noisy OR).
func (lx *lexicon) score(matches []int32) float64 {
	p := 1.0
	for _, e := range matches {
		p *= 1 - lx.entries[e].weight
	}
	return 1 - p
}

// describe lists the distinct matched terms, in order of first match.
func (lx *lexicon) describe(matches []int32) string {
	var sb strings.Builder
	seen := make(map[int32]bool, len(matches))
	for _, e := range matches {
		if seen[e] {
			continue
		}
		seen[e] = true
		if sb.Len() > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(lx.entries[e].term)
		if lx.entries[e].prefix {
			sb.WriteByte('*')
		}
	}
	return sb.String()
}

// ToxicityScorer scores texts for toxic content with a weighted word list
// (the shipped starter list and/or user lists) and an optional external
// classifier. It is safe for concurrent use and is shared by the prep and
// eval stages.
type ToxicityScorer struct {
	lex        *lexicon
	threshold  float64
	classifier []string
	batch      int
	timeout    time.Duration
	scratch    sync.Pool // *textScan
}

// NewToxicityScorer builds a scorer from opts (opts.Enabled is ignored).
// A Threshold of 0 means the default 0.5.
func NewToxicityScorer(opts ToxicityOptions) (*ToxicityScorer, error) {
	t := &ToxicityScorer{
		lex:        newLexicon(),
		threshold:  opts.Threshold,
		classifier: opts.Classifier,
		batch:      opts.ClassifierBatch,
		timeout:    opts.ClassifierTimeout,
	}
	if t.threshold == 0 {
		t.threshold = 0.5
	}
	if t.threshold < 0 || t.threshold > 1 {
		return nil, fmt.Errorf("toxicity threshold %v not in [0,1]", t.threshold)
	}
	if t.batch <= 0 {
		t.batch = 256
	}
	if opts.Builtin {
		if err := t.lex.load(builtinLexicon, "builtin lexicon"); err != nil {
			return nil, err
		}
	}
	for _, path := range opts.WordLists {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read word list: %w", err)
		}
		if !utf8.Valid(data) {
			return nil, fmt.Errorf("read word list %s: invalid UTF-8", path)
		}
		if err := t.lex.load(string(data), path); err != nil {
			return nil, fmt.Errorf("read word list: %w", err)
		}
	}
	t.scratch.New = func() any { return &textScan{lex: t.lex} }
	return t, nil
}

// Threshold returns the score at and above which a text is toxic.
func (t *ToxicityScorer) Threshold() float64 { return t.threshold }

// Score returns the word-list score of text in [0,1]: 1 - prod(1 - weight)
// over all matched terms. It does not run the external classifier; use
// ScoreBatch for that.
func (t *ToxicityScorer) Score(text string) float64 {
	ts := t.scratch.Get().(*textScan)
	defer t.scratch.Put(ts)
	ts.reset()
	ts.addField(0, []byte(text))
	return t.lex.score(ts.matches)
}

// IsToxic reports whether Score(text) >= Threshold().
func (t *ToxicityScorer) IsToxic(text string) bool { return t.Score(text) >= t.threshold }

// ScoreBatch scores texts with the word list and, when configured, the
// external classifier (the maximum of both). A classifier failure is
// returned as an error.
func (t *ToxicityScorer) ScoreBatch(ctx context.Context, texts []string) ([]float64, error) {
	scores := make([]float64, len(texts))
	bs := make([][]byte, len(texts))
	for i, s := range texts {
		scores[i] = t.Score(s)
		bs[i] = []byte(s)
	}
	if len(t.classifier) == 0 {
		return scores, nil
	}
	cls := make([]float64, len(texts))
	if err := t.classify(ctx, bs, cls); err != nil {
		return nil, err
	}
	for i := range scores {
		scores[i] = math.Max(scores[i], cls[i])
	}
	return scores, nil
}

// classify runs the external classifier over texts in batches and stores the
// scores in out.
func (t *ToxicityScorer) classify(ctx context.Context, texts [][]byte, out []float64) error {
	for start := 0; start < len(texts); start += t.batch {
		end := min(start+t.batch, len(texts))
		if err := t.classifyBatch(ctx, texts[start:end], out[start:end]); err != nil {
			return err
		}
	}
	return nil
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct{ b []byte }

func (w *tailBuffer) Write(p []byte) (int, error) {
	const max = 4096
	w.b = append(w.b, p...)
	if len(w.b) > max {
		w.b = append(w.b[:0], w.b[len(w.b)-max:]...)
	}
	return len(p), nil
}

func (t *ToxicityScorer) classifyBatch(ctx context.Context, texts [][]byte, out []float64) error {
	if t.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}
	var in []byte
	for i, text := range texts {
		in = append(in, `{"id":`...)
		in = strconv.AppendInt(in, int64(i), 10)
		in = append(in, `,"text":`...)
		in = appendJSONString(in, text)
		in = append(in, "}\n"...)
	}
	cmd := exec.CommandContext(ctx, t.classifier[0], t.classifier[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	var stdout bytes.Buffer
	var stderr tailBuffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	fail := func(err error) error {
		msg := strings.TrimSpace(string(stderr.b))
		if msg != "" {
			err = fmt.Errorf("%w (stderr: %s)", err, msg)
		}
		return fmt.Errorf("toxicity classifier %q: %w", t.classifier[0], err)
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
		return fail(err)
	}
	seen := make([]bool, len(texts))
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var res struct {
			ID    *int     `json:"id"`
			Score *float64 `json:"score"`
		}
		if err := json.Unmarshal(line, &res); err != nil {
			return fail(fmt.Errorf("output line %d: %w", lineNo, err))
		}
		switch {
		case res.ID == nil || res.Score == nil:
			return fail(fmt.Errorf("output line %d: want {\"id\":n,\"score\":x}", lineNo))
		case *res.ID < 0 || *res.ID >= len(texts):
			return fail(fmt.Errorf("output line %d: unknown id %d", lineNo, *res.ID))
		case seen[*res.ID]:
			return fail(fmt.Errorf("output line %d: duplicate id %d", lineNo, *res.ID))
		case math.IsNaN(*res.Score) || *res.Score < 0 || *res.Score > 1:
			return fail(fmt.Errorf("output line %d: score %v not in [0,1]", lineNo, *res.Score))
		}
		seen[*res.ID] = true
		out[*res.ID] = *res.Score
	}
	if err := sc.Err(); err != nil {
		return fail(fmt.Errorf("read output: %w", err))
	}
	for id, ok := range seen {
		if !ok {
			return fail(errors.New("no score for id " + strconv.Itoa(id)))
		}
	}
	return nil
}
