package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/slurmtune/slurmtune/store/atomicfile"
)

// DefaultHealthPath is the path probed on a backend when neither the backend
// nor the router options name one. vLLM and the demo server both serve it.
const DefaultHealthPath = "/health"

// State is the routing state of one router, as stored in the state file and
// accepted by PUT /admin/state:
//
//	{
//	  "name": "tiny",
//	  "version": 7,
//	  "backends": [
//	    {"name": "blue",  "url": "http://node12:8000", "weight": 90, "run": "r-41", "job_id": "1234", "model": "tiny-v3"},
//	    {"name": "green", "url": "http://node07:8000", "weight": 10, "run": "r-42", "job_id": "1240", "model": "tiny-v4",
//	     "health_path": "/health"}
//	  ]
//	}
//
// Weights are non-negative integers; a backend's share of traffic is its
// weight divided by the sum of the weights of the healthy backends, so
// percentages summing to 100 work as expected and the share of an unhealthy
// backend is spread over the others in proportion. A weight of 0 keeps a
// backend configured (and health-checked) but sends it no traffic. Version is
// informational (logged and exported); writers should increase it on every
// change. Unknown fields are rejected so that typos do not silently change
// routing.
type State struct {
	Name     string    `json:"name"`
	Version  int64     `json:"version"`
	Backends []Backend `json:"backends"`
}

// Backend is one serving endpoint in a State. Name identifies the backend in
// metrics, logs and Stats and must be unique within a State; URL is the base
// URL requests are forwarded to (scheme and host, optionally a path prefix).
// Run, JobID and Model are descriptive and only logged.
type Backend struct {
	Name       string `json:"name"`
	URL        string `json:"url"`
	Weight     int    `json:"weight"`
	HealthPath string `json:"health_path,omitempty"`
	Run        string `json:"run,omitempty"`
	JobID      string `json:"job_id,omitempty"`
	Model      string `json:"model,omitempty"`
}

// MaxBackends bounds the backends of one routing state: each is probed
// when applied and holds its own connection pool.
const MaxBackends = 64

// Validate reports the first problem that makes s unusable as routing state.
// An empty backend list is valid (the router answers 503 to everything).
func (s State) Validate() error {
	if len(s.Backends) > MaxBackends {
		return fmt.Errorf("%d backends: a state holds at most %d", len(s.Backends), MaxBackends)
	}
	seen := make(map[string]bool, len(s.Backends))
	total := 0
	for i, b := range s.Backends {
		if b.Name == "" {
			return fmt.Errorf("backend %d: empty name", i)
		}
		if seen[b.Name] {
			return fmt.Errorf("backend %q: duplicate name", b.Name)
		}
		seen[b.Name] = true
		if _, err := parseBackendURL(b.URL); err != nil {
			return fmt.Errorf("backend %q: %w", b.Name, err)
		}
		if b.Weight < 0 {
			return fmt.Errorf("backend %q: negative weight %d", b.Name, b.Weight)
		}
		if b.HealthPath != "" && !strings.HasPrefix(b.HealthPath, "/") {
			return fmt.Errorf("backend %q: health_path %q does not start with /", b.Name, b.HealthPath)
		}
		total += b.Weight
	}
	if len(s.Backends) > 0 && total == 0 {
		return errors.New("all backend weights are 0")
	}
	return nil
}

func parseBackendURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("url %q: missing host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("url %q: query and fragment are not allowed", raw)
	}
	return u, nil
}

// ParseState decodes and validates a state document. It does no I/O.
func ParseState(data []byte) (State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("decode state: %w", err)
	}
	if dec.More() {
		return State{}, errors.New("decode state: trailing data after JSON object")
	}
	if err := s.Validate(); err != nil {
		return State{}, fmt.Errorf("validate state: %w", err)
	}
	return s, nil
}

// MarshalState validates s and encodes it as the state file does.
func MarshalState(s State) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("validate state: %w", err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(data, '\n'), nil
}

// ReadState reads and validates the state file at path.
func ReadState(path string) (State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return State{}, fmt.Errorf("read state: %w", err)
	}
	s, err := ParseState(data)
	if err != nil {
		return State{}, fmt.Errorf("read state %s: %w", path, err)
	}
	return s, nil
}

// WriteState validates s and writes it to path atomically: the document is
// written to a temporary file in the same directory, synced, and renamed over
// path, so a router polling the file never reads a partial document; the
// directory is synced afterwards so the rename survives a crash (atomicfile).
func WriteState(path string, s State) error {
	data, err := MarshalState(s)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
