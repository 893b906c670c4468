package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRestd is an httptest slurmrestd for one API version: it checks every
// request against that version's document (failing the test on a request
// the real server would not accept) and answers with the fixtures.
type fakeRestd struct {
	t       testing.TB
	version string
	spec    *spec
	srv     *httptest.Server

	mu     sync.Mutex
	log    []string // "METHOD /path?query"
	bodies map[string][]byte
	// override answers a request instead of the fixtures when it returns a
	// status (> 0).
	override func(r *http.Request, body []byte) (int, []byte)
	// redirect, when it returns a URL, answers the request with a 307 to it.
	redirect func(r *http.Request) string
	// listing replaces the jobs listing fixture.
	listing []byte
	// validate is false for benchmarks (validation dominates the time).
	validate bool
}

func newFakeRestd(t testing.TB, version string) *fakeRestd {
	f := &fakeRestd{t: t, version: version, spec: loadSpec(t, version), bodies: map[string][]byte{}, validate: true}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRestd) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func (f *fakeRestd) body(method, pathPrefix string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, b := range f.bodies {
		if strings.HasPrefix(k, method+" "+pathPrefix) {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				f.t.Fatalf("request body of %s: %v", k, err)
			}
			return m
		}
	}
	f.t.Fatalf("no %s %s request", method, pathPrefix)
	return nil
}

func (f *fakeRestd) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	key := r.Method + " " + r.URL.RequestURI()
	f.mu.Lock()
	f.log = append(f.log, key)
	f.bodies[key] = body
	override, listing, redirect := f.override, f.listing, f.redirect
	f.mu.Unlock()

	if redirect != nil {
		if to := redirect(r); to != "" {
			http.Redirect(w, r, to, http.StatusTemporaryRedirect)
			return
		}
	}

	if override != nil {
		if status, out := override(r, body); status > 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(out) // a client that hung up sees that itself
			return
		}
	}
	status, file := f.route(r)
	if file == "" {
		http.Error(w, "Unable find requested URL. Please view /openapi/v3 for API reference.", status)
		return
	}
	if f.validate {
		if _, err := f.spec.validateRequest(r); err != nil {
			f.t.Errorf("fake slurmrestd %s: %v", f.version, err)
			http.Error(w, "invalid request", http.StatusBadRequest)
			return
		}
	}
	var out []byte
	if file == "LISTING" {
		out = listing
	} else {
		out = readFixture(f.t, f.version, file)
	}
	if status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out) // a client that hung up sees that itself
}

// lastUpdate is last_update in the v0.0.40+ listing fixtures.
const lastUpdate = "1795700060"

// route picks the fixture that answers r.
func (f *fakeRestd) route(r *http.Request) (int, string) {
	v := f.version
	p := r.URL.Path
	q := r.URL.Query()
	listingFile := func(def string) string {
		if f.listing != nil {
			return "LISTING"
		}
		return def
	}
	switch {
	case r.Method == "GET" && (p == "/slurm/"+v+"/ping" || p == "/slurm/"+v+"/ping/"):
		return 200, "ping.json"
	case r.Method == "POST" && p == "/slurm/"+v+"/job/submit":
		if v == V0038 {
			return 200, "submit-held.json"
		}
		return 200, "submit.json"
	case r.Method == "GET" && (p == "/slurm/"+v+"/jobs" || p == "/slurm/"+v+"/jobs/"):
		if ut := q.Get("update_time"); ut != "" {
			if v == V0038 {
				return http.StatusNotModified, "ping.json"
			}
			if ut == lastUpdate {
				return 200, "jobs-nochange.json"
			}
		}
		if v == V0038 {
			return 200, listingFile("jobs-pending.json")
		}
		return 200, listingFile("jobs.json")
	case r.Method == "GET" && strings.HasPrefix(p, "/slurm/"+v+"/job/"):
		id := strings.TrimPrefix(p, "/slurm/"+v+"/job/")
		switch {
		case v == V0038 && id == "5":
			return 200, "job-dep-pending.json"
		case v != V0038 && id == "103":
			return 200, "job-103.json"
		}
		return 500, "job-invalid.json"
	case r.Method == "DELETE" && strings.HasPrefix(p, "/slurm/"+v+"/job/"):
		if v == V0038 {
			if strings.HasSuffix(p, "/999999") {
				return 500, "cancel-invalid.json"
			}
			return 200, "cancel-held.json"
		}
		if strings.HasSuffix(p, "/101") {
			return 200, "cancel-done.json"
		}
		return 200, "cancel.json"
	case r.Method == "GET" && (p == "/slurmdb/"+v+"/jobs" || p == "/slurmdb/"+v+"/jobs/"):
		return 200, "db-jobs.json"
	}
	return 404, ""
}

// testToken is a syntactically valid JWT (never verified) for user alice,
// expiring far in the future.
func testToken(exp time.Time) string {
	return makeJWT(fmt.Sprintf(`{"exp":%d,"iat":%d,"sun":"alice"}`, exp.Unix(), exp.Add(-time.Hour).Unix()))
}

func makeJWT(claims string) string {
	enc := func(s string) string {
		return strings.TrimRight(b64url(s), "=")
	}
	return enc(`{"alg":"HS256","typ":"JWT"}`) + "." + enc(claims) + ".c2lnbmF0dXJlLW5vdC1jaGVja2Vk"
}

func (f *fakeRestd) client(t testing.TB, mod func(*Config)) *Client {
	cfg := Config{URL: f.srv.URL, Token: testToken(time.Now().Add(24 * time.Hour)), Version: f.version,
		RetryBackoff: time.Millisecond, NoEnv: true}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
