package rest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRedirectNeverCarriesToken: a slurmrestd (or something posing as one)
// answering 307 to a second loopback server must not hand that server the
// token, on any request path of any API version (version detection, ping,
// listing, slurmdb, submit, cancel). The client refuses the redirect with a
// clear error and never contacts the second server.
func TestRedirectNeverCarriesToken(t *testing.T) {
	tok := testToken(time.Now().Add(time.Hour))
	secretPart := strings.Split(tok, ".")[1]

	var mu sync.Mutex
	var leaked []string
	reached := 0
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		reached++
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, secretPart) {
					leaked = append(leaked, r.Method+" "+r.URL.Path+" "+k)
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"errors":[],"pings":[{"hostname":"x","ping":"UP"}],"jobs":[]}`))
	}))
	defer other.Close()
	// "localhost" against the first server's 127.0.0.1: another host by name.
	target := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)

	ctx := context.Background()
	type call struct {
		name   string
		prefix string // paths the first server redirects
		do     func(c *Client) error
	}
	calls := []call{
		{"detect", "/", func(c *Client) error { _, err := c.APIVersion(ctx); return err }},
		{"ping", "/", func(c *Client) error { return c.Ping(ctx) }},
		{"jobs", "/", func(c *Client) error { _, err := c.Jobs(ctx, []string{"1", "2"}); return err }},
		{"submit", "/", func(c *Client) error { _, err := c.Submit(ctx, testRequest()); return err }},
		{"cancel", "/", func(c *Client) error { return c.Cancel(ctx, []string{"1"}) }},
		// The listing is answered; only slurmdb redirects.
		{"slurmdb", "/slurmdb/", func(c *Client) error { _, err := c.JobsByComment(ctx, "slurmtune:r1:"); return err }},
	}
	for _, v := range Versions {
		for _, cl := range calls {
			t.Run(v+"/"+cl.name, func(t *testing.T) {
				f := newFakeRestd(t, v)
				f.redirect = func(r *http.Request) string {
					if strings.HasPrefix(r.URL.Path, cl.prefix) {
						return target + r.URL.RequestURI()
					}
					return ""
				}
				c := f.client(t, func(cfg *Config) {
					cfg.Token = tok
					cfg.ReadRetries = -1
					if cl.name == "detect" {
						cfg.Version = ""
					}
				})
				err := cl.do(c)
				if err == nil {
					t.Fatal("a redirect to another host was followed without error")
				}
				if !errors.Is(err, ErrRedirect) || !strings.Contains(err.Error(), "localhost") || strings.Contains(err.Error(), secretPart) {
					t.Errorf("error %q: want ErrRedirect naming the target, without the token", err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
			})
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Errorf("the second server received the token: %v", leaked)
	}
	if reached > 0 {
		t.Errorf("the second server was contacted %d times: redirects must not be followed", reached)
	}
}
