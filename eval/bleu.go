package eval

import (
	"errors"
	"fmt"
	"math"
)

// BLEU smoothing methods (sacrebleu BLEU.SMOOTH_DEFAULTS).
const (
	SmoothExp   = "exp"   // NIST geometric sequence smoothing (default)
	SmoothNone  = "none"  // no smoothing
	SmoothFloor = "floor" // zero precisions get smooth_value (default 0.1)
	SmoothAddK  = "add-k" // add smooth_value (default 1) to orders > 1
)

// BLEUOptions mirrors sacrebleu.metrics.BLEU's arguments. The zero value is
// sacrebleu's default corpus BLEU: 13a tokenizer, mixed case, exp smoothing,
// max n-gram order 4, no effective order.
type BLEUOptions struct {
	Tokenize       string   // "13a" (default), "none", "char" or "intl"
	Lowercase      bool     // lowercase before tokenising (Python str.lower)
	SmoothMethod   string   // "exp" (default), "none", "floor" or "add-k"
	SmoothValue    *float64 // nil: 0.1 for floor, 1 for add-k
	MaxNgramOrder  int      // 0 means 4
	EffectiveOrder bool     // stop at the highest order with any n-grams
}

func (o BLEUOptions) maxOrder() int {
	if o.MaxNgramOrder <= 0 {
		return 4
	}
	return o.MaxNgramOrder
}

func (o BLEUOptions) smooth() (string, float64, error) {
	m := o.SmoothMethod
	if m == "" {
		m = SmoothExp
	}
	var def float64
	switch m {
	case SmoothExp, SmoothNone:
	case SmoothFloor:
		def = 0.1
	case SmoothAddK:
		def = 1
	default:
		return "", 0, fmt.Errorf("eval: unknown BLEU smooth method %q (want exp, none, floor or add-k)", m)
	}
	if o.SmoothValue != nil {
		def = *o.SmoothValue
	}
	return m, def, nil
}

// BLEUScore is sacrebleu's BLEUScore: Score is on the 0-100 scale.
type BLEUScore struct {
	Score      float64
	Counts     []float64 // matched n-grams per order (after add-k)
	Totals     []float64 // hypothesis n-grams per order (after add-k)
	Precisions []float64 // per order, in percent
	BP         float64
	SysLen     int
	RefLen     int
}

// myLog is sacrebleu.utils.my_log.
func myLog(x float64) float64 {
	if x == 0 {
		return -9999999999
	}
	return math.Log(x)
}

// ComputeBLEU is sacrebleu's BLEU.compute_bleu: the score from sufficient
// statistics. correct and total hold one count per n-gram order; their
// length is the maximum order. method is "exp", "none", "floor" or "add-k";
// value nil selects the method's default.
func ComputeBLEU(correct, total []float64, sysLen, refLen int, method string, value *float64, effectiveOrder bool) (BLEUScore, error) {
	if len(correct) != len(total) || len(correct) == 0 {
		return BLEUScore{}, errors.New("eval: ComputeBLEU needs equally long, non-empty correct and total")
	}
	m, sv, err := BLEUOptions{SmoothMethod: method, SmoothValue: value}.smooth()
	if err != nil {
		return BLEUScore{}, err
	}
	maxOrder := len(correct)
	correct = append([]float64(nil), correct...)
	total = append([]float64(nil), total...)

	bp := 1.0
	if sysLen < refLen {
		if sysLen > 0 {
			bp = math.Exp(1 - float64(refLen)/float64(sysLen))
		} else {
			bp = 0
		}
	}
	precisions := make([]float64, maxOrder)
	res := BLEUScore{Counts: correct, Totals: total, Precisions: precisions, BP: bp, SysLen: sysLen, RefLen: refLen}

	// Early stop if there are no matches (sacrebleu #141).
	anyCorrect := false
	for _, c := range correct {
		if c != 0 {
			anyCorrect = true
			break
		}
	}
	if !anyCorrect {
		return res, nil
	}

	smoothMteval := 1.0
	effOrder := maxOrder
	for n := 1; n <= maxOrder; n++ {
		if m == SmoothAddK && n > 1 {
			correct[n-1] += sv
			total[n-1] += sv
		}
		if total[n-1] == 0 {
			break
		}
		if effectiveOrder {
			effOrder = n
		}
		if correct[n-1] == 0 {
			switch m {
			case SmoothExp:
				smoothMteval *= 2
				precisions[n-1] = 100. / (smoothMteval * total[n-1])
			case SmoothFloor:
				precisions[n-1] = 100. * sv / total[n-1]
			}
		} else {
			precisions[n-1] = 100. * correct[n-1] / total[n-1]
		}
	}
	sum := 0.0
	for _, p := range precisions[:effOrder] {
		sum += myLog(p)
	}
	res.Score = bp * math.Exp(sum/float64(effOrder))
	return res, nil
}

