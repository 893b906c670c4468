// Package ui is slurmtune's read-only web dashboard (`slurmtune ui`): a
// runs page, a run page (stage timeline, training curves with restarts
// marked, GPU utilization, memory and power per GPU, eval metrics against
// their gate thresholds, deploy history with router traffic, error rate
// and latency) and a compare page, served from the SQLite database. A web
// dashboard is a capability none of cmd/, slurm/, nvml/, jobs/, templates/,
// store/ or scripts/ owns, hence its own top-level package.
//
// It never writes: it reads a store opened read-only, and learns live job
// states from a LiveFunc (the read-only Slurm refresh the caller supplies),
// kept in memory. Charts are drawn by uPlot (pinned, embedded in the
// binary with a go:embed directive, see scripts/fetch-ui-assets.sh); long
// series are downsampled on the server with LTTB to at most MaxPoints
// points. It listens on loopback by default; any other address needs a
// token, and every request must then carry it. Pages are rendered with
// html/template; the scripts set only text, never HTML, so every name from
// a run or a payload is shown escaped.
package ui

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

//go:embed assets templates
var embedded embed.FS

// Store is what the dashboard reads.
type Store interface {
	RunSummaries(ctx context.Context) ([]store.RunSummary, error)
	GetRun(ctx context.Context, id string) (*store.Run, error)
	RunJobs(ctx context.Context, runID string) ([]store.JobRecord, error)
	Transitions(ctx context.Context, runID string) ([]store.Transition, error)
	MetricPoints(ctx context.Context, runID string, f store.MetricFilter) ([]store.MetricPoint, error)
	LastMetricPoints(ctx context.Context, runIDs []string, stage, name string) (map[string]store.MetricPoint, error)
	MetricSeriesOf(ctx context.Context, runID string) ([]store.MetricSeries, error)
	EvalReport(ctx context.Context, runID string) (*store.EvalRecord, error)
	GPUPoints(ctx context.Context, runID string) ([]store.GPUPoint, error)
	DeployEvents(ctx context.Context, name string) ([]store.DeployEvent, error)
	DeploySamples(ctx context.Context, name, runID string) ([]store.DeploySample, error)
	RunParams(ctx context.Context, runID string) (map[string]any, error)
	GetSweepRun(ctx context.Context, runID string) (*store.SweepRun, error)
	SweepTasks(ctx context.Context, runID string) ([]store.SweepTask, error)
}

// LiveFunc asks Slurm, read-only, about the jobs the database says are
// live and returns what it knows of them by job id.
type LiveFunc func(ctx context.Context) (map[string]slurm.Job, error)

// Options configure a Server.
type Options struct {
	Store Store
	// Live refreshes job states every Interval; nil: states as the
	// database has them.
	Live     LiveFunc
	Interval time.Duration
	// Token, when set, must come with every request (Authorization: Bearer,
	// or ?token= once, which sets a cookie).
	Token string
	Log   *slog.Logger
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Server serves the dashboard.
type Server struct {
	o     Options
	pages *template.Template
	mux   *http.ServeMux

	mu        sync.RWMutex
	live      map[string]slurm.Job
	liveAt    time.Time
	liveError string
}

// New builds a server.
func New(o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("ui: no store")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	pages, err := template.New("pages").Funcs(funcs).ParseFS(embedded, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse templates: %w", err)
	}
	s := &Server{o: o, pages: pages, mux: http.NewServeMux()}
	static, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, err
	}
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /{$}", s.runsPage)
	s.mux.HandleFunc("GET /runs/{id}", s.runPage)
	s.mux.HandleFunc("GET /compare", s.comparePage)
	s.mux.HandleFunc("GET /api/runs", s.apiRuns)
	s.mux.HandleFunc("GET /api/runs/{id}/charts", s.apiCharts)
	s.mux.HandleFunc("GET /api/compare", s.apiCompare)
	return s, nil
}

