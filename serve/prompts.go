package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPromptLogMaxBytes is the size at which a prompt log is rotated.
const DefaultPromptLogMaxBytes = 64 << 20

// promptQueueLen and promptQueueBytes bound the prompts waiting to be
// written; beyond either new prompts are dropped (and counted) rather than
// slowing requests down or holding their bodies in memory.
const (
	promptQueueLen   = 4096
	promptQueueBytes = 64 << 20
)

// promptFlushInterval is how often buffered prompt lines reach the file.
const promptFlushInterval = 500 * time.Millisecond

// PromptEntry is one line of a prompt log: a prompt the router forwarded to
// Backend and that was answered with a 2xx status. Prompt is the
// completion prompt, or the user turns of a chat joined by newlines (the
// same reduction `slurmtune drift` applies to chat training records).
type PromptEntry struct {
	Time    time.Time `json:"time"`
	Backend string    `json:"backend"`
	Model   string    `json:"model,omitempty"`
	Path    string    `json:"path"`
	Prompt  string    `json:"prompt"`
}

// PromptLog appends the prompts of proxied completion requests to a JSON
// lines file, off the request path: Record hands the request body to a
// background writer that parses it, so a request never waits for the
// disk, and a full queue drops prompts instead of delaying traffic. The
// file is rotated to FILE.1 when it grows past its size limit, so at most
// twice that is kept.
type PromptLog struct {
	path     string
	maxBytes int64

	queue  chan promptRecord
	queued atomic.Int64 // body bytes in queue
	done   chan struct{}
	// mu orders Record's sends against Close closing the queue: a handler
	// still running after a forced shutdown must not send on it.
	mu     sync.RWMutex
	closed bool

	logged  atomic.Uint64
	dropped atomic.Uint64
	failed  atomic.Uint64
	errMu   sync.Mutex
	lastErr error
}

type promptRecord struct {
	at      time.Time
	backend string
	path    string
	body    []byte
}

// OpenPromptLog opens (creating if needed) the prompt log at path and
// starts its writer. maxBytes <= 0 means DefaultPromptLogMaxBytes.
func OpenPromptLog(path string, maxBytes int64) (*PromptLog, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultPromptLogMaxBytes
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open prompt log: %w", err)
	}
	l := &PromptLog{path: path, maxBytes: maxBytes, queue: make(chan promptRecord, promptQueueLen), done: make(chan struct{})}
	go l.run(f)
	return l, nil
}

// Record queues the body of a completion request served by backend. It
// never blocks; body must not be modified afterwards. After Close it drops
// the prompt.
func (l *PromptLog) Record(backend, path string, body []byte) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.dropped.Add(1)
		return
	}
	n := int64(len(body))
	if l.queued.Add(n) > promptQueueBytes {
		l.queued.Add(-n)
		l.dropped.Add(1)
		return
	}
	select {
	case l.queue <- promptRecord{at: time.Now(), backend: backend, path: path, body: body}:
	default:
		l.queued.Add(-n)
		l.dropped.Add(1)
	}
}

// Unlogged counts a prompt that was answered but could not be logged (its
// body was streamed to the backend, not buffered): it is dropped.
func (l *PromptLog) Unlogged() { l.dropped.Add(1) }

// Logged, Dropped and Failed count prompts written, dropped (the queue
// was full, or the body was not buffered), and lost to write errors.
func (l *PromptLog) Logged() uint64  { return l.logged.Load() }
func (l *PromptLog) Dropped() uint64 { return l.dropped.Load() }
func (l *PromptLog) Failed() uint64  { return l.failed.Load() }

// Close writes what is queued, closes the file and reports the first write
// error, if any.
func (l *PromptLog) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	<-l.done
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.lastErr
}

func (l *PromptLog) setErr(err error) {
	l.errMu.Lock()
	if l.lastErr == nil {
		l.lastErr = err
	}
	l.errMu.Unlock()
}

func (l *PromptLog) run(f *os.File) {
	defer close(l.done)
	size := int64(0)
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	w := bufio.NewWriterSize(f, 64<<10)
	tick := time.NewTicker(promptFlushInterval)
	defer tick.Stop()
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	flush := func() {
		if f == nil {
			return
		}
		if err := w.Flush(); err != nil {
			l.setErr(fmt.Errorf("write prompt log: %w", err))
		}
	}
	for {
		select {
		case rec, ok := <-l.queue:
			if !ok {
				flush()
				if f != nil {
					if err := f.Close(); err != nil {
						l.setErr(fmt.Errorf("close prompt log: %w", err))
					}
				}
				return
			}
			l.queued.Add(-int64(len(rec.body)))
			for _, e := range promptsOf(rec) {
				line.Reset()
				if err := enc.Encode(e); err != nil {
					continue
				}
				if f != nil && size > 0 && size+int64(line.Len()) > l.maxBytes {
					flush()
					f = l.rotate(f)
					if f != nil {
						w.Reset(f)
					}
					size = 0
				}
				if f == nil {
					l.failed.Add(1)
					continue
				}
				n, err := w.Write(line.Bytes())
				size += int64(n)
				if err != nil {
					l.failed.Add(1)
					l.setErr(fmt.Errorf("write prompt log: %w", err))
					continue
				}
				l.logged.Add(1)
			}
		case <-tick.C:
			if f == nil { // reopening after a rotation failed: try again
				if nf, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
					f, size = nf, 0
					w.Reset(f)
				}
			}
			flush()
		}
	}
}

// rotate renames the full log to FILE.1 (replacing an older one) and opens
// a fresh FILE. It returns nil when no file could be opened; prompts are
// then counted as failed.
func (l *PromptLog) rotate(f *os.File) *os.File {
	if err := f.Close(); err != nil {
		l.setErr(fmt.Errorf("close prompt log: %w", err))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.setErr(fmt.Errorf("rotate prompt log: %w", err))
	}
	nf, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		l.setErr(fmt.Errorf("open prompt log: %w", err))
		return nil
	}
	return nf
}

// promptsOf extracts the prompts of an OpenAI-style completion or chat
// completion request body: one entry per prompt of a completion (a string
// or a batch of strings), one for the user turns of a chat. Token-id
// prompts and bodies that are not JSON give none.
func promptsOf(rec promptRecord) []PromptEntry {
	var body struct {
		Model    string          `json:"model"`
		Prompt   json.RawMessage `json:"prompt"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(rec.body, &body) != nil {
		return nil
	}
	entry := func(p string) PromptEntry {
		return PromptEntry{Time: rec.at.UTC(), Backend: rec.backend, Model: body.Model, Path: rec.path, Prompt: p}
	}
	switch {
	case len(body.Prompt) > 0:
		var s string
		if json.Unmarshal(body.Prompt, &s) == nil {
			return []PromptEntry{entry(s)}
		}
		var batch []string
		if json.Unmarshal(body.Prompt, &batch) != nil {
			return nil
		}
		out := make([]PromptEntry, len(batch))
		for i, p := range batch {
			out[i] = entry(p)
		}
		return out
	case len(body.Messages) > 0:
		var parts []string
		for _, m := range body.Messages {
			if m.Role != "user" {
				continue
			}
			if t, ok := messageText(m.Content); ok {
				parts = append(parts, t)
			}
		}
		if len(parts) == 0 {
			return nil
		}
		return []PromptEntry{entry(strings.Join(parts, "\n"))}
	}
	return nil
}

// messageText returns the text of a chat message content: a string, or the
// text parts of a content array.
func messageText(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return "", false
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n"), len(texts) > 0
}
