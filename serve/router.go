package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures a Router. The zero value is usable.
type Config struct {
	// HealthPath is probed on backends whose state entry names no
	// health_path. Default DefaultHealthPath.
	HealthPath string
	// HealthTimeout bounds one health probe. Default 2s.
	HealthTimeout time.Duration
	// StatsWindow is the span Stats reports on. Default 1m.
	StatsWindow time.Duration
	// AdminToken enables the /admin/ endpoints, which require
	// "Authorization: Bearer <AdminToken>". Empty disables them (404).
	AdminToken string
	// StatePath, if set, is where PUT /admin/state persists the new state
	// (atomically) before applying it, so the file stays the source of
	// truth for the file watcher and for restarts.
	StatePath string
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// AccessLog receives one JSON log line per proxied request. Nil
	// disables access logging.
	AccessLog io.Writer
	// MaxBufferedBody is the largest request body the router reads in
	// full before forwarding it. A buffered request can be sent again to
	// another backend when the first could not be connected to, goes out
	// with a Content-Length even if the client sent it chunked, and has its
	// prompt logged. Larger bodies are streamed to the backend as they
	// arrive. Default DefaultMaxBufferedBody; negative: never buffer.
	MaxBufferedBody int64
	// MaxBufferedTotal bounds the memory held by buffered bodies of the
	// requests in flight together; past it bodies are streamed. Default
	// DefaultMaxBufferedTotal.
	MaxBufferedTotal int64
	// PromptLog, if set, receives the prompts of the completion and chat
	// completion requests that backends answered with a 2xx status.
	PromptLog *PromptLog
	// BodyGrace and BodyMinRate bound how slowly a client may send a
	// request body: it must have sent BodyMinRate bytes per second of the
	// time past BodyGrace since the request began, or the read is cut off
	// (408, or a broken upload when streamed). Defaults DefaultBodyGrace
	// and DefaultBodyMinRate; a negative BodyMinRate disables the bound.
	BodyGrace   time.Duration
	BodyMinRate int64
	// BackendTimeout bounds the wait for a backend's response headers;
	// a backend that times out is taken out of rotation for
	// UnresponsiveHold even though its health path may still answer.
	// Default DefaultBackendTimeout; negative: no bound.
	BackendTimeout time.Duration
	// UnresponsiveHold: see BackendTimeout. Default 30s.
	UnresponsiveHold time.Duration
}

// DefaultBodyGrace and DefaultBodyMinRate: a 1 MiB prompt may take up to
// 26s to arrive.
const (
	DefaultBodyGrace   = 10 * time.Second
	DefaultBodyMinRate = 64 << 10
)

// DefaultBackendTimeout bounds the wait for response headers: a completion
// without streaming sends them only when the whole answer is ready.
const DefaultBackendTimeout = 5 * time.Minute

// DefaultMaxBufferedBody bounds the request bodies the router buffers:
// ample for prompts (a 128k-token prompt is about 0.5 MiB of JSON).
const DefaultMaxBufferedBody = 1 << 20

// DefaultMaxBufferedTotal bounds the buffered bodies of all requests in
// flight.
const DefaultMaxBufferedTotal = 256 << 20

// maxAttempts bounds the backends one request is tried on. A request is
// only sent again when connecting to the previous backend failed, so the
// backend cannot have seen it.
const maxAttempts = 3

// Router is an http.Handler that proxies to the backends of the routing state
// in effect. It serves GET /metrics and, when an admin token is configured,
// the /admin/ endpoints itself; every other path is proxied.
type Router struct {
	cfg     Config
	log     *slog.Logger
	access  *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	promH   http.Handler
	bufs    *bufferPool
	noneM   *backendMetrics

	table   atomic.Pointer[table]
	applyMu sync.Mutex // serialises Apply
	gaugeMu sync.Mutex // orders per-backend gauge updates against their removal
	drains  sync.WaitGroup
	closed  chan struct{}
	closeMu sync.Once
	recs    sync.Pool
	// buffered is the memory reserved by the buffered bodies of the
	// requests in flight.
	buffered atomic.Int64
}

