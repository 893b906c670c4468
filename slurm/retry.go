package slurm

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ReadRetrying calls f (a read) again while the controller is unreachable
// (ErrUnavailable), once, after a short backoff: a command fails fast but
// rides out a controller restart.
func ReadRetrying[T any](ctx context.Context, log *slog.Logger, f func() (T, error)) (T, error) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		v, err := f()
		if err == nil || attempt == 2 || !errors.Is(err, ErrUnavailable) {
			return v, err
		}
		log.Warn("cluster unavailable, retrying", "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(delay):
		}
		delay *= 2
	}
}
