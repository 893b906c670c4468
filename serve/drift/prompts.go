package drift

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strings"
)

// readPromptFiles reads the prompts of backend from prompt log files in
// order (missing ones are skipped), keeping the last max when max > 0.
func readPromptFiles(paths []string, backend string, max int) ([]string, error) {
	var out []string
	for _, p := range paths {
		got, err := readPrompts(p, backend, max)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	if max > 0 && len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}

// readPrompts reads prompts from a JSONL file: prompt logs ({"prompt"},
// with backend set only the lines of that backend) or training records
// ({"text"}, {"messages"}: the user turns, {"instruction", "input"}). With
// max > 0 only the last max are kept.
func readPrompts(path, backend string, max int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := []string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r struct {
			Backend     string  `json:"backend"`
			Prompt      *string `json:"prompt"`
			Text        *string `json:"text"`
			Instruction *string `json:"instruction"`
			Input       string  `json:"input"`
			Messages    []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		}
		if json.Unmarshal(line, &r) != nil || (backend != "" && r.Backend != backend) {
			continue
		}
		var p string
		switch {
		case r.Prompt != nil:
			p = *r.Prompt
		case r.Text != nil:
			p = *r.Text
		case r.Instruction != nil:
			p = strings.TrimSpace(*r.Instruction + "\n" + r.Input)
		case len(r.Messages) > 0:
			var parts []string
			for _, m := range r.Messages {
				if m.Role == "user" {
					parts = append(parts, m.Content)
				}
			}
			p = strings.Join(parts, "\n")
		default:
			continue
		}
		out = append(out, p)
		if max > 0 && len(out) > 2*max {
			out = append(out[:0], out[len(out)-max:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if max > 0 && len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}
