package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

// CountingTransport counts the HTTP round trips that go through it. Every
// Client wraps its transport in one (see Client.RoundTrips); tests and
// benchmarks may also wrap their own.
type CountingTransport struct {
	// Base does the round trips; http.DefaultTransport when nil.
	Base http.RoundTripper
	n    atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (t *CountingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.n.Add(1)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(req)
}

// Count returns the number of round trips so far.
func (t *CountingTransport) Count() int64 { return t.n.Load() }

// opKind says how a request may be retried.
type opKind int

const (
	// read: idempotent (GET, and DELETE of a job), retried with backoff on
	// transient failures.
	read opKind = iota
	// write: a submit, never retried once it may have reached the server.
	write
)

// response is what slurmrestd answered.
type response struct {
	status int
	body   []byte
}

// maxBody bounds what is read of one response (a listing of many thousand
// jobs is a few tens of MB).
const maxBody = 512 << 20

// send performs req (built by the generated request constructors) with the
// auth headers, once (plus once more with a fresh token when the server
// rejected the token and a TokenSource can make another). A non-2xx status
// is not an error here: callers decode slurmrestd's error list from the
// body. Retries of reads are Client.retry's business.
func (c *Client) send(ctx context.Context, op string, kind opKind, build func() (*http.Request, error)) (*response, error) {
	resp, err := c.sendOnce(ctx, op, kind, build, false)
	// A token the server refused: fetch a new one once, if we can. Safe
	// for submits too: a rejected token means nothing was queued.
	if errors.Is(err, ErrTokenRejected) && c.tokens.source != nil && !errors.Is(err, errTokenLocal) {
		resp, err = c.sendOnce(ctx, op, kind, build, true)
	}
	return resp, err
}

// retry runs a read (fn: one request and the decoding of its answer) again
// after transient failures, with doubling backoff, at most
// Config.ReadRetries more times. Submits never go through it.
func (c *Client) retry(ctx context.Context, fn func() error) error {
	backoff := c.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || attempt >= c.cfg.ReadRetries || !retryable(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}

// errTokenLocal marks token errors found before sending (nothing to retry).
var errTokenLocal = errors.New("token problem found before sending")

// localTokenErr is a token problem found before sending: its message is the
// token error's, and it also matches errTokenLocal.
type localTokenErr struct{ err error }

func (e localTokenErr) Error() string   { return e.err.Error() }
func (e localTokenErr) Unwrap() []error { return []error{e.err, errTokenLocal} }

func (c *Client) sendOnce(ctx context.Context, op string, kind opKind, build func() (*http.Request, error), fresh bool) (*response, error) {
	tok, err := c.tokens.get(ctx, fresh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, localTokenErr{err})
	}
	req, err := build()
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", op, err)
	}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) }}
	rctx := httptrace.WithClientTrace(ctx, trace)
	var cancel context.CancelFunc
	if c.cfg.Timeout > 0 {
		rctx, cancel = context.WithTimeout(rctx, c.cfg.Timeout)
		defer cancel()
	}
	req = req.WithContext(rctx)
	req.Header.Set("X-SLURM-USER-NAME", c.user(tok))
	req.Header.Set("X-SLURM-USER-TOKEN", tok.raw)
	req.Header.Set("Accept", "application/json")

	hresp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, op, kind, wrote.Load(), err)
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxBody))
	if err != nil {
		// The server answered but the body broke off.
		return nil, c.transportError(ctx, op, kind, true, err)
	}
	switch hresp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return nil, fmt.Errorf("%s: %w: %s answered HTTP %d to %s; slurmtune does not follow redirects (the token would go with them): set the slurmrestd URL to the server itself",
			op, ErrRedirect, c.cfg.URL, hresp.StatusCode, redirectTarget(hresp))
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("%s: %w (HTTP %d from slurmrestd: %s)", op, ErrTokenRejected, hresp.StatusCode, oneLine(body, 80))
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// A proxy in front of slurmrestd, or slurmrestd overloaded.
		err := fmt.Errorf("%s: %w: HTTP %d from %s", op, slurm.ErrUnavailable, hresp.StatusCode, c.cfg.URL)
		if kind == write && hresp.StatusCode != http.StatusServiceUnavailable {
			return nil, fmt.Errorf("%w: %w", slurm.ErrSubmitUncertain, err)
		}
		return nil, err
	}
	return &response{status: hresp.StatusCode, body: body}, nil
}

// redirectTarget is where a redirect points, without its query (which
// could carry anything) and never longer than a line.
func redirectTarget(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return "an unreadable Location"
	}
	loc.RawQuery, loc.Fragment, loc.User = "", "", nil
	return oneLine([]byte(loc.String()), 120)
}

// transportError classifies a failed round trip. Nothing received: the
// server is unreachable, or, for a write whose request went out, the
// outcome is unknown.
func (c *Client) transportError(ctx context.Context, op string, kind opKind, sent bool, err error) error {
	if ctx.Err() != nil && !sent {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if kind == write && sent {
		return fmt.Errorf("%s: %w: the request reached %s but the answer was lost (%v); look the job up by its comment before submitting again",
			op, slurm.ErrSubmitUncertain, c.cfg.URL, shortNetErr(err))
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return fmt.Errorf("%s: %w: cannot reach slurmrestd at %s (%v): check that slurmrestd runs there and the URL is right",
		op, slurm.ErrUnavailable, c.cfg.URL, shortNetErr(err))
}

func retryable(err error) bool {
	return errors.Is(err, slurm.ErrUnavailable) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errTransientAPI)
}

// shortNetErr trims Go's long "Get \"http://...\": dial tcp ...: connect:
// connection refused" to its cause.
func shortNetErr(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "cannot resolve " + dnsErr.Name
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func oneLine(b []byte, n int) string {
	s := strings.TrimSpace(string(bytes.ToValidUTF8(b, nil)))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "..."
	}
	if s == "" {
		return "empty body"
	}
	return s
}
