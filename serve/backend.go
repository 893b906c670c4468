package serve

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// backend is the live side of one configured Backend. It is shared between
// successive routing tables as long as its name, URL and health path stay
// the same, so health status, connections and statistics survive weight
// changes.
type backend struct {
	cfg       Backend
	target    *url.URL
	healthURL string
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	metrics   *backendMetrics
	window    *window

	healthy atomic.Bool
	// holdUntil (UnixNano) keeps a backend that did not answer in time
	// out of rotation, whatever its health probes say.
	holdUntil atomic.Int64
	checked   atomic.Bool // at least one health probe finished
	removed   atomic.Bool // set once the backend left the routing table
	inFlight  atomic.Int64
	requests  atomic.Uint64
	errors    atomic.Uint64
}

// sameEndpoint reports whether b can serve cfg without being rebuilt.
func (b *backend) sameEndpoint(cfg Backend) bool {
	return b.cfg.Name == cfg.Name && b.cfg.URL == cfg.URL && b.cfg.HealthPath == cfg.HealthPath
}

// newTransport returns the transport used for one backend. Each backend gets
// its own so that draining a removed backend can close its idle connections
// without touching the others. Proxy settings from the environment are
// deliberately ignored: backends are on the cluster network.
func newTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		ResponseHeaderTimeout: headerTimeout,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        0, // no global limit; bounded per host below
		MaxIdleConnsPerHost: 512,
		// Shorter than the keep-alive timeout of uvicorn (vLLM: 5s) so the
		// router does not send a POST on a connection the backend is closing
		// (non-idempotent requests are not retried by net/http).
		IdleConnTimeout:       4 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass bodies through as the backend sent them
		ForceAttemptHTTP2:     false,
	}
}

// copyBufferSize is the size of the buffers the proxies copy bodies with.
const copyBufferSize = 32 << 10

// bufferPool recycles the copy buffers of all reverse proxies. It pools
// array pointers so that neither Get nor Put allocates.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (bp *bufferPool) Get() []byte { return bp.p.Get().(*[copyBufferSize]byte)[:] }

func (bp *bufferPool) Put(b []byte) {
	if len(b) == copyBufferSize {
		bp.p.Put((*[copyBufferSize]byte)(b))
	}
}

func healthURL(target *url.URL, path string) string {
	u := *target
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	return u.String()
}
