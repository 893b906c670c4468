package dataprep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMalformed(t *testing.T) {
	good := map[Format]string{
		FormatChat:        chatLine("What is the capital of France?", "The capital of France is Paris."),
		FormatInstruction: `{"instruction":"Translate to French","input":"good morning","output":"bonjour"}`,
		FormatText:        textLine("A short but perfectly valid text record."),
	}
	tests := []struct {
		name   string
		format Format
		line   string
		kind   string
		detail string // substring
	}{
		{"invalid json", FormatChat, `{"messages": [`, KindInvalidJSON, "unexpected end"},
		{"trailing garbage", FormatText, `{"text":"hello world"} x`, KindInvalidJSON, "after top-level value"},
		{"bad escape", FormatText, `{"text":"a\qb"}`, KindInvalidJSON, "escape"},
		{"single quotes", FormatText, `{'text':'hello'}`, KindInvalidJSON, "invalid character"},
		{"trailing comma", FormatText, `{"text":"hello",}`, KindInvalidJSON, "invalid character"},
		{"invalid utf8", FormatText, "{\"text\":\"caf\xe9 au lait\"}", KindInvalidUTF8, "offset 12"},
		{"lone high surrogate", FormatText, `{"text":"hello \ud800 world"}`, KindInvalidUTF8, `lone UTF-16 surrogate \ud800 at offset 15`},
		{"lone low surrogate", FormatText, `{"text":"hello \udc00\ud800 world"}`, KindInvalidUTF8, `lone UTF-16 surrogate \udc00`},
		{"surrogate then non-low", FormatChat, `{"messages":[{"role":"user","content":"a\uD83D\u0041"},{"role":"assistant","content":"yo"}]}`, KindInvalidUTF8, `lone UTF-16 surrogate \uD83D`},
		{"not an object", FormatText, `["text"]`, KindWrongType, "record is an array"},
		{"chat missing messages", FormatChat, `{"conversation":[]}`, KindMissingField, `"messages"`},
		{"chat messages not array", FormatChat, `{"messages":"hi"}`, KindWrongType, `"messages" is a string`},
		{"chat empty messages", FormatChat, `{"messages":[]}`, KindEmptyField, "empty"},
		{"chat message not object", FormatChat, `{"messages":["hi"]}`, KindWrongType, "messages[0] is a string"},
		{"chat missing role", FormatChat, `{"messages":[{"content":"hi"},{"role":"assistant","content":"yo"}]}`, KindMissingField, `messages[0] has no "role"`},
		{"chat unknown role", FormatChat, `{"messages":[{"role":"bot","content":"hi"},{"role":"assistant","content":"yo"}]}`, KindUnknownRole, `"bot"`},
		{"chat role not string", FormatChat, `{"messages":[{"role":1,"content":"hi"},{"role":"assistant","content":"yo"}]}`, KindWrongType, "messages[0].role is a number"},
		{"chat missing content", FormatChat, `{"messages":[{"role":"user"},{"role":"assistant","content":"yo"}]}`, KindMissingField, `messages[0] has no "content"`},
		{"chat empty content", FormatChat, `{"messages":[{"role":"user","content":"  "},{"role":"assistant","content":"yo"}]}`, KindEmptyField, "messages[0].content is empty"},
		{"chat content not string", FormatChat, `{"messages":[{"role":"user","content":["a"]},{"role":"assistant","content":"yo"}]}`, KindWrongType, "messages[0].content is an array"},
		{"chat no assistant", FormatChat, `{"messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hi"}]}`, KindNoAssistantTurn, "no assistant turn"},
		{"chat duplicate field", FormatChat, `{"messages":[{"role":"user","content":"a","content":"b"},{"role":"assistant","content":"yo"}]}`, KindDuplicateField, "content"},
		{"instruction missing output", FormatInstruction, `{"instruction":"do it"}`, KindMissingField, `"output"`},
		{"instruction missing instruction", FormatInstruction, `{"output":"done"}`, KindMissingField, `"instruction"`},
		{"instruction empty", FormatInstruction, `{"instruction":"","output":"done"}`, KindEmptyField, `"instruction" is empty`},
		{"instruction input wrong type", FormatInstruction, `{"instruction":"x","input":5,"output":"y"}`, KindWrongType, `"input" is a number`},
		{"text missing", FormatText, `{"txt":"hello"}`, KindMissingField, `"text"`},
		{"text empty", FormatText, `{"text":"\n\t "}`, KindEmptyField, "empty"},
		{"text wrong type", FormatText, `{"text":{"a":1}}`, KindWrongType, "an object"},
		{"text null", FormatText, `{"text":null}`, KindWrongType, "null"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := writeFile(t, dir, "in.jsonl", joinLines(good[tc.format], "", tc.line, good[tc.format]))
			out := filepath.Join(dir, "out")
			rep := mustRun(t, testOptions(tc.format, out, in))
			if rep.Total != 3 || rep.Removed.Malformed != 1 || rep.Removed.ExactDuplicate != 1 || rep.Kept != 1 {
				t.Fatalf("counts: total %d malformed %d dup %d kept %d", rep.Total, rep.Removed.Malformed, rep.Removed.ExactDuplicate, rep.Kept)
			}
			f, ok := findingAt(rep, in, 3)
			if !ok || f.Check != ReasonMalformed || f.Kind != tc.kind || !strings.Contains(f.Detail, tc.detail) {
				t.Fatalf("finding at %s:3 = %+v (found %v), want kind %s detail ~ %q; all: %v", in, f, ok, tc.kind, tc.detail, rep.Findings)
			}
			if rep.MalformedKinds[tc.kind] != 1 {
				t.Errorf("malformed kinds %v", rep.MalformedKinds)
			}
			q := readQuarantine(t, out)
			if len(q) != 2 || q[0].File != in || q[0].Line != 3 || q[0].Reason != ReasonMalformed || q[0].Kind != tc.kind {
				t.Fatalf("quarantine %+v", q)
			}
			// The original line is kept, in the best form JSON allows.
			switch tc.kind {
			case KindInvalidJSON:
				if q[0].Raw == nil || *q[0].Raw != tc.line {
					t.Errorf("raw = %v, want %q", q[0].Raw, tc.line)
				}
			case KindInvalidUTF8:
				if q[0].RawBase64 == nil {
					t.Errorf("no raw_base64")
				}
			default:
				if string(q[0].Record) != tc.line {
					t.Errorf("record = %s, want %s", q[0].Record, tc.line)
				}
			}
			if q[1].Line != 4 || q[1].Reason != ReasonExactDuplicate || q[1].Detail != "duplicate of "+in+":1" {
				t.Errorf("dup entry %+v", q[1])
			}
		})
	}
}

