package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/serve"
)

// ErrNoStats is returned by Router.Stats when the router publishes none
// (no stats file, or a stale one).
var ErrNoStats = errors.New("router publishes no stats")

// Snapshot is what the router says about itself at one time: the version of
// the routing state it applied and its per-backend stats.
type Snapshot struct {
	Time         time.Time                     `json:"time"`
	StateVersion int64                         `json:"state_version"`
	Backends     map[string]serve.BackendStats `json:"backends"`
}

// Router is how the controller drives a slurmtune router.
type Router interface {
	// Apply makes s the routing state.
	Apply(ctx context.Context, s serve.State) error
	// Current returns the routing state last written (an empty State when
	// there is none yet).
	Current(ctx context.Context) (serve.State, error)
	// Stats returns the router's own view, or an error wrapping ErrNoStats.
	Stats(ctx context.Context) (Snapshot, error)
}

// FileRouter drives a router through its state file on a shared
// filesystem, and reads its stats from the stats file the router writes
// (StatsWriter) next to it.
type FileRouter struct {
	StatePath, StatsPath string
	// MaxAge is how old a stats file may be before it counts as absent.
	// Default 15s.
	MaxAge time.Duration
}

// Apply writes the state file atomically; the router polls it.
func (f FileRouter) Apply(_ context.Context, s serve.State) error {
	return serve.WriteState(f.StatePath, s)
}

// Current reads the state file.
func (f FileRouter) Current(context.Context) (serve.State, error) {
	s, err := serve.ReadState(f.StatePath)
	if errors.Is(err, fs.ErrNotExist) {
		return serve.State{}, nil
	}
	return s, err
}

// Stats reads the stats file.
func (f FileRouter) Stats(context.Context) (Snapshot, error) {
	return ReadStatsFile(f.StatsPath, f.MaxAge)
}

// ReadStatsFile reads a stats file, failing with ErrNoStats when it is
// missing or older than maxAge (default 15s).
func ReadStatsFile(path string, maxAge time.Duration) (Snapshot, error) {
	if maxAge <= 0 {
		maxAge = 15 * time.Second
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Snapshot{}, fmt.Errorf("%w: %s does not exist", ErrNoStats, path)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("read router stats: %w", err)
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return Snapshot{}, fmt.Errorf("read router stats %s: %w", path, err)
	}
	if age := time.Since(s.Time); age > maxAge {
		return Snapshot{}, fmt.Errorf("%w: %s is %s old", ErrNoStats, path, age.Round(time.Second))
	}
	return s, nil
}

// AdminRouter drives a router through its admin API (PUT /admin/state,
// GET /admin/state and /admin/stats with a bearer token).
type AdminRouter struct {
	URL, Token string
	Client     *http.Client
}

func (a AdminRouter) do(ctx context.Context, method, path string, body []byte, out any) error {
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("router admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("router admin %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("router admin %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Apply PUTs the state.
func (a AdminRouter) Apply(ctx context.Context, s serve.State) error {
	data, err := serve.MarshalState(s)
	if err != nil {
		return err
	}
	return a.do(ctx, http.MethodPut, "/admin/state", data, nil)
}

// Current GETs the state in effect.
func (a AdminRouter) Current(ctx context.Context) (serve.State, error) {
	var s serve.State
	err := a.do(ctx, http.MethodGet, "/admin/state", nil, &s)
	return s, err
}

// Stats GETs the stats and the state version in effect.
func (a AdminRouter) Stats(ctx context.Context) (Snapshot, error) {
	var snap Snapshot
	if err := a.do(ctx, http.MethodGet, "/admin/stats", nil, &snap.Backends); err != nil {
		return Snapshot{}, err
	}
	s, err := a.Current(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	snap.Time, snap.StateVersion = time.Now(), s.Version
	return snap, nil
}

// StatsSource is what StatsWriter publishes: a *serve.Router.
type StatsSource interface {
	Stats() map[string]serve.BackendStats
	State() serve.State
}

// WriteStats writes one stats file from r.
func WriteStats(path string, r StatsSource) error {
	snap := Snapshot{Time: time.Now().UTC(), StateVersion: r.State().Version, Backends: r.Stats()}
	data, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	return writeAtomic(path, append(data, '\n'))
}

// StatsWriter writes r's stats to path every interval (default 1s) until
// ctx ends, so that a deploy stage on a compute node can judge a canary
// through the shared filesystem. Run it next to serve.RunRouter (from
// Options.OnReady) with path = PathsFor(statePath).Stats.
func StatsWriter(ctx context.Context, r StatsSource, path string, interval time.Duration, onErr func(error)) {
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := WriteStats(path, r); err != nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// RunRouter runs `slurmtune router`: serve.RunRouter with the deployment
// files next to opts.StatePath. Unless noPromptLog, prompts are logged to
// opts.PromptLog, by default the deployment's prompt log (Paths.Prompts);
// the router's per-backend stats are published to Paths.Stats every
// second, so that a deploy stage on a compute node can judge a canary.
func RunRouter(ctx context.Context, opts serve.Options, noPromptLog bool) error {
	switch {
	case noPromptLog:
		opts.PromptLog = ""
	case opts.PromptLog == "" && opts.StatePath != "":
		opts.PromptLog = PathsFor(opts.StatePath).Prompts
	}
	if opts.StatePath != "" {
		statsPath := PathsFor(opts.StatePath).Stats
		opts.OnReady = func(r *serve.Router, _ net.Addr) {
			go StatsWriter(ctx, r, statsPath, time.Second, func(err error) {
				if opts.Logger != nil {
					opts.Logger.Warn("write router stats", "path", statsPath, "err", err)
				}
			})
		}
	}
	if err := serve.RunRouter(ctx, opts); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	return nil
}