// bleuCorpus accumulates sacrebleu's segment statistics over a corpus.
type bleuCorpus struct {
	opts     BLEUOptions
	method   string
	value    float64
	maxOrder int
	tok      bleuTokenizer
	t13a     *tok13a // non-nil for the (fast) default tokenizer
	vocab    *vocab
	table    *ngramTable

	// per-record scratch, indexed by local n-gram id
	refMax, cur, hyp []int32
	touched          []int32
	hypTouched       []int32
	fields           [][]byte
	strs             []string
	refLens          []int

	// corpus statistics
	sysLen, refLen int
	correct, total []int64
	segments       int
}

func newBLEUCorpus(opts BLEUOptions, v *vocab) (*bleuCorpus, error) {
	tok, err := newBLEUTokenizer(opts.Tokenize)
	if err != nil {
		return nil, err
	}
	m, sv, err := opts.smooth()
	if err != nil {
		return nil, err
	}
	if opts.MaxNgramOrder > 64 {
		return nil, fmt.Errorf("eval: BLEU max n-gram order %d is too large", opts.MaxNgramOrder)
	}
	if v == nil {
		v = newVocab()
	}
	b := &bleuCorpus{
		opts: opts, method: m, value: sv, maxOrder: opts.maxOrder(),
		tok: tok, vocab: v, table: newNgramTable(),
	}
	b.t13a, _ = tok.(*tok13a)
	b.refMax, b.cur, b.hyp = make([]int32, 1, 256), make([]int32, 1, 256), make([]int32, 1, 256)
	b.correct = make([]int64, b.maxOrder)
	b.total = make([]int64, b.maxOrder)
	return b, nil
}

// tokenIDs tokenises one segment as sacrebleu's _preprocess_segment does
// (lowercase, rstrip, tokenize) and appends its token ids to dst. changed
// reports that 13a preprocessing deleted or replaced characters
// (<skipped>, -\n, HTML entities).
func (b *bleuCorpus) tokenIDs(dst []int32, seg string) (ids []int32, changed bool) {
	if b.opts.Lowercase {
		seg = pyLower(seg)
	}
	seg = pyRStrip(seg)
	if b.t13a != nil {
		buf, ch := b.t13a.tokenizeChanged(seg)
		b.fields = appendFieldsBytes(b.fields[:0], buf)
		for _, f := range b.fields {
			dst = append(dst, b.vocab.id(f))
		}
		return dst, ch
	}
	b.strs = b.tok.tokens(b.strs[:0], seg)
	for _, s := range b.strs {
		dst = append(dst, b.vocab.idString(s))
	}
	return dst, true
}

// intern returns the local id of the n-gram (prefix, tok) of order n,
// growing the per-id arrays for new ids.
func (b *bleuCorpus) intern(prefix, tok int32, n int) int32 {
	id := b.table.get(prefix, tok, n)
	if int(id) == len(b.cur) {
		b.refMax = append(b.refMax, 0)
		b.cur = append(b.cur, 0)
		b.hyp = append(b.hyp, 0)
	}
	return id
}

// add adds one segment. refs must contain at least one non-empty string;
// empty references are ignored, as sacrebleu does.
func (b *bleuCorpus) add(hyp string, refs []string) {
	hypIDs, _ := b.tokenIDs(nil, hyp)
	var refIDs [][]int32
	for _, r := range refs {
		if r != "" {
			ids, _ := b.tokenIDs(nil, r)
			refIDs = append(refIDs, ids)
		}
	}
	b.addIDs(hypIDs, refIDs)
}

