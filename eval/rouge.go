package eval

import (
	"strings"
	"unicode/utf8"
)

// ROUGE as computed by Google's rouge_score (rouge/rouge_scorer.py,
// rouge/tokenize.py, rouge/scoring.py), the package behind Hugging Face's
// "rouge" metric.

// RougeScore is rouge_score's scoring.Score.
type RougeScore struct {
	Precision, Recall, FMeasure float64
}

// RougeOptions configures ROUGE. The zero value is rouge_score's default
// (no stemming).
type RougeOptions struct {
	// UseStemmer applies NLTK's Porter stemmer (NLTK_EXTENSIONS mode) to
	// tokens longer than three characters, like RougeScorer(use_stemmer=True).
	UseStemmer bool
}

// fmeasure is scoring.fmeasure.
func fmeasure(p, r float64) float64 {
	if p+r > 0 {
		return 2 * p * r / (p + r)
	}
	return 0
}

// rougeTokenize is rouge_score's tokenize.tokenize: lowercase (Python
// str.lower), replace every run of characters outside [a-z0-9] with a
// space, split, and keep tokens that match ^[a-z0-9]+$ (callers stem
// tokens longer than 3 when asked). It appends the tokens to dst as
// sub-slices of buf (which it returns, grown).
//
// Lower-casing only matters for characters that become ASCII letters:
// A-Z, U+0130 (-> "i\u0307": the i survives, the combining dot splits) and
// U+212A KELVIN SIGN (-> k). Every other non-ASCII character is a separator.
func rougeTokenize(dst [][]byte, buf []byte, text string) ([][]byte, []byte) {
	if cap(buf) < len(text) {
		buf = make([]byte, 0, len(text)+64)
	}
	buf = buf[:0]
	// The lowercased text is never longer than text (each multi-byte rune
	// yields at most one byte), so buf does not move while we slice it.
	start := -1
	for i := 0; i < len(text); {
		c := text[i]
		var out byte // 0: separator
		closeAfter := false
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				out = c
			case 'A' <= c && c <= 'Z':
				out = c + 'a' - 'A'
			}
			i++
		} else {
			r, size := utf8.DecodeRuneInString(text[i:])
			i += size
			switch r {
			case 0x130: // İ -> "i" + U+0307: the i stays, the dot separates
				out = 'i'
				closeAfter = true
			case 0x212a: // KELVIN SIGN -> k
				out = 'k'
			}
		}
		if out != 0 {
			if start < 0 {
				start = len(buf)
			}
			buf = append(buf, out)
			if !closeAfter {
				continue
			}
		}
		if start >= 0 {
			dst = append(dst, buf[start:len(buf):len(buf)])
			start = -1
		}
	}
	if start >= 0 {
		dst = append(dst, buf[start:len(buf):len(buf)])
	}
	return dst, buf
}