func TestValidVariants(t *testing.T) {
	tests := []struct {
		format Format
		line   string
	}{
		{FormatChat, `{"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hi there, how are you?"},{"role":"assistant","content":"Fine, thanks!"}],"meta":{"source":"x","n":[1,2.5e3,null,true]}}`},
		{FormatChat, `{"messages":[{"role":"user","content":"What is the weather like?"},{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]},{"role":"tool","content":"{\"temp\":20}"},{"role":"assistant","content":"It is 20 degrees."}]}`},
		{FormatChat, "  {\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\ud83d\\ude00 ok\"},{\"role\":\"assistant\",\"content\":\"d\\u00e9j\\u00e0 vu\"}]}  "},
		{FormatInstruction, `{"instruction":"Summarise the text below","input":null,"output":"A summary."}`},
		{FormatInstruction, `{"instruction":"Summarise the text below","input":"","output":"A summary."}`},
		{FormatText, `{"text":"Plain text with \"quotes\" and \\ backslashes."}`},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dir := t.TempDir()
			in := writeFile(t, dir, "in.jsonl", "\xef\xbb\xbf"+tc.line+"\r\n\r\n")
			out := filepath.Join(dir, "out")
			rep := mustRun(t, testOptions(tc.format, out, in))
			if rep.Kept != 1 || rep.Total != 1 {
				t.Fatalf("kept %d total %d findings %v", rep.Kept, rep.Total, rep.Findings)
			}
			if rep.Inputs[0].Lines != 2 || rep.Inputs[0].BlankLines != 1 {
				t.Errorf("inputs %+v", rep.Inputs)
			}
			got := append(readLines(t, filepath.Join(out, TrainFile)), readLines(t, filepath.Join(out, ValidationFile))...)
			if len(got) != 1 || got[0] != tc.line {
				t.Errorf("output %q, want the original line %q", got, tc.line)
			}
		})
	}
}

