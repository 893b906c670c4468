package rest

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bigListing makes the fake answer its jobs listing with n jobs (copies of
// the fixture's first job with ids 1..n) and returns their ids.
func bigListing(t testing.TB, f *fakeRestd, n int) []string {
	t.Helper()
	file := "jobs.json"
	if f.version == V0038 {
		file = "jobs-pending.json"
	}
	var doc map[string]any
	if err := json.Unmarshal(readFixture(t, f.version, file), &doc); err != nil {
		t.Fatal(err)
	}
	tmpl := doc["jobs"].([]any)[0].(map[string]any)
	jobs := make([]any, n)
	ids := make([]string, n)
	for i := range jobs {
		j := map[string]any{}
		for k, v := range tmpl {
			j[k] = v
		}
		j["job_id"] = i + 1
		j["comment"] = "slurmtune:bench:" + strconv.Itoa(i+1)
		jobs[i] = j
		ids[i] = strconv.Itoa(i + 1)
	}
	doc["jobs"] = jobs
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.listing = b
	f.mu.Unlock()
	return ids
}

// BenchmarkRefresh1000 measures one status refresh of 1,000 tracked job ids.
// With SLURMTUNE_REST_URL and SLURM_JWT set it runs against that slurmrestd
// (the ids need not exist; accounting is off so that the round trips are the
// listing's); otherwise against an httptest server replaying a recorded
// 22.05 listing grown to 1,000 jobs. It reports round trips per refresh,
// which must be 1.
func BenchmarkRefresh1000(b *testing.B) {
	ctx := context.Background()
	var c *Client
	ids := make([]string, 1000)
	if url, tok := os.Getenv("SLURMTUNE_REST_URL"), os.Getenv("SLURM_JWT"); url != "" && tok != "" {
		var err error
		c, err = New(Config{URL: url, Token: tok, User: os.Getenv("SLURMTUNE_REST_USER"), Accounting: AccountingOff})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.APIVersion(ctx); err != nil {
			b.Fatal(err)
		}
		for i := range ids {
			ids[i] = strconv.Itoa(1_000_000 + i)
		}
		b.Logf("live slurmrestd at %s", url)
	} else {
		f := newFakeRestd(b, V0038)
		f.validate = false
		ids = bigListing(b, f, 1000)
		// A fresh listing each time: the controller's queue keeps changing.
		f.override = nil
		c = f.client(b, nil)
		c.cfg.Accounting = AccountingOff
	}
	before := c.RoundTrips()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.invalidate() // measure the full listing, not the 304 shortcut
		if _, err := c.Jobs(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	rt := float64(c.RoundTrips()-before) / float64(b.N)
	b.ReportMetric(rt, "roundtrips/refresh")
	if rt != 1 {
		b.Errorf("%.2f round trips per refresh, want 1", rt)
	}
}

// TestLiveBenchmarkShape keeps the benchmark compiling and quick to sanity
// check in plain test runs.
func TestBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if os.Getenv("SLURMTUNE_REST_URL") != "" {
		t.Skip("live: run the benchmark itself")
	}
	res := testing.Benchmark(BenchmarkRefresh1000)
	if res.N == 0 {
		t.Fatal("benchmark did not run")
	}
	if rt := res.Extra["roundtrips/refresh"]; rt != 1 {
		t.Errorf("round trips per refresh %v", rt)
	}
	t.Logf("refresh of 1000 ids: %v per op, %s", time.Duration(res.NsPerOp()), strings.TrimSpace(res.MemString()))
}