// NewRouter returns a Router with an empty routing state (every proxied
// request gets 503 until Apply is called).
func NewRouter(cfg Config) *Router {
	if cfg.HealthPath == "" {
		cfg.HealthPath = DefaultHealthPath
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 2 * time.Second
	}
	if cfg.StatsWindow <= 0 {
		cfg.StatsWindow = time.Minute
	}
	if cfg.MaxBufferedBody == 0 {
		cfg.MaxBufferedBody = DefaultMaxBufferedBody
	}
	if cfg.MaxBufferedTotal <= 0 {
		cfg.MaxBufferedTotal = DefaultMaxBufferedTotal
	}
	if cfg.BodyGrace <= 0 {
		cfg.BodyGrace = DefaultBodyGrace
	}
	if cfg.BodyMinRate == 0 {
		cfg.BodyMinRate = DefaultBodyMinRate
	}
	if cfg.BackendTimeout == 0 {
		cfg.BackendTimeout = DefaultBackendTimeout
	}
	if cfg.UnresponsiveHold <= 0 {
		cfg.UnresponsiveHold = 30 * time.Second
	}
	r := &Router{
		cfg:    cfg,
		log:    cfg.Logger,
		reg:    prometheus.NewRegistry(),
		bufs:   newBufferPool(),
		closed: make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.AccessLog != nil {
		r.access = slog.New(slog.NewJSONHandler(cfg.AccessLog, nil))
	}
	r.metrics = newMetrics(r.reg, cfg.PromptLog)
	r.noneM = &backendMetrics{vec: r.metrics.requests, name: noBackend, errors: r.metrics.errors.WithLabelValues(noBackend)}
	r.promH = promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
	r.recs.New = func() any { return new(responseRecorder) }
	r.table.Store(&table{})
	return r
}

// Gatherer exposes the router's own metrics registry.
func (r *Router) Gatherer() prometheus.Gatherer { return r.reg }

// State returns the routing state in effect.
func (r *Router) State() State {
	s := r.table.Load().state
	s.Backends = slices.Clone(s.Backends)
	return s
}

// Apply validates s and makes it the routing state. Backends that are new (or
// whose URL or health path changed) are probed once before the switch so
// that they start with a known health; backends kept from the previous state
// keep their health, connections and statistics. Requests already in flight
// finish on the backend they were sent to; removed backends drain in the
// background and their idle connections are closed once they are idle.
func (r *Router) Apply(ctx context.Context, s State) error {
	_, err := r.apply(ctx, s)
	return err
}

// apply is Apply, also reporting whether s differed from the state in effect.
func (r *Router) apply(ctx context.Context, s State) (bool, error) {
	if err := s.Validate(); err != nil {
		return false, fmt.Errorf("apply state: %w", err)
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()

	old := r.table.Load()
	if old.state.Name == s.Name && old.state.Version == s.Version && slices.Equal(old.state.Backends, s.Backends) {
		return false, nil
	}
	s.Backends = slices.Clone(s.Backends)
	entries := make([]entry, len(s.Backends))
	var fresh []*backend
	kept := make(map[*backend]bool, len(old.entries))
	for i, cfg := range s.Backends {
		var b *backend
		for _, e := range old.entries {
			if e.b.sameEndpoint(cfg) {
				b = e.b
				break
			}
		}
		if b == nil {
			b = r.newBackend(cfg)
			fresh = append(fresh, b)
		}
		kept[b] = true
		entries[i] = entry{b: b, weight: cfg.Weight}
	}

	var wg sync.WaitGroup
	for _, b := range fresh {
		wg.Go(func() { r.check(ctx, b) })
	}
	wg.Wait()

	r.table.Store(newTable(s, entries))

	r.gaugeMu.Lock()
	for _, e := range entries {
		r.metrics.weight.WithLabelValues(e.b.cfg.Name).Set(float64(e.weight))
	}
	r.gaugeMu.Unlock()
	r.metrics.stateVersion.Set(float64(s.Version))
	for _, e := range old.entries {
		if !kept[e.b] {
			r.drains.Add(1)
			go r.drain(e.b)
		}
	}
	if old.state.Name == s.Name && s.Version < old.state.Version {
		// Applied all the same (a hand-written state may restart at 1),
		// but a stale writer is worth a line in the log.
		r.log.Warn("routing state version went backwards", "name", s.Name, "from", old.state.Version, "to", s.Version)
	}
	attrs := []any{"name", s.Name, "version", s.Version}
	for _, b := range s.Backends {
		attrs = append(attrs, "backend."+b.Name, fmt.Sprintf("%s weight=%d job=%s model=%s", b.URL, b.Weight, b.JobID, b.Model))
	}
	r.log.Info("routing state applied", attrs...)
	return true, nil
}

func (r *Router) newBackend(cfg Backend) *backend {
	target, _ := parseBackendURL(cfg.URL) // validated by Apply
	hp := cfg.HealthPath
	if hp == "" {
		hp = r.cfg.HealthPath
	}
	b := &backend{
		cfg:       cfg,
		target:    target,
		healthURL: healthURL(target, hp),
		transport: newTransport(max(r.cfg.BackendTimeout, 0)),
		metrics:   r.metrics.forBackend(cfg.Name),
		window:    newWindow(windowCapacity),
	}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			// Like X-Forwarded-For, X-Real-IP says who the client is, so a
			// client does not get to choose it.
			if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
				pr.Out.Header.Set("X-Real-IP", ip)
			} else {
				pr.Out.Header.Del("X-Real-IP")
			}
			if bb, ok := pr.In.Body.(*bufferedBody); ok {
				// Lets the transport resend it on a fresh connection when a
				// pooled one turns out dead before anything was written.
				pr.Out.GetBody = bb.replay
			}
		},
		Transport:     b.transport,
		FlushInterval: -1,
		BufferPool:    r.bufs,
		ErrorLog:      slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() != nil {
				w.WriteHeader(statusClientClosed)
				return
			}
			rec, _ := w.(*responseRecorder)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !isConnectError(err) && (rec == nil || rec.status == 0) && !errors.Is(err, errBodyTooSlow) {
				// No response headers within BackendTimeout: the backend
				// holds requests without answering, whatever /health says.
				r.markUnresponsive(b, err)
				writeJSONError(w, http.StatusGatewayTimeout, "backend "+cfg.Name+" did not answer in time")
				return
			}
			if errors.Is(err, errBodyTooSlow) {
				writeJSONError(w, http.StatusRequestTimeout, err.Error())
				return
			}
			if isConnectError(err) {
				r.markDown(b, err)
				if rec != nil && rec.canRetry && rec.status == 0 {
					rec.retryErr = err // serveProxy tries another backend
					return
				}
			}
			r.log.Warn("backend request failed", "backend", cfg.Name, "url", cfg.URL, "err", err)
			writeJSONError(w, http.StatusBadGateway, "backend "+cfg.Name+" unavailable")
		},
	}
	return b
}

