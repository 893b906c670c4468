package serve

import (
	"net/http"
	"sync"
	"time"
)

// table is an immutable routing snapshot: the State it was built from and
// the live backends with their weights. Only the round-robin cursor in it
// changes, under mu.
type table struct {
	state   State
	entries []entry

	mu      sync.Mutex
	current []int
}

type entry struct {
	b      *backend
	weight int
}

func newTable(s State, entries []entry) *table {
	return &table{state: s, entries: entries, current: make([]int, len(entries))}
}

func (t *table) lookup(name string) *backend {
	for _, e := range t.entries {
		if e.b.cfg.Name == name {
			return e.b
		}
	}
	return nil
}

// pick chooses the next backend by smooth weighted round-robin (as in nginx)
// over the healthy backends with a positive weight, or returns nil if there
// is none. Over any run of W picks, where W is the sum of the eligible
// weights, each backend is picked exactly weight times, interleaved evenly.
func (t *table) pick() *backend {
	if len(t.entries) == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	total, best := 0, -1
	for i, e := range t.entries {
		if e.weight <= 0 || !e.b.healthy.Load() {
			continue
		}
		t.current[i] += e.weight
		total += e.weight
		if best < 0 || t.current[i] > t.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	t.current[best] -= total
	return t.entries[best].b
}

// responseRecorder captures what the proxy wrote for metrics and access
// logs. It forwards Flush and exposes the underlying writer through Unwrap so
// that http.ResponseController (used by httputil.ReverseProxy to flush
// streamed responses and to hijack upgraded connections) reaches it.
type responseRecorder struct {
	http.ResponseWriter
	start     time.Time
	status    int
	firstByte time.Duration
	bytes     int64
	// canRetry lets the proxy's error handler leave a connect failure
	// unanswered (recording it in retryErr) so that another backend can
	// be tried.
	canRetry bool
	retryErr error
}

func (w *responseRecorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.firstByte == 0 && len(p) > 0 {
		w.firstByte = time.Since(w.start)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *responseRecorder) Flush() { _ = w.FlushError() }

// FlushError flushes the underlying writer, reporting whether it could.
func (w *responseRecorder) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
