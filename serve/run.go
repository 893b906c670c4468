package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Options configures RunRouter.
type Options struct {
	// Listen is the TCP address to serve on, e.g. ":8080". Ignored when
	// Listener is set.
	Listen string
	// Listener, if set, is served instead of listening on Listen.
	Listener net.Listener
	// StatePath is the routing state file to load and watch. Empty: the
	// state only changes through PUT /admin/state.
	StatePath string
	// AdminTokenFile holds the bearer token of the /admin/ endpoints.
	// Empty disables them.
	AdminTokenFile string
	// HealthInterval is the active health check period. Default 2s.
	HealthInterval time.Duration
	// HealthTimeout bounds one probe. Default min(2s, HealthInterval).
	HealthTimeout time.Duration
	// HealthPath is the default health path. Default DefaultHealthPath.
	HealthPath string
	// PollInterval is how often the state file is checked. Default 200ms.
	PollInterval time.Duration
	// StatsWindow is the span of Router.Stats. Default 1m.
	StatsWindow time.Duration
	// ShutdownTimeout bounds the graceful shutdown (in-flight requests,
	// including long streams) after ctx is cancelled. Default 30s.
	ShutdownTimeout time.Duration
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// AccessLog receives one JSON line per proxied request. Nil disables.
	AccessLog io.Writer
	// PromptLog is the file (JSON lines, see PromptEntry) the prompts of
	// answered completion requests are appended to, for data drift
	// checks. Empty disables it.
	PromptLog string
	// PromptLogMaxBytes is the size at which the prompt log is rotated.
	// Default DefaultPromptLogMaxBytes.
	PromptLogMaxBytes int64
	// MaxBufferedBody: see Config.MaxBufferedBody.
	MaxBufferedBody int64
	// MemoryLimit is the process's soft memory limit (the Go runtime's,
	// debug.SetMemoryLimit); the buffered bodies of all requests together
	// get at most a quarter of it. Default DefaultMemoryLimit, or
	// $GOMEMLIMIT when set; negative: no limit.
	MemoryLimit int64
	// MaxConns caps the client connections held at once; past it new
	// connections are closed at once. Default DefaultMaxConns.
	MaxConns int
	// BodyGrace, BodyMinRate, BackendTimeout: see Config.
	BodyGrace      time.Duration
	BodyMinRate    int64
	BackendTimeout time.Duration
	// OnReady, if set, is called once the router accepts connections.
	OnReady func(r *Router, addr net.Addr)
}

// DefaultMemoryLimit and DefaultMaxConns bound a router that was not told
// otherwise.
const (
	DefaultMemoryLimit = 1 << 30
	DefaultMaxConns    = 4096
)

