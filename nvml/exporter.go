package nvml

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Exporter defaults.
const (
	// DefaultListen is loopback-only so that a node does not expose GPU and
	// job data by accident; use --listen :9477 to let Prometheus scrape it.
	DefaultListen   = "127.0.0.1:9477"
	DefaultInterval = time.Second
	// MinInterval bounds how often NVML is polled.
	MinInterval = 100 * time.Millisecond
)

// ExporterOptions configures RunExporter. The zero value is usable: no HTTP,
// no samples, 1 s interval.
type ExporterOptions struct {
	// Listen is the TCP address serving GET /metrics; "" disables HTTP.
	Listen string
	// Listener, when set, is served instead of listening on Listen (tests).
	// RunExporter closes it.
	Listener net.Listener
	// Interval between NVML collections; 0 means DefaultInterval.
	Interval time.Duration
	// SamplesPath, when set, gets one JSON line per GPU per collection
	// appended (see Sample).
	SamplesPath string
	// Hostname labels every series and sample; "" means os.Hostname().
	Hostname string
	// JobID is the exporter's own SLURM_JOB_ID (when started inside a job);
	// it attributes GPUs that run no attributable process.
	JobID string
	// ProcFS is /proc, for attributing processes to jobs; nil means
	// os.DirFS("/proc").
	ProcFS fs.FS
	// Logger receives the log lines; nil means slog.Default().
	Logger *slog.Logger
	// IdleTimeout closes a keep-alive connection idle that long; 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// DefaultIdleTimeout is how long the exporter keeps an idle keep-alive
// connection: longer than any sane scrape interval, short enough that
// abandoned connections do not pile up.
const DefaultIdleTimeout = 2 * time.Minute

// RunExporter collects GPU telemetry from lib every Interval until ctx is
// cancelled, serving it at GET /metrics and/or appending it to the samples
// file. lib must be uninitialised: RunExporter calls Init and, if that
// succeeded, Shutdown.
//
// When NVML is unavailable (Init fails, e.g. ERROR_LIBRARY_NOT_FOUND on a
// node without the driver) it logs one line, writes one status line to the
// samples file, serves slurmtune_nvml_up 0 and keeps running; NVML is never
// called again. It returns nil after ctx is cancelled and everything is
// flushed, or an error when the samples file or the listener cannot be
// opened, or the HTTP server fails.
func RunExporter(ctx context.Context, opts ExporterOptions, lib gonvml.Interface) (err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Interval < MinInterval {
		return fmt.Errorf("interval %v is shorter than %v", opts.Interval, MinInterval)
	}
	if opts.Hostname == "" {
		if opts.Hostname, err = os.Hostname(); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if opts.ProcFS == nil {
		opts.ProcFS = os.DirFS("/proc")
	}

	ln := opts.Listener
	serving := false
	defer func() {
		if ln != nil && !serving {
			ln.Close()
		}
	}()

	var samples *sampleWriter
	if opts.SamplesPath != "" {
		if samples, err = openSampleWriter(opts.SamplesPath); err != nil {
			return err
		}
		defer func() {
			if cerr := samples.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close samples: %w", cerr))
			}
		}()
	}

	if ln == nil && opts.Listen != "" {
		var lc net.ListenConfig
		if ln, err = lc.Listen(ctx, "tcp", opts.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}

	p := newPoller(lib, pollerConfig{Logger: log, ProcFS: opts.ProcFS, OwnJob: opts.JobID})
	up := false
	if ret := lib.Init(); ret != gonvml.SUCCESS {
		initErr := fmt.Errorf("nvml init: %w", ret)
		log.Error("NVML unavailable: no GPU telemetry; serving slurmtune_nvml_up 0", "err", initErr)
		p.markDown(initErr)
		if samples != nil {
			line := Sample{Time: time.Now().UTC(), Host: opts.Hostname, NVML: NVMLUnavailable, Error: ret.Error()}
			if werr := samples.Write([]Sample{line}); werr != nil {
				log.Error("samples file not written", "err", werr)
			}
		}
	} else {
		up = true
		stopXID := p.start(ctx)
		defer func() {
			stopXID() // the event set must be freed before Shutdown
			if ret := lib.Shutdown(); ret != gonvml.SUCCESS {
				log.Warn("NVML shutdown failed", "err", ret)
			}
		}()
	}

	serveErr := make(chan error, 1)
	if ln != nil {
		srv := newHTTPServer(p, opts.Hostname, log)
		srv.IdleTimeout = opts.IdleTimeout
		if srv.IdleTimeout <= 0 {
			srv.IdleTimeout = DefaultIdleTimeout
		}
		serving = true
		go func() { serveErr <- srv.Serve(ln) }()
		log.Info("serving GPU metrics", "addr", ln.Addr().String(), "path", "/metrics", "interval", opts.Interval)
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if serr := srv.Shutdown(sctx); serr != nil {
				err = errors.Join(err, fmt.Errorf("http shutdown: %w", serr))
			}
		}()
	}

	lastStatus := ""
	collect := func() {
		if !up {
			return
		}
		s := p.Poll(ctx)
		if samples == nil || ctx.Err() != nil {
			return // shutting down: do not record a partial collection
		}
		lines := samplesFromSnapshot(opts.Hostname, s)
		status := ""
		switch {
		case !s.Up:
			status = NVMLUnavailable
		case len(lines) == 0:
			status = NVMLNoDevices
		}
		if status != "" && status != lastStatus {
			lines = []Sample{{Time: s.Time.UTC(), Host: opts.Hostname, NVML: status, Error: s.Err}}
		}
		lastStatus = status
		if len(lines) == 0 {
			return
		}
		if werr := samples.Write(lines); werr != nil {
			p.log.Warn("samples-write", "samples file write failed; metrics unaffected", "err", werr)
		}
	}
	collect()
	ticker := time.NewTicker(opts.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("exporter stopping")
			return nil
		case serr := <-serveErr:
			return fmt.Errorf("http server: %w", serr)
		case <-ticker.C:
			collect()
		}
	}
}

// newHTTPServer serves /metrics from its own registries (never the default
// one): the GPU collector, gathered once per snapshot, plus the exporter's
// Go runtime metrics.
//
// Two deliberate omissions keep a scrape well under a millisecond of CPU:
// the process collector (its /proc/self/net/netstat parse alone cost more
// than all GPU series) and gzip (deflating the ~45 KB exposition of 8 GPUs
// cost more CPU than building it; uncompressed that is ~3 KB/s at a 15 s
// scrape interval).
func newHTTPServer(p *poller, host string, log *slog.Logger) *http.Server {
	gpu := prometheus.NewRegistry()
	gpu.MustRegister(newMetricsCollector(p, host))
	runtime := prometheus.NewRegistry()
	runtime.MustRegister(collectors.NewGoCollector())
	g := &scrapeGatherer{p: p, gpu: gpu, runtime: runtime}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerForTransactional(g, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		OfferedCompressions: []promhttp.Compression{promhttp.Identity},
		MaxRequestsInFlight: 4,
		// No Timeout: scrapes never block on NVML, and the timeout handler
		// would buffer every response in memory.
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "slurmtune GPU exporter: metrics at /metrics")
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