func TestExactDuplicates(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.jsonl", joinLines(
		chatLine("How do I boil an egg?", "Put it in boiling water for nine minutes."),
		chatLine("How do I  boil an EGG?", "Put it in boiling water\tfor nine minutes. "),
		chatLine("How do I boil an egg?", "Put it in boiling water for ten minutes."),
	))
	b := writeFile(t, dir, "b.jsonl", joinLines(
		chatLine("how do i boil an egg?", "put it in boiling water for nine minutes."),
		// Same words under swapped roles are not a duplicate.
		`{"messages":[{"role":"assistant","content":"How do I boil an egg?"},{"role":"user","content":"Put it in boiling water for nine minutes."},{"role":"assistant","content":"ok"}]}`,
	))
	out := filepath.Join(dir, "out")
	rep := mustRun(t, testOptions(FormatChat, out, a, b))
	if rep.Total != 5 || rep.Removed.ExactDuplicate != 2 || rep.Kept != 3 {
		t.Fatalf("total %d dups %d kept %d", rep.Total, rep.Removed.ExactDuplicate, rep.Kept)
	}
	q := readQuarantine(t, out)
	want := []string{a + ":2 duplicate of " + a + ":1", b + ":1 duplicate of " + a + ":1"}
	var got []string
	for _, e := range q {
		got = append(got, fmt.Sprintf("%s:%d %s", e.File, e.Line, e.Detail))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// longText returns a deterministic text of n words.
func longText(seed int64, n int) string {
	words := strings.Fields(`the of and to in is was for on that with as by at from his her
		an were are which this be or has had not but first one their its new after who they have
		two been also more time other into all she than only over year some would can most river
		city music world system under between school while people state several including during
		such century known mountain valley army season game team album film station village church`)
	r := rand.New(rand.NewSource(seed))
	out := make([]string, n)
	for i := range out {
		out[i] = words[r.Intn(len(words))]
	}
	return strings.Join(out, " ")
}

func TestNearDuplicates(t *testing.T) {
	base := longText(1, 300)
	words := strings.Fields(base)
	oneChanged := slices.Clone(words)
	oneChanged[150] = "zebra"
	fewChanged := slices.Clone(words)
	for _, i := range []int{100, 200} {
		fewChanged[i] = "giraffe"
	}
	for _, shingle := range []ShingleKind{ShingleWord, ShingleChar} {
		t.Run(string(shingle), func(t *testing.T) {
			dir := t.TempDir()
			in := writeFile(t, dir, "in.jsonl", joinLines(
				textLine(base),
				textLine(longText(2, 300)),
				textLine(strings.Join(oneChanged, " ")),
				textLine(longText(3, 300)),
				textLine(strings.Join(fewChanged, " ")),
				textLine("A completely different short text about cooking pasta at home."),
			))
			out := filepath.Join(dir, "out")
			o := testOptions(FormatText, out, in)
			o.NearDup.Enabled = true
			o.NearDup.Shingle = shingle
			rep := mustRun(t, o)
			if rep.Removed.NearDuplicate != 2 || rep.Kept != 4 {
				t.Fatalf("near dups %d kept %d: %v", rep.Removed.NearDuplicate, rep.Kept, rep.Findings)
			}
			for _, line := range []int{3, 5} {
				f, ok := findingAt(rep, in, line)
				if !ok || f.Check != ReasonNearDuplicate || f.Detail != fmt.Sprintf("near duplicate of %s:1", in) {
					t.Errorf("line %d: %+v", line, f)
				}
			}
			if rep.NearDup == nil || rep.NearDup.Bands*rep.NearDup.Rows > 128 || rep.NearDup.Bands < 2 {
				t.Errorf("near dup stats %+v", rep.NearDup)
			}
		})
	}
}

func TestToxicity(t *testing.T) {
	dir := t.TempDir()
	list := writeFile(t, dir, "words.txt", "# custom list\nzorblax\nglorp* 0.6\nmild word 0.3\nbanana split 1\n")
	in := writeFile(t, dir, "in.jsonl", joinLines(
		textLine("This sentence is clean and pleasant to read."),
		textLine("This sentence says zorblax which is on the user list."),
		textLine("This sentence mentions glorpification via a prefix."),
		textLine("One mild word here is not enough to be toxic."),
		textLine("One mild word, two mild word, three mild word: too much."),
		textLine("Ordering a banana split for dessert is on the list as a phrase."),
		textLine("What the fuck is this shit, you idiot."),
		textLine("Scunthorpe and zorblaxian words are not whole matches."),
	))
	out := filepath.Join(dir, "out")
	o := testOptions(FormatText, out, in)
	o.Toxicity.Enabled = true
	o.Toxicity.WordLists = []string{list}
	rep := mustRun(t, o)
	toxicLines := []int{2, 3, 5, 6, 7}
	if rep.Removed.Toxic != len(toxicLines) {
		t.Fatalf("toxic %d: %v", rep.Removed.Toxic, rep.Findings)
	}
	for _, l := range toxicLines {
		if f, ok := findingAt(rep, in, l); !ok || f.Check != ReasonToxic {
			t.Errorf("line %d not toxic: %+v", l, f)
		}
	}
	f, _ := findingAt(rep, in, 3)
	if !strings.Contains(f.Detail, "glorp*") {
		t.Errorf("detail %q", f.Detail)
	}
	// Without the builtin list the profanity line passes.
	o.Toxicity.Builtin = false
	o.OutDir = filepath.Join(dir, "out2")
	if rep := mustRun(t, o); rep.Removed.Toxic != 4 {
		t.Errorf("without builtin: toxic %d", rep.Removed.Toxic)
	}
}

func TestToxicityScorerAPI(t *testing.T) {
	s, err := NewToxicityScorer(ToxicityOptions{Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Threshold() != 0.5 {
		t.Errorf("threshold %v", s.Threshold())
	}
	for _, tc := range []struct {
		text  string
		toxic bool
	}{
		{"Have a nice day!", false},
		{"You are a complete ASSHOLE.", true},
		{"kill yourself", true},
		{"I'm going to kill you", true},
		{"A skill yourself can learn.", false},
		{"damn", false},
		{"Damn, damn, DAMN, crap, crap!", true},
	} {
		if got := s.IsToxic(tc.text); got != tc.toxic {
			t.Errorf("IsToxic(%q) = %v (score %.3f)", tc.text, got, s.Score(tc.text))
		}
	}
	scores, err := s.ScoreBatch(context.Background(), []string{"hello", "fuck"})
	if err != nil || len(scores) != 2 || scores[0] != 0 || scores[1] < 0.5 {
		t.Errorf("ScoreBatch = %v, %v", scores, err)
	}
	if _, err := NewToxicityScorer(ToxicityOptions{WordLists: []string{filepath.Join(t.TempDir(), "missing.txt")}}); err == nil {
		t.Error("missing word list: no error")
	}
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestToxicityClassifier(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	// Scores 0.9 for texts containing "evil", else 0.1; ids echoed back.
	good := writeScript(t, dir, "cls.sh", `
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed 's/^{"id":\([0-9]*\),.*/\1/')
  case "$line" in *evil*) s=0.9 ;; *) s=0.1 ;; esac
  echo "{\"id\":$id,\"score\":$s}"
done
`)
	in := writeFile(t, dir, "in.jsonl", joinLines(
		textLine("A perfectly nice sentence about gardens."),
		textLine("An evil plan that the word list does not know."),
		`{"text":`,
		textLine("Another nice sentence about the sea."),
	))
	o := testOptions(FormatText, filepath.Join(dir, "out"), in)
	o.Toxicity.Enabled = true
	o.Toxicity.Classifier = []string{good}
	o.Toxicity.ClassifierBatch = 2
	rep := mustRun(t, o)
	if rep.Removed.Toxic != 1 || rep.Removed.Malformed != 1 || rep.Kept != 2 {
		t.Fatalf("toxic %d malformed %d kept %d: %v", rep.Removed.Toxic, rep.Removed.Malformed, rep.Kept, rep.Findings)
	}
	if f, _ := findingAt(rep, in, 2); !strings.Contains(f.Detail, "classifier score 0.90") {
		t.Errorf("finding %+v", f)
	}
	for name, body := range map[string]string{
		"exit":    "cat >/dev/null; echo boom >&2; exit 3\n",
		"missing": "cat >/dev/null; echo '{\"id\":0,\"score\":0.1}'\n",
		"garbage": "cat >/dev/null; echo 'not json'\n",
		"range":   "cat >/dev/null; echo '{\"id\":0,\"score\":7}'; echo '{\"id\":1,\"score\":0}'\n",
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+name)
			o.OutDir = out
			o.Toxicity.Classifier = []string{writeScript(t, dir, name+".sh", body)}
			rep, err := Run(context.Background(), o)
			if err == nil || rep != nil || !strings.Contains(err.Error(), "toxicity classifier") {
				t.Fatalf("Run = %v, %v; want a classifier error", rep, err)
			}
			if name == "exit" && !strings.Contains(err.Error(), "boom") {
				t.Errorf("error %v does not carry stderr", err)
			}
			if ents := dirEntries(t, out); len(ents) != 0 {
				t.Errorf("outputs left after failure: %v", ents)
			}
		})
	}
}

func TestLength(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", joinLines(
		textLine("tiny"),
		textLine("ok length text here"),
		textLine("one two three four five six seven eight nine ten eleven"),
		textLine(strings.Repeat("x", 40)),
		textLine("héllo wörld ça va"),
	))
	out := filepath.Join(dir, "out")
	o := testOptions(FormatText, out, in)
	o.Length = LengthOptions{MinChars: 5, MaxChars: 60, MinWords: 2, MaxWords: 10}
	rep := mustRun(t, o)
	want := map[int]string{1: ReasonTooShort, 3: ReasonTooLong, 4: ReasonTooShort}
	if rep.Removed.TooShort != 2 || rep.Removed.TooLong != 1 || rep.Kept != 2 {
		t.Fatalf("removed %+v: %v", rep.Removed, rep.Findings)
	}
	for line, check := range want {
		if f, ok := findingAt(rep, in, line); !ok || f.Check != check {
			t.Errorf("line %d: %+v", line, f)
		}
	}
	f, _ := findingAt(rep, in, 4)
	if f.Detail != "1 words < minimum 2" {
		t.Errorf("detail %q", f.Detail)
	}
	o.Length = LengthOptions{MaxChars: 17} // "héllo wörld ça va" is 17 characters, 20 bytes
	o.OutDir = filepath.Join(dir, "out2")
	if rep := mustRun(t, o); rep.Removed.TooLong != 3 {
		t.Errorf("too long %d: %v", rep.Removed.TooLong, rep.Findings)
	}
}