// RougeTokenize returns rouge_score's tokens for text.
func RougeTokenize(text string, opts RougeOptions) []string {
	toks, _ := rougeTokenize(nil, nil, text)
	out := make([]string, 0, len(toks))
	for _, t := range toks {
		s := string(t)
		if opts.UseStemmer && len(s) > 3 {
			s = porterStem(s)
			if s == "" {
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// rougeScorer scores prediction/reference pairs on interned token ids.
type rougeScorer struct {
	opts  RougeOptions
	vocab *vocab
	stem  map[string]int32 // token -> id of its stem

	table   *ngramTable
	pred    []int32 // counts of prediction n-grams, by local id
	cur     []int32 // counts of reference n-grams, by local id
	touched []int32

	fields [][]byte
	buf    []byte
	lcsRow []int32
}

func newRougeScorer(opts RougeOptions, v *vocab) *rougeScorer {
	if v == nil {
		v = newVocab()
	}
	return &rougeScorer{
		opts: opts, vocab: v, stem: map[string]int32{}, table: newNgramTable(),
		pred: make([]int32, 1, 256), cur: make([]int32, 1, 256),
	}
}

// ids tokenizes text into token ids (appending to dst).
func (s *rougeScorer) ids(dst []int32, text string) []int32 {
	s.fields, s.buf = rougeTokenize(s.fields[:0], s.buf, text)
	for _, f := range s.fields {
		if s.opts.UseStemmer && len(f) > 3 {
			id, ok := s.stem[string(f)]
			if !ok {
				st := porterStem(string(f))
				if st == "" {
					id = -1
				} else {
					id = s.vocab.idString(st)
				}
				s.stem[string(f)] = id
			}
			if id < 0 {
				continue
			}
			dst = append(dst, id)
			continue
		}
		dst = append(dst, s.vocab.id(f))
	}
	return dst
}

func (s *rougeScorer) intern(prefix, tok int32, n int) int32 {
	id := s.table.get(prefix, tok, n)
	if int(id) == len(s.pred) {
		s.pred = append(s.pred, 0)
		s.cur = append(s.cur, 0)
	}
	return id
}

// rougeMulti holds the per-metric best F-measures for one record.
type rougeMulti struct {
	R1, R2, RL RougeScore
}

// scoreMulti is RougeScorer(["rouge1","rouge2","rougeL"]).score_multi:
// for each metric, the score against the reference with the highest
// F-measure (the first one on ties, as numpy.argmax). refs must not be
// empty; empty reference strings score 0 like any other.
func (s *rougeScorer) scoreMulti(pred string, refs []string) rougeMulti {
	p := s.ids(nil, pred)
	r := make([][]int32, len(refs))
	for i, ref := range refs {
		r[i] = s.ids(nil, ref)
	}
	return s.scoreMultiIDs(p, r)
}

// scoreMultiIDs is scoreMulti on token ids.
func (s *rougeScorer) scoreMultiIDs(p []int32, refs [][]int32) rougeMulti {
	s.table.reset()
	s.pred, s.cur = s.pred[:1], s.cur[:1]
	// Prediction unigrams and bigrams.
	for i := range p {
		u := s.intern(0, p[i], 1)
		s.pred[u]++
		if i+1 < len(p) {
			b := s.intern(u, p[i+1], 2)
			s.pred[b]++
		}
	}
	var best rougeMulti
	for k, ref := range refs {
		r1, r2, rl := s.scorePair(ref, p)
		if k == 0 || r1.FMeasure > best.R1.FMeasure {
			best.R1 = r1
		}
		if k == 0 || r2.FMeasure > best.R2.FMeasure {
			best.R2 = r2
		}
		if k == 0 || rl.FMeasure > best.RL.FMeasure {
			best.RL = rl
		}
	}
	return best
}

// scorePair computes ROUGE-1, ROUGE-2 and ROUGE-L of prediction p against
// target t. The prediction's n-grams must already be counted in s.pred.
func (s *rougeScorer) scorePair(t, p []int32) (r1, r2, rl RougeScore) {
	// _score_ngrams: intersection = sum over target n-grams of
	// min(target count, prediction count).
	// Only n-grams the prediction has can match: look them up, and skip
	// the bigram when its first unigram is absent.
	s.touched = s.touched[:0]
	for i := range t {
		u := s.table.lookup(0, t[i])
		if u == 0 {
			continue
		}
		if s.cur[u] == 0 {
			s.touched = append(s.touched, u)
		}
		s.cur[u]++
		if i+1 < len(t) {
			b := s.table.lookup(u, t[i+1])
			if b == 0 {
				continue
			}
			if s.cur[b] == 0 {
				s.touched = append(s.touched, b)
			}
			s.cur[b]++
		}
	}
	var inter [3]int
	for _, id := range s.touched {
		n := s.table.order[id]
		inter[n] += int(min(s.cur[id], s.pred[id]))
		s.cur[id] = 0
	}
	r1 = ngramScore(inter[1], len(t), len(p))
	r2 = ngramScore(inter[2], max(len(t)-1, 0), max(len(p)-1, 0))
	rl = s.lcsScore(t, p)
	return
}

func ngramScore(inter, targetCount, predCount int) RougeScore {
	precision := float64(inter) / float64(max(predCount, 1))
	recall := float64(inter) / float64(max(targetCount, 1))
	return RougeScore{precision, recall, fmeasure(precision, recall)}
}

// lcsScore is _score_lcs.
func (s *rougeScorer) lcsScore(t, p []int32) RougeScore {
	if len(t) == 0 || len(p) == 0 {
		return RougeScore{}
	}
	l := lcsLength(t, p, &s.lcsRow)
	precision := float64(l) / float64(len(p))
	recall := float64(l) / float64(len(t))
	return RougeScore{precision, recall, fmeasure(precision, recall)}
}

// lcsLength is the length of the longest common subsequence of a and b,
// computed with one DP row.
func lcsLength(a, b []int32, rowp *[]int32) int {
	if len(b) > len(a) {
		a, b = b, a
	}
	row := *rowp
	if cap(row) < len(b)+1 {
		row = make([]int32, len(b)+1)
	}
	row = row[:len(b)+1]
	clear(row)
	for _, x := range a {
		var diag int32 // row[j-1] of the previous row
		for j, y := range b {
			up := row[j+1]
			if x == y {
				row[j+1] = diag + 1
			} else if row[j] > up {
				row[j+1] = row[j]
			}
			diag = up
		}
	}
	*rowp = row
	return int(row[len(b)])
}

// lcsTable is rouge_scorer._lcs_table.
func lcsTable(ref, can []int32) [][]int {
	t := make([][]int, len(ref)+1)
	for i := range t {
		t[i] = make([]int, len(can)+1)
	}
	for i := 1; i <= len(ref); i++ {
		for j := 1; j <= len(can); j++ {
			if ref[i-1] == can[j-1] {
				t[i][j] = t[i-1][j-1] + 1
			} else {
				t[i][j] = max(t[i-1][j], t[i][j-1])
			}
		}
	}
	return t
}

// backtrackNoRec is rouge_scorer._backtrack_norec: indices into ref of one
// LCS.
func backtrackNoRec(t [][]int, ref, can []int32) []int {
	i, j := len(ref), len(can)
	var lcs []int
	for i > 0 && j > 0 {
		if ref[i-1] == can[j-1] {
			lcs = append(lcs, i-1)
			i--
			j--
		} else if t[i][j-1] > t[i-1][j] {
			j--
		} else {
			i--
		}
	}
	for a, b := 0, len(lcs)-1; a < b; a, b = a+1, b-1 {
		lcs[a], lcs[b] = lcs[b], lcs[a]
	}
	return lcs
}

// unionLCS is rouge_scorer._union_lcs: the tokens of ref in the union of
// its LCS with each candidate sentence, in ref order.
func unionLCS(ref []int32, cands [][]int32) []int32 {
	in := make([]bool, len(ref))
	for _, c := range cands {
		for _, i := range backtrackNoRec(lcsTable(ref, c), ref, c) {
			in[i] = true
		}
	}
	var out []int32
	for i, ok := range in {
		if ok {
			out = append(out, ref[i])
		}
	}
	return out
}

// summaryLevelLCS is rouge_scorer._summary_level_lcs (ROUGE-Lsum) over
// tokenized sentences.
func summaryLevelLCS(refSents, canSents [][]int32) RougeScore {
	if len(refSents) == 0 || len(canSents) == 0 {
		return RougeScore{}
	}
	m, n := 0, 0
	cntR := map[int32]int{}
	cntC := map[int32]int{}
	for _, s := range refSents {
		m += len(s)
		for _, t := range s {
			cntR[t]++
		}
	}
	for _, s := range canSents {
		n += len(s)
		for _, t := range s {
			cntC[t]++
		}
	}
	if m == 0 || n == 0 {
		return RougeScore{}
	}
	hits := 0
	for _, r := range refSents {
		for _, t := range unionLCS(r, canSents) {
			if cntC[t] > 0 && cntR[t] > 0 {
				hits++
				cntC[t]--
				cntR[t]--
			}
		}
	}
	recall := float64(hits) / float64(m)
	precision := float64(hits) / float64(n)
	return RougeScore{precision, recall, fmeasure(precision, recall)}
}

// RougeScores holds one record's ROUGE-1, ROUGE-2 and ROUGE-L scores.
type RougeScores struct {
	Rouge1, Rouge2, RougeL RougeScore
}

// ScoreRouge is RougeScorer(["rouge1", "rouge2", "rougeL"]).score_multi(
// references, prediction) (with one reference it equals .score). It panics
// if references is empty, as score_multi fails there too.
func ScoreRouge(references []string, prediction string, opts RougeOptions) RougeScores {
	if len(references) == 0 {
		panic("eval: ScoreRouge needs at least one reference")
	}
	s := newRougeScorer(opts, nil)
	m := s.scoreMulti(prediction, references)
	return RougeScores{m.R1, m.R2, m.RL}
}

// ScoreRougeLsum is rouge_score's "rougeLsum" for one target/prediction
// pair, with sentences separated by newlines (split_summaries=False).
func ScoreRougeLsum(target, prediction string, opts RougeOptions) RougeScore {
	s := newRougeScorer(opts, nil)
	sents := func(text string) [][]int32 {
		var out [][]int32
		for _, line := range strings.Split(text, "\n") {
			if line == "" {
				continue
			}
			out = append(out, s.ids(nil, line))
		}
		return out
	}
	return summaryLevelLCS(sents(target), sents(prediction))
}