// isConnectError reports whether err is a failure to connect to a backend:
// the request cannot have reached it.
func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// markDown takes a backend that could not be connected to out of rotation
// at once (passive health check); the next successful active probe puts it
// back.
func (r *Router) markDown(b *backend, err error) {
	if b.healthy.Swap(false) {
		r.log.Warn("backend unhealthy", "backend", b.cfg.Name, "url", b.cfg.URL, "err", err)
		r.gaugeMu.Lock()
		if !b.removed.Load() {
			r.metrics.healthy.WithLabelValues(b.cfg.Name).Set(0)
		}
		r.gaugeMu.Unlock()
	}
}

// markUnresponsive takes a backend that did not answer within
// BackendTimeout out of rotation for UnresponsiveHold: health probes that
// pass meanwhile do not put it back.
func (r *Router) markUnresponsive(b *backend, err error) {
	b.holdUntil.Store(time.Now().Add(r.cfg.UnresponsiveHold).UnixNano())
	r.metrics.timeouts.WithLabelValues(b.cfg.Name).Inc()
	r.markDown(b, err)
}

// statusClientClosed is recorded (nginx style) when the client went away
// before the backend answered.
const statusClientClosed = 499

// drain waits until no request is in flight on a removed backend, then
// closes its idle connections and drops its gauges.
func (r *Router) drain(b *backend) {
	defer r.drains.Done()
	b.removed.Store(true)
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for b.inFlight.Load() > 0 {
		select {
		case <-r.closed:
			b.transport.CloseIdleConnections()
			return
		case <-tick.C:
		}
	}
	b.transport.CloseIdleConnections()
	r.gaugeMu.Lock()
	if r.table.Load().lookup(b.cfg.Name) == nil {
		r.metrics.healthy.DeleteLabelValues(b.cfg.Name)
		r.metrics.weight.DeleteLabelValues(b.cfg.Name)
	}
	r.gaugeMu.Unlock()
	r.log.Info("backend drained", "backend", b.cfg.Name, "url", b.cfg.URL, "took", time.Since(start))
}

