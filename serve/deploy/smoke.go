package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// SmokePrompt is one smoke request and what its completion must satisfy.
type SmokePrompt struct {
	Prompt    string
	MaxTokens int
	// Expect are substrings the completion must all contain.
	Expect []string
	// Regex, if set, must match the completion.
	Regex *regexp.Regexp
}

// SmokeConfig is a smoke test.
type SmokeConfig struct {
	Prompts []SmokePrompt
	// Model is the "model" field of the requests.
	Model string
	// Latency is the budget of one request.
	Latency time.Duration
	// MinSuccess is how many prompts must pass (0: all).
	MinSuccess int
}

// SmokeResult is the outcome of one smoke request.
type SmokeResult struct {
	Prompt  string        `json:"prompt"`
	OK      bool          `json:"ok"`
	Latency time.Duration `json:"latency_ns"`
	Text    string        `json:"text,omitempty"`
	Problem string        `json:"problem,omitempty"`
}

// SmokeReport is the outcome of Smoke.
type SmokeReport struct {
	Passed    bool          `json:"passed"`
	Successes int           `json:"successes"`
	Needed    int           `json:"needed"`
	Results   []SmokeResult `json:"results"`
}

// Summary is a one-line account of the report.
func (r SmokeReport) Summary() string {
	s := fmt.Sprintf("%d of %d smoke prompts passed (need %d)", r.Successes, len(r.Results), r.Needed)
	for _, res := range r.Results {
		if !res.OK {
			s += fmt.Sprintf("; %q: %s", truncate(res.Prompt, 40), res.Problem)
			break
		}
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Smoke sends every prompt to the OpenAI-compatible server at baseURL
// (POST /v1/completions, greedy) one after the other and checks each
// answer: a 2xx within the latency budget whose first choice's text holds
// every expected substring and matches the regex.
func Smoke(ctx context.Context, client *http.Client, baseURL string, cfg SmokeConfig) SmokeReport {
	if client == nil {
		client = &http.Client{}
	}
	need := cfg.MinSuccess
	if need <= 0 || need > len(cfg.Prompts) {
		need = len(cfg.Prompts)
	}
	rep := SmokeReport{Needed: need}
	for _, p := range cfg.Prompts {
		res := smokeOne(ctx, client, baseURL, cfg, p)
		if res.OK {
			rep.Successes++
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Passed = rep.Successes >= need
	return rep
}

func smokeOne(ctx context.Context, client *http.Client, baseURL string, cfg SmokeConfig, p SmokePrompt) SmokeResult {
	res := SmokeResult{Prompt: p.Prompt}
	budget := cfg.Latency
	if budget <= 0 {
		budget = 30 * time.Second
	}
	maxTokens := p.MaxTokens
	if maxTokens <= 0 {
		maxTokens = 16
	}
	body, _ := json.Marshal(map[string]any{"model": cfg.Model, "prompt": p.Prompt, "max_tokens": maxTokens, "temperature": 0})
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		res.Problem = err.Error()
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		res.Latency = time.Since(start)
		if rctx.Err() != nil && ctx.Err() == nil {
			res.Problem = fmt.Sprintf("no answer within the latency budget %s", budget)
		} else {
			res.Problem = err.Error()
		}
		return res
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	res.Latency = time.Since(start)
	if err != nil {
		res.Problem = fmt.Sprintf("read answer: %v", err)
		return res
	}
	if resp.StatusCode/100 != 2 {
		res.Problem = fmt.Sprintf("status %d: %s", resp.StatusCode, truncate(string(bytes.TrimSpace(data)), 200))
		return res
	}
	if res.Latency > budget {
		res.Problem = fmt.Sprintf("took %s, over the latency budget %s", res.Latency.Round(time.Millisecond), budget)
		return res
	}
	var out struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) == 0 {
		res.Problem = fmt.Sprintf("not a completion: %s", truncate(string(data), 200))
		return res
	}
	res.Text = out.Choices[0].Text
	for _, want := range p.Expect {
		if !strings.Contains(res.Text, want) {
			res.Problem = fmt.Sprintf("completion %q lacks %q", truncate(res.Text, 80), want)
			return res
		}
	}
	if p.Regex != nil && !p.Regex.MatchString(res.Text) {
		res.Problem = fmt.Sprintf("completion %q does not match %s", truncate(res.Text, 80), p.Regex)
		return res
	}
	res.OK = true
	return res
}

// WaitHealthy polls baseURL+/health until it answers 2xx or ctx ends.
func WaitHealthy(ctx context.Context, client *http.Client, baseURL string, every time.Duration) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		if !sleep(ctx, every) {
			return fmt.Errorf("%s/health: %w (last: %v)", baseURL, ctx.Err(), last)
		}
	}
}