// Handler is the dashboard with its access checks.
func (s *Server) Handler() http.Handler { return s.guard(s.mux) }

// CheckListen refuses a non-loopback address without a token.
func CheckListen(addr string, haveToken bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if !isLoopback(host) && !haveToken {
		return fmt.Errorf("--listen %s is not a loopback address: anyone who can reach it could read every run; give --token-file", addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

const tokenCookie = "slurmtune_ui_token"

// guard sets the security headers, checks the token when one is set and,
// without one, refuses requests for a Host that is not loopback (a page
// elsewhere rebinding its name to 127.0.0.1 must not read the dashboard).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "read-only dashboard", http.StatusMethodNotAllowed)
			return
		}
		if s.o.Token == "" {
			host := r.Host
			if hh, _, err := net.SplitHostPort(host); err == nil {
				host = hh
			}
			if !isLoopback(host) {
				http.Error(w, "forbidden: not a loopback host", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		given := ""
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			given = strings.TrimPrefix(a, "Bearer ")
		} else if q := r.URL.Query().Get("token"); q != "" {
			given = q
		} else if c, err := r.Cookie(tokenCookie); err == nil {
			given = c.Value
		}
		if subtle.ConstantTimeCompare([]byte(given), []byte(s.o.Token)) != 1 {
			h.Set("WWW-Authenticate", `Bearer realm="slurmtune"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("token") != "" {
			// Keep the token out of the address bar, history and logs.
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.o.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			u := *r.URL
			q := u.Query()
			q.Del("token")
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Serve serves on l until ctx ends, refreshing live states meanwhile.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go s.refreshLoop(ctx)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			s.o.Log.Warn("ui: graceful shutdown did not finish; requests still in flight are cut off at exit", "err", err)
		}
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) refreshLoop(ctx context.Context) {
	if s.o.Live == nil {
		return
	}
	for {
		s.RefreshLive(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.o.Interval):
		}
	}
}

// RefreshLive asks Live once for the live jobs' states.
func (s *Server) RefreshLive(ctx context.Context) {
	if s.o.Live == nil {
		return
	}
	jobs, err := s.o.Live(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.liveError = err.Error()
		s.o.Log.Warn("ui: could not refresh from Slurm; showing the database's states", "err", err)
		return
	}
	s.live, s.liveAt, s.liveError = jobs, s.o.Now(), ""
}

// liveJob is what the last refresh said of a job.
func (s *Server) liveJob(id string) (slurm.Job, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j, ok := s.live[id]
	return j, ok
}

// ReadTokenFile reads the --token-file of `slurmtune ui`: one token of
// at least 16 characters on one line, in a file not readable by others;
// "" when path is "".
func ReadTokenFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("--token-file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("--token-file %s: want one token of at least 16 characters on one line", path)
	}
	return tok, nil
}

// LiveStates asks each cluster, through jobs (read-only: squeue, sacct,
// slurmrestd reads), about the jobs the database says are live, one call
// per cluster configuration; nothing is written. The first error is
// returned with what the other clusters said.
func LiveStates(ctx context.Context, st interface {
	LiveJobs(ctx context.Context) ([]store.TrackedJob, error)
}, jobs func(ctx context.Context, config string, ids []string) ([]slurm.Job, error)) (map[string]slurm.Job, error) {
	live, err := st.LiveJobs(ctx)
	if err != nil {
		return nil, err
	}
	byConfig := map[string][]string{}
	for _, t := range live {
		byConfig[t.ClusterConfig] = append(byConfig[t.ClusterConfig], t.JobID)
	}
	out := map[string]slurm.Job{}
	var firstErr error
	for _, cfg := range slices.Sorted(maps.Keys(byConfig)) {
		js, err := jobs(ctx, cfg, slices.Compact(slices.Sorted(slices.Values(byConfig[cfg]))))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, j := range js {
			out[j.ID] = j
		}
	}
	return out, firstErr
}