// Close stops background drains and closes idle backend connections. It
// does not stop an http.Server serving the router.
func (r *Router) Close() {
	r.closeMu.Do(func() { close(r.closed) })
	r.drains.Wait()
	for _, e := range r.table.Load().entries {
		e.b.transport.CloseIdleConnections()
	}
}

// ServeHTTP implements http.Handler.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.URL.Path == "/metrics":
		r.promH.ServeHTTP(w, req)
	case strings.HasPrefix(req.URL.Path, "/admin/"):
		r.serveAdmin(w, req)
	default:
		r.serveProxy(w, req)
	}
}

// acquire picks a backend from the current table, other than those in
// skip, and registers the request as in flight on it. If the table is
// swapped and the backend removed between the pick and the registration, it
// picks again from the new table, so a draining backend never receives a
// request it has not counted.
func (r *Router) acquire(skip []*backend) *backend {
	for range 16 {
		b := r.table.Load().pick()
		if b == nil {
			return nil
		}
		if slices.Contains(skip, b) {
			continue // a backend this request failed on, not yet marked down
		}
		b.inFlight.Add(1)
		if !b.removed.Load() {
			return b
		}
		b.inFlight.Add(-1)
	}
	return nil
}

func (r *Router) serveProxy(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var paced *pacedBody
	if req.Body != nil && req.Body != http.NoBody && r.cfg.BodyMinRate > 0 {
		paced = newPacedBody(req.Body, http.NewResponseController(w), start, r.cfg.BodyGrace, r.cfg.BodyMinRate, r.metrics.slowBodies)
		req.Body = paced
	}
	body, reserved, err := r.bufferBody(w, req)
	defer r.buffered.Add(-reserved)
	if body != nil && paced != nil {
		paced.finish() // read in full: no deadline while the backend answers
	}
	if err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, errBodyTooSlow):
			status = http.StatusRequestTimeout
			w.Header().Set("Connection", "close")
			writeJSONError(w, status, err.Error())
		case req.Context().Err() != nil:
			status = statusClientClosed
			w.WriteHeader(status)
		default:
			writeJSONError(w, status, "read request body: "+err.Error())
		}
		r.noneM.request(status).Inc()
		r.logAccess(req, noBackend, status, time.Since(start), 0, 0)
		return
	}

	// Only a request whose body can be sent again may go to another
	// backend after a failed connection.
	replayable := body != nil || req.Body == nil || req.Body == http.NoBody
	var tried [maxAttempts]*backend
	attempts := 0
	for attempt := 0; attempt < maxAttempts; attempt++ {
		b := r.acquire(tried[:attempt])
		if b == nil {
			if attempt > 0 {
				break // every backend tried: the last failure is answered below
			}
			writeJSONError(w, http.StatusServiceUnavailable, "no healthy backend")
			r.noneM.request(http.StatusServiceUnavailable).Inc()
			r.noneM.errors.Inc()
			r.logAccess(req, noBackend, http.StatusServiceUnavailable, time.Since(start), 0, 0)
			return
		}
		tried[attempt] = b
		attempts++
		if body != nil {
			req.Body = body.fresh()
		}
		canRetry := replayable && attempt+1 < maxAttempts
		done, status := r.proxyTo(b, w, req, start, attempt, canRetry)
		if done {
			if r.cfg.PromptLog != nil && status >= 200 && status <= 299 && isCompletion(req) {
				if body != nil {
					r.cfg.PromptLog.Record(b.cfg.Name, req.URL.Path, body.data)
				} else {
					// Streamed (too large, or the buffer budget was
					// spent): not logged, but counted.
					r.cfg.PromptLog.Unlogged()
				}
			}
			return
		}
		r.metrics.retries.WithLabelValues(b.cfg.Name).Inc()
	}
	writeJSONError(w, http.StatusBadGateway, "no backend could be connected to")
	r.noneM.request(http.StatusBadGateway).Inc()
	r.noneM.errors.Inc()
	r.logAccess(req, noBackend, http.StatusBadGateway, time.Since(start), 0, attempts)
}

