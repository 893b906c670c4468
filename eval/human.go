package eval

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ToxicityScorer flags toxic text. The data-prep lexicon scorer satisfies
// it; eval only needs this one method.
type ToxicityScorer interface {
	IsToxic(text string) bool
}

// reviewHeader is the header of the human review CSV.
var reviewHeader = []string{"id", "prompt", "prediction", "reference", "score"}

// WriteReviewSample writes a CSV for human review with the header
// id,prompt,prediction,reference,score and an empty score column. It
// samples n predictions without replacement (all of them if n <= 0 or
// n >= len(preds)); the sample depends only on seed and the order of preds,
// and rows keep their input order. The id column is the record's "id", or
// its 1-based position in preds when it has none; the reference column
// holds the references joined by " || ", or the label for label records.
func WriteReviewSample(w io.Writer, preds []Prediction, n int, seed int64) error {
	idx := sampleIndices(len(preds), n, seed)
	cw := csv.NewWriter(w)
	if err := cw.Write(reviewHeader); err != nil {
		return err
	}
	row := make([]string, len(reviewHeader))
	for _, i := range idx {
		p := &preds[i]
		id := p.ID
		if id == "" {
			id = strconv.Itoa(i + 1)
		}
		ref := strings.Join(p.References, " || ")
		if len(p.References) == 0 && p.HasLabel {
			ref = p.Label
		}
		row[0], row[1], row[2], row[3], row[4] = cell(id), cell(p.Prompt), cell(p.Prediction), cell(ref), ""
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// cell keeps model output from being read as a spreadsheet formula when a
// rater opens the CSV: a leading =, +, -, @, tab or CR gets a ' in front (the
// OWASP advice for CSV injection).
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// sampleIndices picks n of 0..total-1 deterministically: each index gets a
// pseudo-random key from splitmix64(seed, index) and the n smallest keys
// win. The result is sorted. This does not depend on math/rand's stream,
// so a seed reproduces the same sample across Go releases.
func sampleIndices(total, n int, seed int64) []int {
	idx := make([]int, total)
	for i := range idx {
		idx[i] = i
	}
	if n <= 0 || n >= total {
		return idx
	}
	keys := make([]uint64, total)
	for i := range keys {
		keys[i] = splitmix64(uint64(seed) ^ splitmix64(uint64(i)+0x9e3779b97f4a7c15))
	}
	sort.Slice(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		if ka != kb {
			return ka < kb
		}
		return idx[a] < idx[b]
	})
	idx = idx[:n]
	sort.Ints(idx)
	return idx
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// HumanScore is one rated row of a review CSV.
type HumanScore struct {
	ID    string
	Score float64 // 1..5
	Line  int     // line of the score field in the CSV
}

// ReadReviewScores reads a review CSV (as written by WriteReviewSample and
// filled in by reviewers). Columns are found by header name; "score" is
// required, "id" optional. Rows with a blank score are unrated and
// skipped. A score must be a number from 1 to 5 (decimals allowed);
// anything else is an error naming the line.
func ReadReviewScores(r io.Reader) ([]HumanScore, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("review CSV is empty (no header)")
	}
	if err != nil {
		return nil, fmt.Errorf("review CSV: %w", err)
	}
	scoreCol, idCol := -1, -1
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch h {
		case "score":
			if scoreCol < 0 {
				scoreCol = i
			}
		case "id":
			if idCol < 0 {
				idCol = i
			}
		}
	}
	if scoreCol < 0 {
		return nil, errors.New(`review CSV line 1: header has no "score" column`)
	}
	var out []HumanScore
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("review CSV: %w", err)
		}
		if scoreCol >= len(rec) {
			continue // short row: no score given
		}
		line, _ := cr.FieldPos(scoreCol)
		field := strings.TrimSpace(rec[scoreCol])
		if field == "" {
			continue
		}
		v, err := strconv.ParseFloat(field, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("review CSV line %d: score %q is not a number", line, field)
		}
		if v < 1 || v > 5 {
			return nil, fmt.Errorf("review CSV line %d: score %s is out of range 1-5", line, field)
		}
		hs := HumanScore{Score: v, Line: line}
		if idCol >= 0 && idCol < len(rec) {
			hs.ID = rec[idCol]
		}
		out = append(out, hs)
	}
}

// MeanHumanScore is the human_eval metric: the mean score; ok is false
// when there are no scores.
func MeanHumanScore(scores []HumanScore) (mean float64, ok bool) {
	if len(scores) == 0 {
		return 0, false
	}
	sum := 0.0
	for _, s := range scores {
		sum += s.Score
	}
	return sum / float64(len(scores)), true
}
