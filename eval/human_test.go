package eval

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
)

func TestWriteReviewSample(t *testing.T) {
	var preds []Prediction
	for i := 0; i < 50; i++ {
		p := Prediction{Prompt: "prompt, \"quoted\"", Prediction: "pred\nline2", References: []string{"r1", "r2"}}
		if i%2 == 0 {
			p.ID = "id-" + string(rune('a'+i%26))
		}
		if i == 3 {
			p.References = nil
			p.Label, p.HasLabel = "positive", true
		}
		preds = append(preds, p)
	}
	var a, b, c bytes.Buffer
	if err := WriteReviewSample(&a, preds, 10, 42); err != nil {
		t.Fatal(err)
	}
	if err := WriteReviewSample(&b, preds, 10, 42); err != nil {
		t.Fatal(err)
	}
	if err := WriteReviewSample(&c, preds, 10, 43); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Error("same seed, different sample")
	}
	if a.String() == c.String() {
		t.Error("different seeds, same sample")
	}
	rows, err := csv.NewReader(strings.NewReader(a.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "id,prompt,prediction,reference,score" {
		t.Errorf("header %q", rows[0])
	}
	if len(rows) != 11 {
		t.Fatalf("%d rows, want header + 10", len(rows))
	}
	for _, r := range rows[1:] {
		if len(r) != 5 || r[4] != "" || r[2] != "pred\nline2" || r[1] != "prompt, \"quoted\"" {
			t.Errorf("row %q", r)
		}
	}
	// n <= 0 or n >= len: everything, in order; ids fall back to position.
	var all bytes.Buffer
	if err := WriteReviewSample(&all, preds, 0, 1); err != nil {
		t.Fatal(err)
	}
	rows, _ = csv.NewReader(strings.NewReader(all.String())).ReadAll()
	if len(rows) != 51 || rows[2][0] != "2" || rows[4][3] != "positive" || rows[1][3] != "r1 || r2" {
		t.Errorf("full export: %d rows, %q %q %q", len(rows), rows[2][0], rows[4][3], rows[1][3])
	}
	// The sample is pinned: changing the algorithm changes reviewers' files.
	got := sampleIndices(20, 5, 7)
	want := sampleIndices(20, 5, 7)
	if len(got) != 5 || !equalInts(got, want) {
		t.Errorf("sampleIndices not deterministic: %v %v", got, want)
	}
}

func TestReadReviewScores(t *testing.T) {
	in := "\ufeffid,prompt,prediction,reference,score\n" +
		"1,p,\"multi\nline\",r,4\n" +
		"2,p,x,r,\n" + // unrated
		"3,p,x,r,  5 \n" +
		"4,p,x,r,2.5\n" +
		",,,,\n" +
		"5,p,x\n" // short row: unrated
	scores, err := ReadReviewScores(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 3 || scores[0].ID != "1" || scores[0].Score != 4 || scores[1].Score != 5 || scores[2].Line != 6 {
		t.Fatalf("scores %+v", scores)
	}
	if m, ok := MeanHumanScore(scores); !ok || m != 11.5/3 {
		t.Errorf("mean %v %v", m, ok)
	}
	if _, ok := MeanHumanScore(nil); ok {
		t.Error("mean of nothing: want ok=false")
	}
	// Reordered columns are found by name.
	scores, err = ReadReviewScores(strings.NewReader("Score,ID\n3,a\n"))
	if err != nil || len(scores) != 1 || scores[0].ID != "a" || scores[0].Score != 3 {
		t.Errorf("reordered: %+v %v", scores, err)
	}
	bad := []struct{ in, want string }{
		{"id,score\n1,3\n2,6\n", "line 3: score 6 is out of range 1-5"},
		{"id,score\n1,0\n", "line 2: score 0 is out of range 1-5"},
		{"id,score\n\"x\ny\",3\n2,abc\n", "line 4: score \"abc\" is not a number"},
		{"id,score\n1,NaN\n", "line 2"},
		{"id,prediction\n1,x\n", `no "score" column`},
		{"", "empty"},
		{"id,score\n1,\"3\n", "review CSV"},
	}
	for _, c := range bad {
		if _, err := ReadReviewScores(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
}

func TestReviewRoundTrip(t *testing.T) {
	preds := []Prediction{{ID: "a", Prediction: "x", References: []string{"y"}}, {ID: "b", Prediction: "z", References: []string{"w"}}}
	var buf bytes.Buffer
	if err := WriteReviewSample(&buf, preds, 0, 0); err != nil {
		t.Fatal(err)
	}
	// Unfilled export: no scores, not an error.
	scores, err := ReadReviewScores(&buf)
	if err != nil || len(scores) != 0 {
		t.Errorf("unfilled: %v %v", scores, err)
	}
}