// proxyTo sends req to b and reports the status answered. It reports
// done=false, having written nothing, when connecting to b failed and
// canRetry allowed another backend to be tried; the attempt still counts as
// a failed request of b.
func (r *Router) proxyTo(b *backend, w http.ResponseWriter, req *http.Request, start time.Time, attempt int, canRetry bool) (done bool, status int) {
	rec := r.recs.Get().(*responseRecorder)
	*rec = responseRecorder{ResponseWriter: w, start: start, canRetry: canRetry}
	defer func() {
		p := recover()
		done, status = rec.retryErr == nil, rec.status
		if status == 0 {
			status = http.StatusOK
		}
		if done {
			r.finish(b, req, rec, p != nil, attempt)
		} else {
			r.finishFailedAttempt(b, rec)
		}
		rec.ResponseWriter, rec.retryErr = nil, nil
		r.recs.Put(rec)
		b.inFlight.Add(-1)
		if p != nil {
			panic(p) // http.ErrAbortHandler from a broken stream: let net/http abort the connection
		}
	}()
	b.proxy.ServeHTTP(rec, req)
	return
}

// bufferBody reads a request body of at most MaxBufferedBody bytes in full
// and returns it, with the bytes it reserved of MaxBufferedTotal (to be
// released when the request is done); a nil body means there is none or it
// is streamed instead. Streamed bodies get full-duplex HTTP/1: net/http
// otherwise closes the request body once the response starts, which cuts
// off a backend that answers before it has read the whole request
// (golang/go#40747).
func (r *Router) bufferBody(w http.ResponseWriter, req *http.Request) (*bufferedBody, int64, error) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 {
		return nil, 0, nil
	}
	stream := func() { _ = http.NewResponseController(w).EnableFullDuplex() }
	limit := r.cfg.MaxBufferedBody
	if limit < 0 || req.ContentLength > limit {
		stream()
		return nil, 0, nil
	}
	// The budget is taken as bytes arrive, never for bytes only promised
	// by Content-Length: clients that stall cannot spend it.
	var data []byte
	var reserved int64
	for int64(len(data)) <= limit { // past the limit, the loop ends: stream it
		if req.ContentLength > 0 && int64(len(data)) == req.ContentLength {
			return &bufferedBody{data: data}, reserved, nil
		}
		if len(data) == cap(data) {
			grow := int64(max(cap(data), bufferChunk))
			if req.ContentLength > 0 {
				grow = min(grow, req.ContentLength-int64(len(data)))
			}
			grow = min(grow, limit+1-int64(len(data)))
			if r.buffered.Add(grow) > r.cfg.MaxBufferedTotal {
				r.buffered.Add(-grow)
				break // budget spent: stream what was read and the rest
			}
			// reserved is cap(data): the old array is garbage once copied.
			nd := make([]byte, len(data), int64(cap(data))+grow)
			copy(nd, data)
			data = nd
			reserved += grow
		}
		n, err := req.Body.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			if req.ContentLength > 0 && int64(len(data)) < req.ContentLength {
				return nil, reserved, io.ErrUnexpectedEOF
			}
			req.ContentLength = int64(len(data))
			req.TransferEncoding = nil
			if len(data) == 0 {
				req.Body = http.NoBody
				return nil, reserved, nil
			}
			if spare := int64(cap(data) - len(data)); spare > 0 {
				// Chunked: keep (and count) only what arrived.
				data = append([]byte(nil), data...)
				r.buffered.Add(-spare)
				reserved -= spare
			}
			return &bufferedBody{data: data}, reserved, nil
		}
		if err != nil {
			return nil, reserved, err
		}
	}
	stream()
	req.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), req.Body), req.Body}
	return nil, reserved, nil
}

