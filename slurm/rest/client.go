// Package rest implements slurm.Client over slurmrestd, Slurm's REST API.
//
// The request and response types of each supported API version are
// generated from slurmrestd's OpenAPI documents (packages v0038, v0040,
// v0041; see scripts/gen-rest.sh); this package only maps them to and from
// the slurm package's types.
//
// Round trips: Jobs asks slurmctld about all ids in one GET /slurm/vX/jobs
// (sent with update_time, so an unchanged queue answers with no job data)
// and, only for ids the controller no longer knows, one GET /slurmdb/vX/jobs
// with the id list. JobsByComment is the same two requests. Submit is one
// POST and is never retried. Cancel is one DELETE per job (slurmrestd has no
// multi-job cancel before v0.0.41, and slurmtune cancels few jobs at once).
package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

// API versions this package speaks, newest first.
const (
	V0041 = "v0.0.41" // Slurm 24.05 - 25.05
	V0040 = "v0.0.40" // Slurm 23.11 - 24.11
	V0038 = "v0.0.38" // Slurm 22.05 - 23.02
)

// Versions lists the supported API versions, newest first (the order
// detection tries them in).
var Versions = []string{V0041, V0040, V0038}

// Accounting says whether to ask slurmdbd (through slurmrestd) about jobs
// the controller has forgotten.
type Accounting int

const (
	// AccountingAuto asks, and stops asking for a while when slurmrestd
	// answers that accounting is not there.
	AccountingAuto Accounting = iota
	// AccountingOff never asks: jobs purged from slurmctld are absent.
	AccountingOff
)

// Config configures a Client. Only URL is required when $SLURM_JWT holds a
// token.
type Config struct {
	// URL is slurmrestd's base URL, e.g. http://127.0.0.1:6820.
	URL string
	// User is sent as X-SLURM-USER-NAME. Default: the token's "sun" claim,
	// else the local user name.
	User string
	// Token is a JWT to use as is (e.g. read from configuration).
	Token string
	// TokenFile is a file holding a JWT (bare or as SLURM_JWT=...). It must
	// not be readable by group or others. It is read again when it changes
	// and when the token in it nears expiry.
	TokenFile string
	// TokenSource fetches a new token when there is no valid static one
	// (Token, TokenFile, $SLURM_JWT) and shortly before the fetched one
	// expires, and once more when slurmctld rejects a token.
	TokenSource TokenSource
	// NoEnv ignores $SLURM_JWT.
	NoEnv bool
	// Version pins the API version (V0038, V0040, V0041; "0.0.41" and
	// "v0041" are accepted too). Empty: detected from the server on first
	// use.
	Version string
	// Accounting: AccountingAuto (default) or AccountingOff.
	Accounting Accounting
	// HTTPClient does the requests; a client with sane timeouts when nil.
	// Its Transport is wrapped to count round trips.
	HTTPClient *http.Client
	// Timeout bounds one request (default 60s; a listing of many jobs is
	// slow on a busy controller).
	Timeout time.Duration
	// ReadRetries is how many times a read is retried after a transient
	// failure (default 3; negative for none). Writes are never retried.
	ReadRetries int
	// RetryBackoff is the first wait between retries, doubled each time
	// (default 250ms).
	RetryBackoff time.Duration
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// String describes the configuration without its token.
func (c Config) String() string {
	tok := "none"
	switch {
	case c.Token != "":
		tok = "set (redacted)"
	case c.TokenFile != "":
		tok = "file " + c.TokenFile
	case c.TokenSource != nil:
		tok = "command"
	}
	v := c.Version
	if v == "" {
		v = "detect"
	}
	return fmt.Sprintf("slurmrestd %s user %q token %s API %s", c.URL, c.User, tok, v)
}

// GoString is String, so that %#v does not print the token either.
func (c Config) GoString() string { return c.String() }

// Client is a slurm.Client over slurmrestd. It is safe for concurrent use.
type Client struct {
	cfg     Config
	base    string // URL without trailing slash
	http    *http.Client
	counter *CountingTransport
	tokens  *tokens
	now     func() time.Time

	mu       sync.Mutex
	api      api
	listing  *listing // last GET /jobs answer, for update_time
	noDBTill time.Time
}

var _ slurm.Client = (*Client)(nil)

// New returns a Client for cfg. It sends nothing: the API version is
// detected on first use unless pinned.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.URL))
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("rest: slurmrestd URL %q: want http://host:port or https://host:port", cfg.URL)
	}
	cfg.URL = strings.TrimRight(u.String(), "/")
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.ReadRetries == 0 {
		cfg.ReadRetries = 3
	} else if cfg.ReadRetries < 0 {
		cfg.ReadRetries = 0
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 250 * time.Millisecond
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.Version != "" {
		v, ok := normVersion(cfg.Version)
		if !ok {
			return nil, fmt.Errorf("rest: API version %q not supported (supported: %s)", cfg.Version, strings.Join(Versions, ", "))
		}
		cfg.Version = v
	}
	ts := &tokens{file: cfg.TokenFile, source: cfg.TokenSource, now: now}
	switch {
	case cfg.Token != "":
		ts.static, ts.staticFrom = cfg.Token, "configured token"
	case cfg.TokenFile != "":
		// Refuse a world-readable file now rather than on first use.
		if _, _, err := readTokenFile(cfg.TokenFile); err != nil && !errors.Is(err, ErrTokenRejected) {
			return nil, fmt.Errorf("rest: %w", err)
		}
	case !cfg.NoEnv && os.Getenv("SLURM_JWT") != "":
		ts.static, ts.staticFrom = os.Getenv("SLURM_JWT"), "$SLURM_JWT"
	case cfg.TokenSource == nil:
		return nil, fmt.Errorf("rest: no token: set SLURM_JWT, a token file or a token command (%w)", ErrTokenRejected)
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		*hc = *cfg.HTTPClient
	}
	counter := &CountingTransport{Base: hc.Transport}
	hc.Transport = counter
	// Never follow a redirect: net/http would resend X-SLURM-USER-TOKEN
	// (it strips only Authorization and Cookie) to wherever the Location
	// points. sendOnce turns the 3xx into ErrRedirect.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := &Client{cfg: cfg, base: cfg.URL, http: hc, counter: counter, tokens: ts, now: now}
	if cfg.Version != "" {
		c.api = c.newAPI(cfg.Version)
	}
	return c, nil
}

