package serve

import (
	"slices"
	"sync"
	"time"
)

// windowCapacity bounds the samples kept per backend for Stats: the window
// covers the last StatsWindow or the last windowCapacity requests, whichever
// is shorter.
const windowCapacity = 4096

// BackendStats is a snapshot of one backend for canary analysis. Requests and
// Errors count since the backend was added to the routing state; the Window*
// fields, ErrorRate and the latency percentiles cover the recent window only.
// Errors are 5xx responses and transport failures; requests cancelled by the
// client are counted but not as errors. Latency is the full response time
// (end of stream for streamed responses); FirstByteP95 is the time to the
// first response body byte.
type BackendStats struct {
	Name           string        `json:"name"`
	URL            string        `json:"url"`
	Weight         int           `json:"weight"`
	Healthy        bool          `json:"healthy"`
	InFlight       int64         `json:"in_flight"`
	Requests       uint64        `json:"requests"`
	Errors         uint64        `json:"errors"`
	Window         time.Duration `json:"window_ns"`
	WindowRequests int           `json:"window_requests"`
	WindowErrors   int           `json:"window_errors"`
	ErrorRate      float64       `json:"error_rate"`
	P50            time.Duration `json:"p50_ns"`
	P95            time.Duration `json:"p95_ns"`
	P99            time.Duration `json:"p99_ns"`
	FirstByteP95   time.Duration `json:"first_byte_p95_ns"`
}

type sample struct {
	at        int64 // unix nanoseconds at completion
	dur       time.Duration
	firstByte time.Duration
	failed    bool
}

// window is a fixed-size ring of recent request samples.
type window struct {
	mu   sync.Mutex
	buf  []sample
	next int
	full bool
}

func newWindow(capacity int) *window {
	return &window{buf: make([]sample, capacity)}
}

func (w *window) add(s sample) {
	w.mu.Lock()
	w.buf[w.next] = s
	w.next++
	if w.next == len(w.buf) {
		w.next = 0
		w.full = true
	}
	w.mu.Unlock()
}

// windowSummary is what Stats reports about a window.
type windowSummary struct {
	requests, errors    int
	p50, p95, p99, fb95 time.Duration
}

// summarize reports on the samples that completed after now-span.
func (w *window) summarize(now time.Time, span time.Duration) windowSummary {
	cutoff := now.Add(-span).UnixNano()
	w.mu.Lock()
	n := w.next
	if w.full {
		n = len(w.buf)
	}
	durs := make([]time.Duration, 0, n)
	fbs := make([]time.Duration, 0, n)
	var sum windowSummary
	for _, s := range w.buf[:n] {
		if s.at < cutoff {
			continue
		}
		durs = append(durs, s.dur)
		fbs = append(fbs, s.firstByte)
		if s.failed {
			sum.errors++
		}
	}
	w.mu.Unlock()
	sum.requests = len(durs)
	slices.Sort(durs)
	slices.Sort(fbs)
	sum.p50 = percentile(durs, 0.50)
	sum.p95 = percentile(durs, 0.95)
	sum.p99 = percentile(durs, 0.99)
	sum.fb95 = percentile(fbs, 0.95)
	return sum
}

// percentile returns the nearest-rank q-quantile of sorted values, 0 if
// there are none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999999) - 1 // ceil(q*n) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}