// bufferChunk is the first allocation for a buffered body; it doubles
// from there.
const bufferChunk = 16 << 10

// bufferedBody is a request body read in full; fresh and replay hand out
// independent readers of it.
type bufferedBody struct {
	bytes.Reader
	data []byte
}

func (b *bufferedBody) Close() error { return nil }

func (b *bufferedBody) fresh() *bufferedBody {
	nb := &bufferedBody{data: b.data}
	nb.Reset(b.data)
	return nb
}

func (b *bufferedBody) replay() (io.ReadCloser, error) { return b.fresh(), nil }

// isCompletion reports whether req is a completion or chat completion
// request, whose prompt the prompt log keeps.
func isCompletion(req *http.Request) bool {
	return req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/completions")
}

func (r *Router) finish(b *backend, req *http.Request, rec *responseRecorder, aborted bool, attempt int) {
	d := time.Since(rec.start)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	clientGone := req.Context().Err() != nil
	failed := !clientGone && (status >= 500 || aborted)
	fb := rec.firstByte
	if fb == 0 {
		fb = d
	}
	b.requests.Add(1)
	if failed {
		b.errors.Add(1)
		b.metrics.errors.Inc()
	}
	b.metrics.request(status).Inc()
	b.metrics.duration.Observe(d.Seconds())
	b.window.add(sample{at: rec.start.Add(d).UnixNano(), dur: d, firstByte: fb, failed: failed})
	r.logAccess(req, b.cfg.Name, status, d, rec.bytes, attempt+1)
}

// finishFailedAttempt counts an attempt that could not connect to b (and
// was retried elsewhere) as a failed request of b, so that its error rate
// shows it.
func (r *Router) finishFailedAttempt(b *backend, rec *responseRecorder) {
	d := time.Since(rec.start)
	b.requests.Add(1)
	b.errors.Add(1)
	b.metrics.errors.Inc()
	b.metrics.request(http.StatusBadGateway).Inc()
	b.metrics.duration.Observe(d.Seconds())
	b.window.add(sample{at: time.Now().UnixNano(), dur: d, firstByte: d, failed: true})
}

// logAccess writes the access log line of a request; attempts is the
// number of backends it was sent to (0: none).
func (r *Router) logAccess(req *http.Request, backendName string, status int, d time.Duration, n int64, attempts int) {
	if r.access == nil {
		return
	}
	r.access.LogAttrs(req.Context(), slog.LevelInfo, "request",
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
		slog.String("backend", backendName),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.Int64("bytes", n),
		slog.Int("attempts", attempts),
		slog.String("remote", req.RemoteAddr),
	)
}

// Stats returns a snapshot of every backend in the routing state in effect,
// keyed by backend name.
func (r *Router) Stats() map[string]BackendStats {
	t := r.table.Load()
	now := time.Now()
	out := make(map[string]BackendStats, len(t.entries))
	for _, e := range t.entries {
		b := e.b
		ws := b.window.summarize(now, r.cfg.StatsWindow)
		st := BackendStats{
			Name:           b.cfg.Name,
			URL:            b.cfg.URL,
			Weight:         e.weight,
			Healthy:        b.healthy.Load(),
			InFlight:       b.inFlight.Load(),
			Requests:       b.requests.Load(),
			Errors:         b.errors.Load(),
			Window:         r.cfg.StatsWindow,
			WindowRequests: ws.requests,
			WindowErrors:   ws.errors,
			P50:            ws.p50,
			P95:            ws.p95,
			P99:            ws.p99,
			FirstByteP95:   ws.fb95,
		}
		if ws.requests > 0 {
			st.ErrorRate = float64(ws.errors) / float64(ws.requests)
		}
		out[b.cfg.Name] = st
	}
	return out
}