func (o *Options) setDefaults() {
	if o.MemoryLimit == 0 {
		if os.Getenv("GOMEMLIMIT") != "" {
			o.MemoryLimit = debug.SetMemoryLimit(-1)
		} else {
			o.MemoryLimit = DefaultMemoryLimit
		}
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = 2 * time.Second
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = min(2*time.Second, o.HealthInterval)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// RunRouter serves a Router until ctx is cancelled, then shuts the HTTP
// server down gracefully (in-flight requests finish, bounded by
// ShutdownTimeout). The state file, if any, is loaded before the first
// connection is accepted and then watched; backends are health-checked every
// HealthInterval.
func RunRouter(ctx context.Context, opts Options) error {
	opts.setDefaults()
	log := opts.Logger
	token, err := readAdminToken(opts.AdminTokenFile)
	if err != nil {
		return err
	}
	var prompts *PromptLog
	if opts.PromptLog != "" {
		if prompts, err = OpenPromptLog(opts.PromptLog, opts.PromptLogMaxBytes); err != nil {
			return err
		}
	}
	budget := int64(DefaultMaxBufferedTotal)
	if opts.MemoryLimit > 0 {
		debug.SetMemoryLimit(opts.MemoryLimit)
		budget = min(budget, opts.MemoryLimit/4)
	}
	r := NewRouter(Config{
		MaxBufferedTotal: budget,
		BodyGrace:        opts.BodyGrace,
		BodyMinRate:      opts.BodyMinRate,
		BackendTimeout:   opts.BackendTimeout,
		HealthPath:       opts.HealthPath,
		HealthTimeout:    opts.HealthTimeout,
		StatsWindow:      opts.StatsWindow,
		AdminToken:       token,
		StatePath:        opts.StatePath,
		Logger:           log,
		AccessLog:        opts.AccessLog,
		MaxBufferedBody:  opts.MaxBufferedBody,
		PromptLog:        prompts,
	})
	defer r.Close()
	if prompts != nil {
		// Runs after the server has shut down: no request records a
		// prompt any more.
		defer func() {
			if err := prompts.Close(); err != nil {
				log.Warn("prompt log", "path", opts.PromptLog, "err", err)
			}
		}()
	}

	ln := opts.Listener
	if ln == nil {
		var lc net.ListenConfig
		ln, err = lc.Listen(ctx, "tcp", opts.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}

	ln = &capListener{Listener: ln, sem: make(chan struct{}, opts.MaxConns), rejected: r.metrics.rejected}

	// Background work outlives ctx until the server has shut down, so
	// health checks keep running while requests drain.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	var bg sync.WaitGroup
	if opts.StatePath != "" {
		w := &stateWatcher{path: opts.StatePath}
		r.pollState(bgCtx, w) // initial load before serving
		bg.Go(func() { r.watchLoop(bgCtx, w, opts.PollInterval) })
	}
	bg.Go(func() { r.RunHealthChecks(bgCtx, opts.HealthInterval) })

	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("router listening", "addr", ln.Addr().String(), "state", opts.StatePath, "admin", token != "")
	if opts.OnReady != nil {
		opts.OnReady(r, ln.Addr())
	}

	select {
	case err := <-served:
		stopBg()
		bg.Wait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("router shutting down", "timeout", opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if shutErr != nil {
		_ = srv.Close()
		shutErr = fmt.Errorf("shutdown: %w", shutErr)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		shutErr = errors.Join(shutErr, fmt.Errorf("serve: %w", err))
	}
	stopBg()
	bg.Wait()
	return shutErr
}

// MinAdminTokenLen is the shortest admin token accepted: 32 bytes, e.g.
// `openssl rand -hex 16`.
const MinAdminTokenLen = 32

// readAdminToken reads the bearer token file; an empty path disables the
// admin API.
func readAdminToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	return ReadAdminToken(path)
}

// ReadAdminToken reads an admin API token file: a regular file that neither
// group nor others can read, holding one word of at least MinAdminTokenLen
// bytes. The router and the deploy client both read it through this.
func ReadAdminToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("admin token %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("admin token %s: readable by group or others (mode %s): chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	tok, err := parseToken(data)
	if err != nil {
		return "", fmt.Errorf("read admin token %s: %w", path, err)
	}
	if len(tok) < MinAdminTokenLen {
		return "", fmt.Errorf("admin token %s: %d bytes, want at least 32 bytes (e.g. openssl rand -hex 16 > %s)", path, len(tok), path)
	}
	return tok, nil
}

// parseToken returns the token in a token file: its content with
// surrounding whitespace removed, which must be a single non-empty word.
func parseToken(data []byte) (string, error) {
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", errors.New("empty token")
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", errors.New("token contains whitespace")
	}
	return tok, nil
}

// capListener holds at most cap(sem) connections: one accepted past that
// is closed at once (a client that cannot be served soon learns it now).
type capListener struct {
	net.Listener
	sem      chan struct{}
	rejected interface{ Inc() }
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &capConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.rejected.Inc()
			_ = c.Close()
		}
	}
}

type capConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// OpenAccessLog opens the access log destination path names: "" none, "-"
// stdout, else the file, appended to. close closes what it opened.
func OpenAccessLog(path string, stdout io.Writer) (w io.Writer, close func(), err error) {
	switch path {
	case "":
		return nil, func() {}, nil
	case "-":
		return stdout, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open access log: %w", err)
	}
	return f, func() { _ = f.Close() }, nil
}
