package dataprep

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// checkParse parses one line and cross-checks the result with
// encoding/json: same validity, same decoded text fields, spans that decode
// to the fields. want returns the expected fields of a well-formed record
// decoded by encoding/json.
func checkParse(t *testing.T, format Format, data []byte, want func(m map[string]any) []string) {
	p := recParser{format: format}
	p.parse(data)
	if !utf8.Valid(data) {
		if p.kind != KindInvalidUTF8 {
			t.Fatalf("invalid UTF-8 reported as %q", p.kind)
		}
		return
	}
	if valid := json.Valid(data); valid == (p.kind == KindInvalidJSON) {
		t.Fatalf("json.Valid = %v but kind = %q (%s)", valid, p.kind, p.detail)
	}
	if p.kind != "" {
		if p.detail == "" || len(p.fields) != 0 {
			t.Fatalf("kind %q with detail %q and %d fields", p.kind, p.detail, len(p.fields))
		}
		return
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("well formed but encoding/json says %v", err)
	}
	exp := want(m)
	if len(exp) != len(p.fields) {
		t.Fatalf("%d fields, encoding/json finds %d", len(p.fields), len(exp))
	}
	for i, f := range p.fields {
		if string(f.val) != exp[i] {
			t.Fatalf("field %d = %q, want %q", i, f.val, exp[i])
		}
		var s string
		if err := json.Unmarshal(data[f.start:f.end], &s); err != nil || s != exp[i] {
			t.Fatalf("span %d = %q", i, data[f.start:f.end])
		}
	}
	// Redacting and re-encoding a field keeps the line valid JSON.
	for _, f := range p.fields {
		out := append(append(append([]byte{}, data[:f.start]...), appendJSONString(nil, []byte("[X]"))...), data[f.end:]...)
		if !json.Valid(out) {
			t.Fatalf("line invalid after replacing a field: %q", out)
		}
	}
}

func nonBlank(vals ...any) []string {
	var out []string
	for _, v := range vals {
		if s, ok := v.(string); ok && !isBlank([]byte(s)) {
			out = append(out, s)
		}
	}
	return out
}

func FuzzReadChat(f *testing.F) {
	for _, s := range []string{
		chatLine("hello", "hi there"),
		`{"messages":[{"role":"user","content":"a\u00e9\ud83d\ude00"},{"role":"assistant","content":null,"tool_calls":[]},{"role":"assistant","content":"x"}]}`,
		`{"messages":[{"role":"bot","content":"x"}]}`, `{"messages":[]}`, `{"messages":"x"}`, `{"messages":[1]}`,
		`{"messages":[{"role":"user","content":"a","content":"b"}]}`, `[]`, `{`, "\xff", `{"messages":[{"role":"assistant","content":" "}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, FormatChat, data, func(m map[string]any) []string {
			msgs, _ := m["messages"].([]any)
			var vals []any
			for _, msg := range msgs {
				vals = append(vals, msg.(map[string]any)["content"])
			}
			return nonBlank(vals...)
		})
	})
}

func FuzzReadInstruction(f *testing.F) {
	for _, s := range []string{
		`{"instruction":"do","input":"this","output":"done"}`, `{"instruction":"do","input":null,"output":"done"}`,
		`{"instruction":"do","output":""}`, `{"instruction":1,"output":"x"}`, `{"output":"x"}`, `{"instruction":"a","instruction":"b","output":"c"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, FormatInstruction, data, func(m map[string]any) []string {
			return nonBlank(m["instruction"], m["input"], m["output"])
		})
	})
}

func FuzzReadText(f *testing.F) {
	for _, s := range []string{`{"text":"hello"}`, `{"text":""}`, `{"text":null}`, `{"text":"a\\nb"}`, ` {"text" : "x" } `, `{"text":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, FormatText, data, func(m map[string]any) []string {
			return nonBlank(m["text"])
		})
	})
}

// FuzzRun feeds whole files through Run (reader, workers, sequencer) with
// every check on and checks the report's invariants.
func FuzzRun(f *testing.F) {
	f.Add([]byte(textLine("hello world, this is a test")+"\n"+textLine("mail me: a@b.com")+"\r\n\n{bad\n"), uint8(0))
	f.Add([]byte(chatLine("hi", "hello")+"\n"+chatLine("hi", "hello")), uint8(1))
	f.Add([]byte(`{"instruction":"x","output":"y"}`+"\n\xef\xbb\xbf"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, fsel uint8) {
		dir := t.TempDir()
		in := writeFile(t, dir, "in.jsonl", string(data))
		format := []Format{FormatText, FormatChat, FormatInstruction}[fsel%3]
		o := DefaultOptions()
		o.Format, o.Inputs, o.OutDir = format, []string{in}, filepath.Join(dir, "out")
		o.PII.Mode = PIIRedact
		o.Checks = CheckOptions{MaxRemovedRatio: -1, MaxMalformedRatio: -1}
		o.MaxLineBytes = 1 << 16
		o.Workers = 2
		rep, err := Run(context.Background(), o)
		if err != nil {
			for _, l := range bytes.Split(data, []byte{'\n'}) {
				if len(l) > o.MaxLineBytes {
					return // the expected error
				}
			}
			t.Fatalf("Run: %v", err)
		}
		if rep.Total != rep.Kept+rep.Removed.Sum() || rep.Kept != rep.Train+rep.Validation {
			t.Fatalf("inconsistent counts %+v", rep)
		}
		for _, name := range []string{TrainFile, ValidationFile, QuarantineFile} {
			for _, l := range readLines(t, filepath.Join(o.OutDir, name)) {
				if !json.Valid([]byte(l)) {
					t.Fatalf("%s: invalid JSON line %q", name, l)
				}
			}
		}
	})
}