// RunHealthChecks probes every backend of the routing state in effect every
// interval until ctx is done. A backend is healthy when its health path
// answers 2xx within the health timeout.
func (r *Router) RunHealthChecks(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		r.CheckNow(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// CheckNow probes every backend once, concurrently, and waits for the
// results.
func (r *Router) CheckNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, e := range r.table.Load().entries {
		wg.Go(func() { r.check(ctx, e.b) })
	}
	wg.Wait()
}

func (r *Router) check(ctx context.Context, b *backend) {
	err := r.probe(ctx, b)
	if ctx.Err() != nil {
		return // shutting down: the result says nothing about the backend
	}
	ok := err == nil
	if ok && time.Now().UnixNano() < b.holdUntil.Load() {
		ok, err = false, errors.New("held out of rotation after a response timeout")
	}
	was := b.healthy.Swap(ok)
	first := !b.checked.Swap(true)
	switch {
	case ok && (first || !was):
		r.log.Info("backend healthy", "backend", b.cfg.Name, "url", b.cfg.URL)
	case !ok && (first || was):
		r.log.Warn("backend unhealthy", "backend", b.cfg.Name, "url", b.healthURL, "err", err)
	}
	v := 0.0
	if ok {
		v = 1
	}
	r.gaugeMu.Lock()
	if !b.removed.Load() {
		r.metrics.healthy.WithLabelValues(b.cfg.Name).Set(v)
	}
	r.gaugeMu.Unlock()
}

func (r *Router) probe(ctx context.Context, b *backend) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.healthURL, nil)
	if err != nil {
		return fmt.Errorf("health request: %w", err)
	}
	resp, err := b.transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("health request: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health request: status %d", resp.StatusCode)
	}
	return nil
}

// writeJSONError answers with an OpenAI-style error object.
func writeJSONError(w http.ResponseWriter, code int, msg string) {
	type body struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    int    `json:"code"`
		} `json:"error"`
	}
	var b body
	b.Error.Message = msg
	b.Error.Type = "router_error"
	b.Error.Code = code
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(b)
}

// errBodyTooSlow is a request body that arrived slower than the router's
// minimum rate.
var errBodyTooSlow = errors.New("request body arrived too slowly")

// pacedBody cuts off a request body that arrives slower than rate bytes a
// second after grace: before each read the connection's read deadline is
// moved to start + grace + received/rate. Once the body is read, the
// deadline is cleared (a streamed response must not be cut by it).
type pacedBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	n     int64
	done  bool
	slow  prometheus.Counter
}

func newPacedBody(body io.ReadCloser, rc *http.ResponseController, start time.Time, grace time.Duration, rate int64, slow prometheus.Counter) *pacedBody {
	return &pacedBody{ReadCloser: body, rc: rc, start: start, grace: grace, rate: rate, slow: slow}
}

// finish clears the read deadline of a body read in full.
func (b *pacedBody) finish() {
	if !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	deadline := b.start.Add(b.grace + time.Duration(b.n*int64(time.Second)/b.rate))
	_ = b.rc.SetReadDeadline(deadline)
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			b.done = true
			_ = b.rc.SetReadDeadline(time.Time{})
			return n, err
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			b.slow.Inc()
			return n, fmt.Errorf("%w (%d bytes in %s; the minimum is %d bytes/s after %s)", errBodyTooSlow, b.n, time.Since(b.start).Round(time.Millisecond), b.rate, b.grace)
		}
	}
	return n, err
}
