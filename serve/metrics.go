package serve

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// noBackend is the backend label of requests answered by the router itself
// because no healthy backend was available.
const noBackend = "none"

// durationBuckets span fast health-style calls up to long generations.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

type metrics struct {
	requests     *prometheus.CounterVec
	errors       *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	healthy      *prometheus.GaugeVec
	weight       *prometheus.GaugeVec
	stateVersion prometheus.Gauge
	reloads      *prometheus.CounterVec
	retries      *prometheus.CounterVec
	timeouts     *prometheus.CounterVec
	slowBodies   prometheus.Counter
	rejected     prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, prompts *PromptLog) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slurmtune_router_requests_total",
			Help: "Requests proxied by the router, by backend and HTTP status code.",
		}, []string{"backend", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slurmtune_router_errors_total",
			Help: "Proxied requests that failed with a 5xx status or a transport error, by backend.",
		}, []string{"backend"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slurmtune_router_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its (possibly streamed) response, by backend.",
			Buckets: durationBuckets,
		}, []string{"backend"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "slurmtune_router_backend_healthy",
			Help: "1 if the backend passed its last health check, else 0.",
		}, []string{"backend"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "slurmtune_router_backend_weight",
			Help: "Configured routing weight of the backend.",
		}, []string{"backend"}),
		stateVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "slurmtune_router_state_version",
			Help: "Version field of the routing state in effect.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slurmtune_router_state_reloads_total",
			Help: "Routing state updates seen, by result (applied or invalid).",
		}, []string{"result"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slurmtune_router_backend_timeouts_total",
			Help: "Requests a backend sent no response headers for within the backend timeout (the backend is then held out of rotation).",
		}, []string{"backend"}),
		slowBodies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slurmtune_router_slow_bodies_total",
			Help: "Request bodies cut off for arriving slower than the minimum rate.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slurmtune_router_connections_rejected_total",
			Help: "Connections closed at once because the router already held its maximum.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slurmtune_router_retries_total",
			Help: "Requests sent to another backend because this one could not be connected to.",
		}, []string{"backend"}),
	}
	reg.MustRegister(m.requests, m.errors, m.duration, m.healthy, m.weight, m.stateVersion, m.reloads, m.retries,
		m.timeouts, m.slowBodies, m.rejected,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if prompts != nil {
		for _, c := range []struct {
			name, help string
			value      func() uint64
		}{
			{"slurmtune_router_prompts_logged_total", "Prompts written to the prompt log.", prompts.Logged},
			{"slurmtune_router_prompts_dropped_total", "Prompts answered but not logged: the prompt log's queue was full, or the body was streamed (too large, or the buffer budget was spent).", prompts.Dropped},
			{"slurmtune_router_prompts_failed_total", "Prompts lost to prompt log write errors.", prompts.Failed},
		} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
				func() float64 { return float64(c.value()) }))
		}
	}
	return m
}

// backendMetrics caches the label-resolved series of one backend so that the
// request path does no label hashing for the common status codes.
type backendMetrics struct {
	vec      *prometheus.CounterVec
	name     string
	byCode   sync.Map // int -> prometheus.Counter
	errors   prometheus.Counter
	duration prometheus.Observer
}

func (m *metrics) forBackend(name string) *backendMetrics {
	return &backendMetrics{
		vec:      m.requests,
		name:     name,
		errors:   m.errors.WithLabelValues(name),
		duration: m.duration.WithLabelValues(name),
	}
}

func (bm *backendMetrics) request(code int) prometheus.Counter {
	if c, ok := bm.byCode.Load(code); ok {
		return c.(prometheus.Counter)
	}
	c := bm.vec.WithLabelValues(bm.name, strconv.Itoa(code))
	bm.byCode.Store(code, c)
	return c
}