// addIDs adds one tokenized segment.
//
// The hypothesis n-grams are interned and counted first; a reference
// n-gram only matters if the hypothesis has it, so references are only
// looked up, and an absent (n-1)-gram ends the scan of longer ones.
func (b *bleuCorpus) addIDs(ids []int32, refs [][]int32) {
	b.table.reset()
	b.refMax, b.cur, b.hyp = b.refMax[:1], b.cur[:1], b.hyp[:1]

	hypLen := len(ids)
	b.hypTouched = b.hypTouched[:0]
	for i := range ids {
		prev := int32(0)
		for n := 1; n <= b.maxOrder && i+n <= len(ids); n++ {
			id := b.intern(prev, ids[i+n-1], n)
			if b.hyp[id] == 0 {
				b.hypTouched = append(b.hypTouched, id)
			}
			b.hyp[id]++
			b.total[n-1]++
			prev = id
		}
	}

	b.refLens = b.refLens[:0]
	for _, ids := range refs {
		b.refLens = append(b.refLens, len(ids))
		if hypLen == 0 {
			continue
		}
		b.touched = b.touched[:0]
		for i := range ids {
			prev := int32(0)
			for n := 1; n <= b.maxOrder && i+n <= len(ids); n++ {
				id := b.table.lookup(prev, ids[i+n-1])
				if id == 0 {
					break
				}
				if b.cur[id] == 0 {
					b.touched = append(b.touched, id)
				}
				b.cur[id]++
				prev = id
			}
		}
		for _, id := range b.touched {
			if b.cur[id] > b.refMax[id] {
				b.refMax[id] = b.cur[id]
			}
			b.cur[id] = 0
		}
	}
	for _, id := range b.hypTouched {
		b.correct[b.table.order[id]-1] += int64(min(b.hyp[id], b.refMax[id]))
	}

	// _get_closest_ref_len: closest length, the shorter one on ties.
	closestDiff, closestLen := -1, -1
	for _, rl := range b.refLens {
		diff := hypLen - rl
		if diff < 0 {
			diff = -diff
		}
		if closestDiff == -1 || diff < closestDiff {
			closestDiff, closestLen = diff, rl
		} else if diff == closestDiff && rl < closestLen {
			closestLen = rl
		}
	}
	b.sysLen += hypLen
	b.refLen += closestLen
	b.segments++
}

func (b *bleuCorpus) score() BLEUScore {
	correct := make([]float64, b.maxOrder)
	total := make([]float64, b.maxOrder)
	for i := range correct {
		correct[i] = float64(b.correct[i])
		total[i] = float64(b.total[i])
	}
	v := b.value
	s, _ := ComputeBLEU(correct, total, b.sysLen, b.refLen, b.method, &v, b.opts.EffectiveOrder)
	return s
}

// CorpusBLEU computes sacrebleu's corpus BLEU. refs[i] holds the references
// of hyps[i] (any number; empty strings are ignored, but every hypothesis
// needs at least one non-empty reference, as in sacrebleu).
func CorpusBLEU(hyps []string, refs [][]string, opts BLEUOptions) (BLEUScore, error) {
	if len(hyps) != len(refs) {
		return BLEUScore{}, fmt.Errorf("eval: %d hypotheses but %d reference sets", len(hyps), len(refs))
	}
	b, err := newBLEUCorpus(opts, nil)
	if err != nil {
		return BLEUScore{}, err
	}
	for i, h := range hyps {
		if !hasNonEmpty(refs[i]) {
			return BLEUScore{}, fmt.Errorf("eval: hypothesis %d has no non-empty reference", i)
		}
		b.add(h, refs[i])
	}
	return b.score(), nil
}

// SentenceBLEU is sacrebleu's BLEU.sentence_score: CorpusBLEU on one
// segment. Set opts.EffectiveOrder, as sacrebleu recommends.
func SentenceBLEU(hyp string, refs []string, opts BLEUOptions) (BLEUScore, error) {
	return CorpusBLEU([]string{hyp}, [][]string{refs}, opts)
}

func hasNonEmpty(refs []string) bool {
	for _, r := range refs {
		if r != "" {
			return true
		}
	}
	return false
}