func TestPIIModes(t *testing.T) {
	lines := []string{
		chatLine("Mail me at john.doe@example.com please", "Sure, or call +1 (555) 123-4567 tomorrow."),
		chatLine("My server is 192.168.10.42 and fe80::1ff:fe23:4567:890a", "Noted."),
		chatLine("No personal data in this one", "Indeed, nothing to see."),
	}
	for _, mode := range []PIIMode{PIIOff, PIIFlag, PIIRedact, PIIDrop} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			in := writeFile(t, dir, "in.jsonl", joinLines(lines...))
			out := filepath.Join(dir, "out")
			o := testOptions(FormatChat, out, in)
			o.PII.Mode = mode
			o.Split = SplitOptions{Train: 1, Validation: 0}
			rep := mustRun(t, o)
			kept := readLines(t, filepath.Join(out, TrainFile))
			switch mode {
			case PIIOff:
				if rep.PII.Records != 0 || len(rep.Findings) != 0 || !reflect.DeepEqual(kept, lines) {
					t.Errorf("off: %+v %v", rep.PII, kept)
				}
			case PIIFlag:
				if rep.PII != (PIIStats{Mode: PIIFlag, Records: 2, Email: 1, Phone: 1, IP: 2}) || !reflect.DeepEqual(kept, lines) {
					t.Errorf("flag: %+v", rep.PII)
				}
				f, ok := findingAt(rep, in, 1)
				if !ok || f.Check != ReasonPII || f.Action != "flagged" || f.Kind != "email,phone" {
					t.Errorf("finding %+v", f)
				}
			case PIIRedact:
				want := []string{
					chatLine("Mail me at [EMAIL] please", "Sure, or call [PHONE] tomorrow."),
					chatLine("My server is [IP] and [IP]", "Noted."),
					lines[2],
				}
				if !reflect.DeepEqual(kept, want) {
					t.Errorf("redacted:\n%s\nwant\n%s", strings.Join(kept, "\n"), strings.Join(want, "\n"))
				}
				if f, _ := findingAt(rep, in, 2); f.Action != "redacted" {
					t.Errorf("finding %+v", f)
				}
			case PIIDrop:
				if rep.Removed.PII != 2 || rep.Kept != 1 || !reflect.DeepEqual(kept, lines[2:]) {
					t.Errorf("drop: removed %d kept %v", rep.Removed.PII, kept)
				}
				q := readQuarantine(t, out)
				if len(q) != 2 || q[0].Reason != ReasonPII || q[0].Line != 1 || string(q[0].Record) != lines[0] || q[1].Kind != "ip" {
					t.Errorf("quarantine %+v", q)
				}
			}
		})
	}
}