// RoundTrips returns the number of HTTP requests this client has sent.
func (c *Client) RoundTrips() int64 { return c.counter.Count() }

// normVersion accepts "v0.0.41", "0.0.41", "v0041" and "0041".
func normVersion(v string) (string, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(strings.ToLower(v)), "v")
	if n, err := strconv.Atoi(v); err == nil && len(v) == 4 {
		v = fmt.Sprintf("0.0.%d", n)
	}
	v = "v" + v
	for _, s := range Versions {
		if s == v {
			return s, true
		}
	}
	return "", false
}

func (c *Client) newAPI(v string) api {
	switch v {
	case V0041:
		return &api0041{c: c}
	case V0040:
		return &api0040{c: c}
	default:
		return &api0038{c: c}
	}
}

// user is the X-SLURM-USER-NAME to send with tok.
func (c *Client) user(tok token) string {
	if c.cfg.User != "" {
		return c.cfg.User
	}
	if tok.user != "" {
		return tok.user
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// APIVersion returns the API version in use, detecting it if needed.
func (c *Client) APIVersion(ctx context.Context) (string, error) {
	a, err := c.getAPI(ctx)
	if err != nil {
		return "", err
	}
	return a.version(), nil
}

// Ping asks slurmrestd to ping slurmctld.
func (c *Client) Ping(ctx context.Context) error {
	a, err := c.getAPI(ctx)
	if err != nil {
		return err
	}
	return c.retry(ctx, func() error { return a.ping(ctx) })
}

// getAPI returns the API in use, detecting the newest version the server
// serves: GET /slurm/VERSION/ping/ for each supported version, newest first;
// the first that is not 404 wins (even an error answer proves the plugin is
// loaded). At most three round trips, once per Client.
func (c *Client) getAPI(ctx context.Context) (api, error) {
	c.mu.Lock()
	a := c.api
	c.mu.Unlock()
	if a != nil {
		return a, nil
	}
	var tried []string
	for _, v := range Versions {
		cand := c.newAPI(v)
		var status int
		err := c.retry(ctx, func() (err error) { status, err = cand.probe(ctx); return err })
		if err != nil {
			return nil, fmt.Errorf("rest: detect API version: %w", err)
		}
		if status == http.StatusNotFound {
			tried = append(tried, v)
			continue
		}
		c.mu.Lock()
		if c.api == nil {
			c.api = cand
		}
		a = c.api
		c.mu.Unlock()
		return a, nil
	}
	return nil, fmt.Errorf("rest: %s serves none of the API versions slurmtune speaks (%s): start slurmrestd with -s openapi/%s (Slurm 22.05-23.02) or a newer Slurm, or pin Version",
		c.cfg.URL, strings.Join(tried, ", "), V0038)
}

// api is one API version's requests, mapped to slurm's types.
type api interface {
	version() string
	// probe GETs the ping endpoint and returns the HTTP status.
	probe(ctx context.Context) (int, error)
	ping(ctx context.Context) error
	submit(ctx context.Context, s *jobSpec) (string, error)
	// list GETs /slurm/vX/jobs. since is the update_time to send (0 for
	// none); notModified means nothing changed since then.
	list(ctx context.Context, since int64) (l *listing, notModified bool, err error)
	// job GETs one job; nil when the controller does not know it.
	job(ctx context.Context, id string) (*slurm.Job, error)
	// db GETs /slurmdb/vX/jobs.
	db(ctx context.Context, q dbQuery) ([]slurm.Job, error)
	cancel(ctx context.Context, id string) error
}

// listing is one answer of GET /slurm/vX/jobs.
type listing struct {
	jobs []slurm.Job
	// next is the update_time for the next request: the controller's
	// last_update where the version reports it, else the newest past
	// timestamp in the jobs (never ahead of the controller's clock).
	next int64
}

// dbQuery selects jobs in accounting: by ids, or all since a time.
type dbQuery struct {
	ids   []string
	since time.Time
}

// errNoDB marks a slurmdb request answered "no accounting here".
var errNoDB = errors.New("accounting not available through slurmrestd")

// Submit sends the script and its options in one POST. It is never retried:
// a request that went out without an answer returns slurm.ErrSubmitUncertain.
func (c *Client) Submit(ctx context.Context, req slurm.SubmitRequest) (string, error) {
	spec, err := buildSpec(req)
	if err != nil {
		return "", err
	}
	a, err := c.getAPI(ctx)
	if err != nil {
		return "", err
	}
	id, err := a.submit(ctx, spec)
	if err != nil {
		return "", err
	}
	c.invalidate()
	return id, nil
}

// CheckSubmit reports whether Submit could send req: every #SBATCH option
// of its script maps to slurmrestd's job description. It asks nothing of
// the server.
func (c *Client) CheckSubmit(req slurm.SubmitRequest) error {
	_, err := buildSpec(req)
	return err
}

// invalidate forgets the cached listing (after a change this client made,
// the next Jobs must not be answered "not modified" from stale data; the
// controller would say modified anyway, this only saves a stale edge).
func (c *Client) invalidate() {
	c.mu.Lock()
	c.listing = nil
	c.mu.Unlock()
}

// Jobs asks about ids with one request when the controller still knows them
// all (one GET /slurm/vX/jobs, or GET /slurm/vX/job/ID for a single id), plus
// one slurmdb request for those it has purged.
func (c *Client) Jobs(ctx context.Context, ids []string) ([]slurm.Job, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	a, err := c.getAPI(ctx)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(ids))
	var uniq []string
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if !want[id] {
			want[id] = true
			uniq = append(uniq, id)
		}
	}
	found := make(map[string]slurm.Job, len(uniq))
	if len(uniq) == 1 {
		var j *slurm.Job
		err := c.retry(ctx, func() (err error) { j, err = a.job(ctx, uniq[0]); return err })
		if err != nil {
			return nil, err
		}
		if j != nil && j.ID == uniq[0] {
			found[j.ID] = *j
		}
	} else {
		live, err := c.live(ctx, a)
		if err != nil {
			return nil, err
		}
		for _, j := range live {
			if want[j.ID] {
				found[j.ID] = j
			}
		}
	}
	var gone []string
	for _, id := range uniq {
		if _, ok := found[id]; !ok {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		acct, err := c.accounting(ctx, a, dbQuery{ids: gone})
		if err != nil {
			return nil, err
		}
		for _, j := range acct {
			if want[j.ID] {
				if _, ok := found[j.ID]; !ok {
					found[j.ID] = j
				}
			}
		}
	}
	return sorted(found), nil
}

// JobsByComment lists the controller's jobs and accounting's jobs of the
// last 30 days whose comment starts with prefix (two requests).
func (c *Client) JobsByComment(ctx context.Context, prefix string) ([]slurm.Job, error) {
	a, err := c.getAPI(ctx)
	if err != nil {
		return nil, err
	}
	live, err := c.live(ctx, a)
	if err != nil {
		return nil, err
	}
	found := map[string]slurm.Job{}
	for _, j := range live {
		if strings.HasPrefix(j.Comment, prefix) {
			found[j.ID] = j
		}
	}
	acct, err := c.accounting(ctx, a, dbQuery{since: c.now().Add(-30 * 24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	for _, j := range acct {
		if !strings.HasPrefix(j.Comment, prefix) {
			continue
		}
		if cur, ok := found[j.ID]; ok {
			j = merge(cur, j)
		}
		found[j.ID] = j
	}
	return sorted(found), nil
}

// live returns the controller's jobs: one GET /slurm/vX/jobs with the
// previous answer's update_time, so an unchanged queue costs no job data.
func (c *Client) live(ctx context.Context, a api) ([]slurm.Job, error) {
	c.mu.Lock()
	prev := c.listing
	c.mu.Unlock()
	var since int64
	if prev != nil {
		since = prev.next
	}
	var l *listing
	var notModified bool
	err := c.retry(ctx, func() (err error) { l, notModified, err = a.list(ctx, since); return err })
	if err != nil {
		return nil, err
	}
	if notModified {
		if prev != nil {
			return refreshElapsed(prev.jobs, c.now()), nil
		}
		// Cannot happen (no update_time sent); ask again in full.
		if err := c.retry(ctx, func() (err error) { l, _, err = a.list(ctx, 0); return err }); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	c.listing = l
	c.mu.Unlock()
	return l.jobs, nil
}

// accounting asks slurmdb, unless it said recently it is not there.
func (c *Client) accounting(ctx context.Context, a api, q dbQuery) ([]slurm.Job, error) {
	if c.cfg.Accounting == AccountingOff {
		return nil, nil
	}
	c.mu.Lock()
	skip := c.now().Before(c.noDBTill)
	c.mu.Unlock()
	if skip {
		return nil, nil
	}
	var jobs []slurm.Job
	err := c.retry(ctx, func() (err error) { jobs, err = a.db(ctx, q); return err })
	if errors.Is(err, errNoDB) {
		c.mu.Lock()
		c.noDBTill = c.now().Add(5 * time.Minute)
		c.mu.Unlock()
		return nil, nil
	}
	return jobs, err
}

// Cancel sends one DELETE /slurm/vX/job/ID per job, a few at a time. Jobs
// that already ended or that the controller no longer knows are not errors.
func (c *Client) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	a, err := c.getAPI(ctx)
	if err != nil {
		return err
	}
	defer c.invalidate()
	sem := make(chan struct{}, 4)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = c.retry(ctx, func() error { return a.cancel(ctx, id) })
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// merge keeps the controller's view of a job it still knows and fills in
// what only accounting has (as cmdline does).
func merge(live, acct slurm.Job) slurm.Job {
	if !live.State.Terminal() {
		return live
	}
	if acct.Reason == "" {
		acct.Reason = live.Reason
	}
	if acct.Nodes == "" {
		acct.Nodes = live.Nodes
	}
	if live.Restarts > acct.Restarts {
		acct.Restarts = live.Restarts
	}
	if acct.Comment == "" {
		acct.Comment = live.Comment
	}
	return acct
}

// refreshElapsed copies jobs with the elapsed time of running ones brought
// up to now (a "not modified" answer reuses the previous listing).
func refreshElapsed(jobs []slurm.Job, now time.Time) []slurm.Job {
	out := make([]slurm.Job, len(jobs))
	copy(out, jobs)
	for i := range out {
		if !out[i].State.Terminal() {
			out[i].Elapsed = elapsed(out[i].State, out[i].Start, out[i].End, now)
		}
	}
	return out
}

func sorted(m map[string]slurm.Job) []slurm.Job {
	out := make([]slurm.Job, 0, len(m))
	for _, j := range m {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool {
		x, y := out[a].ID, out[b].ID
		if len(x) != len(y) {
			return len(x) < len(y)
		}
		return x < y
	})
	return out
}

// jobID validates a job id before it goes into a URL path.
func jobID(id string) (string, error) {
	if n, err := strconv.ParseUint(id, 10, 32); err != nil || n == 0 {
		return "", fmt.Errorf("rest: job id %q is not a Slurm job id", id)
	}
	return id, nil
}

// unixTime turns Slurm's seconds (0 = unset) into a time.
func unixTime(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// elapsed computes a job's run time as squeue does: end (or now) - start.
func elapsed(state slurm.State, start, end, now time.Time) time.Duration {
	if start.IsZero() || state == slurm.StatePending {
		return 0
	}
	stop := end
	if !state.Terminal() || stop.IsZero() || stop.Before(start) {
		stop = now
	}
	if d := stop.Sub(start); d > 0 {
		return d.Truncate(time.Second)
	}
	return 0
}

func cleanReason(s string) string {
	if s == "None" || s == "(null)" {
		return ""
	}
	return s
}
