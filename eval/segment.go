package eval

// segmenter tokenizes a segment once for both BLEU and ROUGE.
//
// With the 13a tokenizer, the ROUGE tokens of a text are the ROUGE tokens
// of its 13a tokens, in order: 13a only inserts spaces next to non-alphanumeric
// characters (it never splits two letters or digits apart) and keeps every
// other character, while rouge_score's tokens are the maximal [a-z0-9] runs
// of the lower-cased text. So the ROUGE token ids of each distinct 13a token
// are computed once and cached. The exception is text that 13a preprocessing
// changes (<skipped>, -\n, HTML entities); it is tokenized for ROUGE
// directly. TestSegmenterMatchesDirect checks the equivalence.
type segmenter struct {
	bleu  *bleuCorpus
	rouge *rougeScorer
	share bool

	// decomposition of BLEU token id -> ROUGE token ids: arena[start:end];
	// start == -1 if not computed yet.
	start, end []int32
	arena      []int32
}

func newSegmenter(b *bleuCorpus, r *rougeScorer) *segmenter {
	return &segmenter{bleu: b, rouge: r, share: b.t13a != nil && b.vocab == r.vocab}
}

// tokens appends the BLEU and the ROUGE token ids of text.
func (s *segmenter) tokens(text string, bdst, rdst []int32) ([]int32, []int32) {
	n0 := len(bdst)
	bdst, changed := s.bleu.tokenIDs(bdst, text)
	if !s.share || changed {
		return bdst, s.rouge.ids(rdst, text)
	}
	for _, id := range bdst[n0:] {
		for int(id) >= len(s.start) {
			s.start = append(s.start, -1)
			s.end = append(s.end, -1)
		}
		if s.start[id] < 0 {
			st := len(s.arena)
			s.arena = s.rouge.ids(s.arena, string(s.bleu.vocab.key(id)))
			s.start[id], s.end[id] = int32(st), int32(len(s.arena))
		}
		rdst = append(rdst, s.arena[s.start[id]:s.end[id]]...)
	}
	return bdst, rdst
}