func TestRedactKeepsOtherFieldsAndEscapes(t *testing.T) {
	dir := t.TempDir()
	line := `{"id":7,"text":"line1\nmail: \"a@b.io\"\u0021 tab\there","meta":{"email":"x@y.com"}}`
	in := writeFile(t, dir, "in.jsonl", line+"\n")
	out := filepath.Join(dir, "out")
	o := testOptions(FormatText, out, in)
	o.PII.Mode = PIIRedact
	o.Split = SplitOptions{Train: 1}
	mustRun(t, o)
	got := readLines(t, filepath.Join(out, TrainFile))
	want := `{"id":7,"text":"line1\nmail: \"[EMAIL]\"! tab\there","meta":{"email":"x@y.com"}}`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestRemovalOrder(t *testing.T) {
	dir := t.TempDir()
	toxicShort := textLine("fuck")
	in := writeFile(t, dir, "in.jsonl", joinLines(
		toxicShort,          // toxic (before too_short)
		toxicShort,          // exact duplicate (before toxic)
		textLine("hi"),      // too_short
		textLine("a@b.com"), // too_short (before pii)
		textLine("mail c@d.com, it is a fine and long enough text"), // pii
	))
	out := filepath.Join(dir, "out")
	o := testOptions(FormatText, out, in)
	o.Toxicity.Enabled = true
	o.Length = LengthOptions{MinChars: 10}
	o.PII.Mode = PIIDrop
	rep := mustRun(t, o)
	want := RemovedCounts{ExactDuplicate: 1, Toxic: 1, TooShort: 2, PII: 1}
	if rep.Removed != want || rep.Kept != 0 || rep.Total != 5 {
		t.Fatalf("removed %+v kept %d", rep.Removed, rep.Kept)
	}
	var reasons []string
	for _, q := range readQuarantine(t, out) {
		reasons = append(reasons, q.Reason)
	}
	if !reflect.DeepEqual(reasons, []string{"toxic", "exact_duplicate", "too_short", "too_short", "pii"}) {
		t.Errorf("reasons %v", reasons)
	}
}

// genChat writes n distinct chat records (plus some duplicates) and returns
// the lines.
func genChat(n int) []string {
	var lines []string
	for i := range n {
		lines = append(lines, chatLine(fmt.Sprintf("Question %d: %s?", i, longText(int64(i), 12)), longText(int64(i+100000), 40)))
		if i%10 == 0 {
			lines = append(lines, lines[len(lines)-1])
		}
	}
	return lines
}

func TestSplitDeterministic(t *testing.T) {
	lines := genChat(2000)
	lines = append(lines, `{"messages":[`, chatLine("what the fuck", "no idea, a shitty question"), chatLine("mail", "x@example.com is my address"))
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", joinLines(lines...))
	shuffled := slices.Clone(lines)
	rand.New(rand.NewSource(5)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	half := len(shuffled) / 2
	in2a := writeFile(t, dir, "s1.jsonl", joinLines(shuffled[:half]...))
	in2b := writeFile(t, dir, "s2.jsonl", joinLines(shuffled[half:]...))

	run := func(name string, workers int, inputs ...string) (string, *Report) {
		out := filepath.Join(dir, name)
		o := testOptions(FormatChat, out, inputs...)
		o.Workers = workers
		o.NearDup.Enabled = true
		o.Toxicity.Enabled = true
		o.PII.Mode = PIIRedact
		return out, mustRun(t, o)
	}
	out1, rep1 := run("w1", 1, in)
	out4, rep4 := run("w4", 4, in)
	outS, repS := run("shuffled", 3, in2b, in2a)

	for _, f := range []string{TrainFile, ValidationFile, QuarantineFile, ReportFile} {
		a, _ := os.ReadFile(filepath.Join(out1, f))
		b, _ := os.ReadFile(filepath.Join(out4, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between Workers=1 and Workers=4", f)
		}
	}
	if rep1.Kept != 2001 || rep1.Removed.ExactDuplicate != 200 || rep1.Removed.Malformed != 1 || rep1.Removed.Toxic != 1 || rep1.PII.Records != 1 {
		t.Fatalf("kept %d dups %d removed %+v", rep1.Kept, rep1.Removed, rep1.Removed)
	}
	ratio := float64(rep1.Train) / float64(rep1.Kept)
	if ratio < 0.76 || ratio > 0.84 {
		t.Errorf("train ratio %.3f, want ~0.8", ratio)
	}
	// Reordered inputs: same assignment of every record, same data hash.
	set := func(out, file string) []string {
		l := readLines(t, filepath.Join(out, file))
		slices.Sort(l)
		return l
	}
	for _, f := range []string{TrainFile, ValidationFile} {
		if !reflect.DeepEqual(set(out1, f), set(outS, f)) {
			t.Errorf("%s: different records after reordering the input", f)
		}
	}
	if rep1.DataHash != rep4.DataHash || len(rep1.DataHash) != 64 || repS.Kept != rep1.Kept || repS.Train != rep1.Train {
		t.Errorf("data hash %s / %s; kept %d / %d", rep1.DataHash, rep4.DataHash, rep1.Kept, repS.Kept)
	}
	// Another seed gives another split.
	o := testOptions(FormatChat, filepath.Join(dir, "seed"), in)
	o.Split.Seed = 99
	rep := mustRun(t, o)
	if rep.DataHash == rep1.DataHash {
		t.Error("the split seed does not change the split")
	}
}

func TestDataHash(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.jsonl", joinLines(textLine("first text record"), textLine("second text record"), textLine("third text record")))
	b := writeFile(t, dir, "b.jsonl", joinLines(textLine("first text record"), textLine("second text record!"), textLine("third text record")))
	out := filepath.Join(dir, "out")
	h := func(in string, seed uint64) string {
		o := testOptions(FormatText, out, in)
		o.Split.Seed = seed
		rep := mustRun(t, o)
		// data_hash is the SHA-256 of `sha256sum train.jsonl validation.jsonl`.
		var manifest strings.Builder
		for _, f := range []string{TrainFile, ValidationFile} {
			data, err := os.ReadFile(filepath.Join(out, f))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&manifest, "%x  %s\n", sha256.Sum256(data), f)
		}
		if want := fmt.Sprintf("%x", sha256.Sum256([]byte(manifest.String()))); rep.DataHash != want {
			t.Fatalf("data hash %s, want %s", rep.DataHash, want)
		}
		return rep.DataHash
	}
	if h(a, 0) == h(b, 0) {
		t.Error("different data, same hash")
	}
	if first, again := h(a, 0), h(a, 0); first != again {
		t.Error("same data, different hash")
	}
	seen := map[string]bool{}
	for seed := range uint64(8) {
		seen[h(a, seed)] = true
	}
	if len(seen) < 2 {
		t.Error("the split does not change the hash")
	}
}

func TestChecksFail(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", joinLines(textLine("valid record number one"), "{bad", "{bad2", textLine("valid record number two")))
	out := filepath.Join(dir, "out")
	o := testOptions(FormatText, out, in)
	o.Checks = CheckOptions{MaxRemovedRatio: 0.3, MaxMalformedRatio: 0.6, MinExamples: 5}
	rep, err := Run(context.Background(), o)
	var cf *CheckFailedError
	if !errors.As(err, &cf) {
		t.Fatalf("err = %v, want *CheckFailedError", err)
	}
	var names []string
	for _, c := range cf.Failed {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"max_removed_ratio", "min_examples"}) {
		t.Errorf("failed checks %v", names)
	}
	if !strings.Contains(err.Error(), "max_removed_ratio: 0.5 > 0.3") {
		t.Errorf("error text %q", err)
	}
	if rep == nil || rep.Passed {
		t.Fatalf("report %+v", rep)
	}
	// Every output is complete.
	disk := readReportFile(t, out)
	if disk.Passed || len(disk.Checks) != 3 || disk.Kept != 2 || disk.Total != 4 {
		t.Errorf("report on disk %+v", disk)
	}
	n := len(readLines(t, filepath.Join(out, TrainFile))) + len(readLines(t, filepath.Join(out, ValidationFile)))
	if n != 2 || len(readQuarantine(t, out)) != 2 {
		t.Errorf("outputs incomplete: %d kept lines", n)
	}
	if ents := dirEntries(t, out); len(ents) != 4 {
		t.Errorf("out dir %v", ents)
	}
}

func TestReportShape(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", joinLines(textLine("a valid record of text")))
	out := filepath.Join(dir, "out")
	mustRun(t, testOptions(FormatText, out, in))
	data, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"total", "kept", "train", "validation", "removed", "data_hash"} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing key %q", k)
		}
	}
	var removed map[string]int
	if err := json.Unmarshal(m["removed"], &removed); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range removed {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"exact_duplicate", "malformed", "near_duplicate", "pii", "too_long", "too_short", "toxic"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("removed keys %v", keys)
	}
}

