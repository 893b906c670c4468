package serve

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"time"
)

// fullReadEvery forces a content read every that many polls even when the
// file's size and modification time look unchanged (coarse mtimes, NFS
// attribute caching).
const fullReadEvery = 10

// stateWatcher tracks what it last saw of a state file.
type stateWatcher struct {
	path    string
	modTime time.Time
	size    int64
	hash    [sha256.Size]byte
	polls   int
	missing bool
}

// WatchStateFile applies the state file at path to the router now and then
// whenever its content changes, polling every interval until ctx is done.
// A missing file leaves the state as it is (empty at startup) until the file
// appears; an invalid file is logged and ignored, keeping the last good
// state.
func (r *Router) WatchStateFile(ctx context.Context, path string, interval time.Duration) {
	w := &stateWatcher{path: path}
	r.pollState(ctx, w)
	r.watchLoop(ctx, w, interval)
}

func (r *Router) watchLoop(ctx context.Context, w *stateWatcher, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.pollState(ctx, w)
		}
	}
}

func (r *Router) pollState(ctx context.Context, w *stateWatcher) {
	fi, err := os.Stat(w.path)
	if err != nil {
		if !w.missing {
			if errors.Is(err, fs.ErrNotExist) {
				r.log.Info("state file missing; waiting for it", "path", w.path)
			} else {
				r.log.Error("stat state file", "path", w.path, "err", err)
			}
			w.missing = true
		}
		return
	}
	w.missing = false
	w.polls++
	if fi.ModTime().Equal(w.modTime) && fi.Size() == w.size && w.polls%fullReadEvery != 0 {
		return
	}
	w.modTime, w.size = fi.ModTime(), fi.Size()
	data, err := os.ReadFile(w.path)
	if err != nil {
		r.log.Error("read state file", "path", w.path, "err", err)
		return
	}
	h := sha256.Sum256(data)
	if h == w.hash {
		return
	}
	w.hash = h
	s, err := ParseState(data)
	if err != nil {
		r.metrics.reloads.WithLabelValues("invalid").Inc()
		r.log.Error("invalid state file ignored; keeping last good state", "path", w.path, "err", err)
		return
	}
	if err := r.applyCounted(ctx, s, "file"); err != nil {
		r.log.Error("apply state file", "path", w.path, "err", err)
	}
}

// applyCounted applies s and counts the outcome in the reload metric.
func (r *Router) applyCounted(ctx context.Context, s State, source string) error {
	changed, err := r.apply(ctx, s)
	switch {
	case err != nil:
		r.metrics.reloads.WithLabelValues("invalid").Inc()
	case changed:
		r.metrics.reloads.WithLabelValues("applied").Inc()
		r.log.Debug("state applied", "source", source, "version", s.Version)
	}
	return err
}
