package rest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// TokenSource fetches a fresh JWT for the configured user, e.g. by running
// `scontrol token username=U lifespan=S` where the Slurm tools are. It may
// return the token bare or as scontrol prints it ("SLURM_JWT=...").
type TokenSource func(ctx context.Context) (string, error)

// ErrTokenRejected marks a request slurmrestd or slurmctld refused for its
// token (missing, malformed, expired or not signed with the cluster's key).
// Its text is the advice the user needs; the token itself never appears in
// any error.
var ErrTokenRejected = errors.New("token rejected or expired: refresh it with `scontrol token` or set SLURM_JWT")

// refreshMargin is how long before its exp claim a token is replaced (or,
// for a static token, reported as about to expire).
const refreshMargin = time.Minute

// token is one JWT with what slurmtune reads of its claims (never verified:
// slurmctld does that).
type token struct {
	raw string
	// exp is zero when the token has no exp claim.
	exp time.Time
	iat time.Time
	// user is the "sun" claim (Slurm user name), empty when absent.
	user string
}

// parseToken reads a JWT's claims without verifying it. It accepts the
// "SLURM_JWT=" prefix scontrol prints, and surrounding white space.
func parseToken(s string) (token, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "export ")
	s = strings.TrimPrefix(s, "SLURM_JWT=")
	s = strings.Trim(s, `"'`)
	t := token{raw: s}
	if s == "" {
		return t, fmt.Errorf("%w (the token is empty)", ErrTokenRejected)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return t, fmt.Errorf("%w (the token is not a JWT)", ErrTokenRejected)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return t, fmt.Errorf("%w (the token's claims are not base64url)", ErrTokenRejected)
	}
	var claims struct {
		Exp json.Number `json:"exp"`
		Iat json.Number `json:"iat"`
		Sun string      `json:"sun"`
	}
	d := json.NewDecoder(strings.NewReader(string(payload)))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil {
		return t, fmt.Errorf("%w (the token's claims are not JSON)", ErrTokenRejected)
	}
	if claims.Exp != "" {
		f, err := claims.Exp.Float64()
		if err != nil {
			return t, fmt.Errorf("%w (the token's exp claim is not a number)", ErrTokenRejected)
		}
		t.exp = time.Unix(int64(f), 0)
	}
	if f, err := claims.Iat.Float64(); err == nil && claims.Iat != "" {
		t.iat = time.Unix(int64(f), 0)
	}
	t.user = claims.Sun
	return t, nil
}

// expiresWithin reports whether t expires before now+d.
func (t token) expiresWithin(now time.Time, d time.Duration) bool {
	return !t.exp.IsZero() && !now.Add(d).Before(t.exp)
}

// margin is how early t is refreshed: a minute, or a quarter of its
// lifetime for short-lived tokens.
func (t token) margin() time.Duration {
	if !t.iat.IsZero() && !t.exp.IsZero() {
		if life := t.exp.Sub(t.iat); life > 0 && life/4 < refreshMargin {
			return life / 4
		}
	}
	return refreshMargin
}

// tokens hands out the token for each request: a static one (Config.Token,
// the token file, $SLURM_JWT) while it is valid, else one from the
// TokenSource, fetched again shortly before it expires.
type tokens struct {
	static     string
	staticFrom string // where static came from, for messages
	file       string
	source     TokenSource
	now        func() time.Time

	mu       sync.Mutex
	cur      token
	have     bool
	fromFile time.Time // mtime of the file cur was read from
}

// get returns the token to send. fresh forces a new one from the source
// (after the server rejected the current one).
func (ts *tokens) get(ctx context.Context, fresh bool) (token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := ts.now()

	if !fresh && ts.have && !ts.cur.expiresWithin(now, ts.cur.margin()) {
		if ts.file == "" || !ts.fileChanged() {
			return ts.cur, nil
		}
	}
	// A forced refresh skips the static token or file when there is a
	// source to ask.
	refresh := fresh && ts.source != nil
	var staticErr error
	switch {
	case ts.static != "":
		t, err := parseToken(ts.static)
		if err == nil && !t.expiresWithin(now, 0) && !refresh {
			ts.cur, ts.have = t, true
			return t, nil
		}
		staticErr = tokenProblem(ts.staticFrom, t, err, now)
	case ts.file != "":
		t, mtime, err := readTokenFile(ts.file)
		if err == nil && !t.expiresWithin(now, 0) && !refresh {
			ts.cur, ts.have, ts.fromFile = t, true, mtime
			return t, nil
		}
		if err != nil && !errors.Is(err, ErrTokenRejected) {
			staticErr = err
		} else {
			staticErr = tokenProblem("token file "+ts.file, t, err, now)
		}
	}
	if ts.source == nil {
		if staticErr == nil {
			staticErr = fmt.Errorf("%w (no token configured)", ErrTokenRejected)
		}
		return token{}, staticErr
	}
	raw, err := ts.source(ctx)
	if err != nil {
		// The source's error is about running scontrol; it never holds a
		// token (it failed to make one).
		if staticErr != nil {
			return token{}, fmt.Errorf("%w; fetching a new one failed too: %v", staticErr, err)
		}
		return token{}, fmt.Errorf("fetch a Slurm token: %w", err)
	}
	t, err := parseToken(raw)
	if err != nil {
		return token{}, fmt.Errorf("fetch a Slurm token: %w", err)
	}
	if t.expiresWithin(now, 0) {
		return token{}, fmt.Errorf("fetch a Slurm token: %w (the new token has already expired; check the clocks)", ErrTokenRejected)
	}
	ts.cur, ts.have = t, true
	return t, nil
}

func (ts *tokens) fileChanged() bool {
	st, err := os.Stat(ts.file)
	return err != nil || !st.ModTime().Equal(ts.fromFile)
}

func tokenProblem(from string, t token, err error, now time.Time) error {
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return fmt.Errorf("%s: %w (it expired at %s)", from, ErrTokenRejected, t.exp.UTC().Format(time.RFC3339))
}

// readTokenFile reads a token file, refusing one that group or others may
// read: a JWT is a password.
func readTokenFile(path string) (token, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return token{}, time.Time{}, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return token{}, time.Time{}, fmt.Errorf("token file: %w", err)
	}
	if st.IsDir() {
		return token{}, time.Time{}, fmt.Errorf("token file %s is a directory", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return token{}, time.Time{}, fmt.Errorf("token file %s is readable or writable by group or others (mode %04o): run `chmod 600 %s`", path, perm, path)
	}
	data := make([]byte, 64*1024)
	n, err := f.Read(data)
	if err != nil && n == 0 {
		return token{}, time.Time{}, fmt.Errorf("token file %s: %w", path, err)
	}
	t, err := parseToken(string(data[:n]))
	return t, st.ModTime(), err
}