func TestAtomicOutputOnError(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", joinLines(genChat(3000)...))
	out := filepath.Join(dir, "out")
	// A previous successful run's outputs must survive a failed run.
	mustRun(t, testOptions(FormatChat, out, in))
	before := map[string][]byte{}
	for _, f := range dirEntries(t, out) {
		before[f], _ = os.ReadFile(filepath.Join(out, f))
	}
	check := func(t *testing.T) {
		t.Helper()
		ents := dirEntries(t, out)
		if len(ents) != len(before) {
			t.Fatalf("out dir %v", ents)
		}
		for _, f := range ents {
			got, _ := os.ReadFile(filepath.Join(out, f))
			if !bytes.Equal(got, before[f]) {
				t.Errorf("%s changed", f)
			}
		}
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rep, err := Run(ctx, testOptions(FormatChat, out, in))
		if !errors.Is(err, context.Canceled) || rep != nil {
			t.Fatalf("Run = %v, %v", rep, err)
		}
		check(t)
	})
	t.Run("cancelled mid-way", func(t *testing.T) {
		if _, err := os.Stat("/bin/sh"); err != nil {
			t.Skip("no /bin/sh")
		}
		// A slow classifier makes sure the run is still going when the
		// deadline passes.
		slow := writeScript(t, dir, "slow.sh", `sleep 0.2; sed 's/^{"id":\([0-9]*\),.*/{"id":\1,"score":0}/'`+"\n")
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		o := testOptions(FormatChat, out, in)
		o.Toxicity.Enabled = true
		o.Toxicity.Classifier = []string{slow}
		o.Toxicity.ClassifierBatch = 100
		rep, err := Run(ctx, o)
		if !errors.Is(err, context.DeadlineExceeded) || rep != nil {
			t.Fatalf("Run = %v, %v", rep, err)
		}
		check(t)
	})
	t.Run("line too long", func(t *testing.T) {
		long := writeFile(t, dir, "long.jsonl", joinLines(textLine("fine line"), textLine(strings.Repeat("x", 5000))))
		o := testOptions(FormatText, out, long)
		o.MaxLineBytes = 1000
		_, err := Run(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), long+":2: line longer than the maximum of 1000 bytes") {
			t.Fatalf("err = %v", err)
		}
		check(t)
	})
	t.Run("missing input", func(t *testing.T) {
		_, err := Run(context.Background(), testOptions(FormatText, out, filepath.Join(dir, "nope.jsonl")))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
		check(t)
	})
}

func TestInputs(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	b := writeFile(t, data, "b.jsonl", joinLines(textLine("record from file b")))
	a := writeFile(t, data, "a.jsonl", joinLines(textLine("record from file a")))
	writeFile(t, data, "notes.txt", "ignored")
	for _, tc := range []struct {
		inputs []string
		want   []string
	}{
		{[]string{filepath.Join(data, "*.jsonl")}, []string{a, b}},
		{[]string{data}, []string{a, b}},
		{[]string{b, filepath.Join(data, "*.jsonl"), a}, []string{b, a}},
	} {
		rep := mustRun(t, testOptions(FormatText, filepath.Join(dir, "out"), tc.inputs...))
		var got []string
		for _, in := range rep.Inputs {
			got = append(got, in.Path)
		}
		if !reflect.DeepEqual(got, tc.want) || rep.Total != 2 {
			t.Errorf("inputs %v: read %v", tc.inputs, got)
		}
	}
	if _, err := Run(context.Background(), testOptions(FormatText, filepath.Join(dir, "out"), filepath.Join(dir, "*.none"))); err == nil {
		t.Error("empty glob: no error")
	}
	o := testOptions("csv", filepath.Join(dir, "out"), a)
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("bad format: %v", err)
	}
}

func TestFindingsCap(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf(`{"text":%d}`, i))
	}
	in := writeFile(t, dir, "in.jsonl", joinLines(lines...))
	o := testOptions(FormatText, filepath.Join(dir, "out"), in)
	o.MaxFindings = 3
	rep := mustRun(t, o)
	if len(rep.Findings) != 3 || rep.FindingsOmitted != 7 || rep.Removed.Malformed != 10 || len(readQuarantine(t, o.OutDir)) != 10 {
		t.Errorf("findings %d omitted %d", len(rep.Findings), rep.FindingsOmitted)
	}
	if rep.Findings[2].Line != 3 || rep.Findings[2].String() != in+":3: malformed (wrong_type): \"text\" is a number, want a string" {
		t.Errorf("finding %v", rep.Findings[2])
	}
}
