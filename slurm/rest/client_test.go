package rest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

func b64url(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

const testScript = `#!/bin/bash
#SBATCH --job-name=tiny
#SBATCH --output=/scratch/logs/tiny-%j.out
#SBATCH --open-mode=append
#SBATCH --nodes=2 --ntasks-per-node=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=1:30:00
#SBATCH --gres=gpu:4
#SBATCH --mail-type=END,TIME_LIMIT_90 --mail-user=alice@example.org
set -e
#SBATCH --job-name=ignored-after-first-command
hostname
`

func testRequest() slurm.SubmitRequest {
	return slurm.SubmitRequest{
		Script:     []byte(testScript),
		ScriptPath: "/scratch/runs/r1/train.sbatch",
		WorkDir:    "/scratch/runs/r1",
		AfterOK:    []string{"101", "102"},
		Comment:    "slurmtune:r1:train",
		Env:        map[string]string{"FOO": "bar"},
		ExtraArgs:  []string{"--error=/scratch/logs/tiny.err"},
	}
}

// TestSubmitRequestMatchesDocument submits through every version and checks
// the body the fake slurmrestd received: it must validate against the
// version's document (the fake fails the test otherwise) and carry what the
// request and the script's #SBATCH lines say.
func TestSubmitRequestMatchesDocument(t *testing.T) {
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			f := newFakeRestd(t, v)
			c := f.client(t, nil)
			id, err := c.Submit(context.Background(), testRequest())
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{V0038: "2", V0040: "108", V0041: "108"}[v]
			if id != want {
				t.Errorf("job id %q, want %q", id, want)
			}
			if n := c.RoundTrips(); n != 1 {
				t.Errorf("%d round trips for a submit, want 1", n)
			}
			body := f.body("POST", "/slurm/"+v+"/job/submit")
			job, _ := body["job"].(map[string]any)
			script := body["script"]
			if v != V0038 {
				script = job["script"]
			}
			if script != testScript {
				t.Errorf("script not sent as is: %v", script)
			}
			check := func(key string, want any) {
				t.Helper()
				if got := job[key]; !reflect.DeepEqual(got, want) {
					t.Errorf("job.%s = %#v, want %#v", key, got, want)
				}
			}
			check("name", "tiny")
			check("comment", "slurmtune:r1:train")
			check("current_working_directory", "/scratch/runs/r1")
			check("standard_output", "/scratch/logs/tiny-%j.out")
			check("standard_error", "/scratch/logs/tiny.err")
			check("dependency", "afterok:101:102")
			check("tasks_per_node", float64(1))
			check("cpus_per_task", float64(2))
			if v == V0038 {
				check("environment", map[string]any{"FOO": "bar", "PATH": defaultPath})
				check("kill_on_invalid_dependency", true)
				check("nodes", "2")
				check("memory_per_node", float64(4096))
				check("time_limit", float64(90))
				check("gres", "gpu:4")
				check("open_mode", "append")
				check("mail_type", "END,TIME_LIMIT_90")
			} else {
				check("environment", []any{"FOO=bar", "PATH=" + defaultPath})
				check("flags", []any{"KILL_INVALID_DEPENDENCY"})
				check("minimum_nodes", float64(2))
				check("maximum_nodes", float64(2))
				check("memory_per_node", map[string]any{"set": true, "number": float64(4096)})
				check("time_limit", map[string]any{"set": true, "number": float64(90)})
				check("tres_per_node", "gres/gpu:4")
				check("open_mode", []any{"APPEND"})
				check("mail_type", []any{"END", "TIME=90%"})
			}
			check("mail_user", "alice@example.org")
		})
	}
}

func byID(jobs []slurm.Job) map[string]slurm.Job {
	m := map[string]slurm.Job{}
	for _, j := range jobs {
		m[j.ID] = j
	}
	return m
}

// TestJobsMapping reads the v0.0.40/v0.0.41 fixtures: one listing for the
// live jobs, one slurmdb request for the purged ones, and update_time on the
// next refresh.
func TestJobsMapping(t *testing.T) {
	for _, v := range []string{V0040, V0041} {
		t.Run(v, func(t *testing.T) {
			f := newFakeRestd(t, v)
			c := f.client(t, nil)
			ctx := context.Background()
			ids := []string{"101", "102", "103", "104", "105", "106", "107", "90", "91", "999"}
			jobs, err := c.Jobs(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			if n := c.RoundTrips(); n != 2 {
				t.Errorf("%d round trips, want 2 (listing + slurmdb): %v", n, f.requests())
			}
			m := byID(jobs)
			if len(m) != 9 {
				t.Errorf("got %d jobs, want 9 (999 is unknown): %v", len(m), jobs)
			}
			start := time.Unix(1795700010, 0)
			want := map[string]slurm.Job{
				"101": {ID: "101", Name: "prep", State: slurm.StateCompleted, Nodes: "n1", Comment: "slurmtune:r1:prep",
					Start: time.Unix(1795700002, 0), End: time.Unix(1795700009, 0), Elapsed: 7 * time.Second, Source: sourceController},
				"103": {ID: "103", Name: "eval", State: slurm.StatePending, Reason: "Dependency", Comment: "slurmtune:r1:eval", Source: sourceController},
				"104": {ID: "104", Name: "gate", State: slurm.StateFailed, Reason: "NonZeroExitCode", ExitCode: 3, Nodes: "n2",
					Comment: "slurmtune:r2:eval", Start: time.Unix(1795700003, 0), End: time.Unix(1795700005, 0), Elapsed: 2 * time.Second, Source: sourceController},
				"105": {ID: "105", Name: "deploy", State: slurm.StateCancelled, Signal: 9, Nodes: "n2", Comment: "slurmtune:r2:deploy",
					Start: time.Unix(1795700004, 0), End: time.Unix(1795700006, 0), Elapsed: 2 * time.Second, Source: sourceController},
				"106": {ID: "106", Name: "train", State: slurm.StateRequeued, Reason: "BeginTime", Restarts: 1, Comment: "slurmtune:r3:train", Source: sourceController},
				"90": {ID: "90", Name: "prep", State: slurm.StateCompleted, Nodes: "n1", Comment: "slurmtune:r0:prep",
					Start: time.Unix(1795699100, 0), End: time.Unix(1795699160, 0), Elapsed: 60 * time.Second, Source: sourceAccounting},
				"91": {ID: "91", Name: "train", State: slurm.StateFailed, ExitCode: 2, Nodes: "n1", Comment: "slurmtune:r0:train",
					Start: time.Unix(1795699200, 0), End: time.Unix(1795699300, 0), Elapsed: 100 * time.Second, Source: sourceAccounting},
			}
			for id, w := range want {
				if got := m[id]; !reflect.DeepEqual(got, w) {
					t.Errorf("job %s:\n got %+v\nwant %+v", id, got, w)
				}
			}
			if j := m["102"]; j.State != slurm.StateRunning || j.Start != start || j.End != (time.Time{}) || j.Elapsed <= 0 {
				t.Errorf("running job 102: %+v", j)
			}
			if j := m["107"]; j.State != slurm.StateCompleting || j.Signal != 15 {
				t.Errorf("completing job 107: %+v", j)
			}

			// Second refresh: update_time=last_update, answered "no change".
			live := []string{"101", "102", "103"}
			before := c.RoundTrips()
			again, err := c.Jobs(ctx, live)
			if err != nil {
				t.Fatal(err)
			}
			if n := c.RoundTrips() - before; n != 1 {
				t.Errorf("%d round trips for an all-live refresh, want 1", n)
			}
			reqs := f.requests()
			if last := reqs[len(reqs)-1]; !strings.Contains(last, "update_time="+lastUpdate) {
				t.Errorf("second listing sent without update_time: %s", last)
			}
			if len(again) != 3 || again[0].State != slurm.StateCompleted {
				t.Errorf("cached answer: %+v", again)
			}
		})
	}
}

// TestJobsV0038Recorded reads answers recorded from the dev cluster's
// Slurm 22.05 (v0.0.38 exit codes are wait statuses, the listing answers 304
// to an unchanged update_time).
func TestJobsV0038Recorded(t *testing.T) {
	f := newFakeRestd(t, V0038)
	c := f.client(t, nil)
	ctx := context.Background()
	jobs, err := c.Jobs(ctx, []string{"2", "5", "6"})
	if err != nil {
		t.Fatal(err)
	}
	m := byID(jobs)
	if j := m["2"]; j.State != slurm.StatePending || j.Reason != "JobHeldUser" || j.Comment != "slurmtune-rec held" {
		t.Errorf("held job: %+v", j)
	}
	if j := m["5"]; j.State != slurm.StatePending || j.Reason != "Dependency" || j.Comment != "slurmtune-rec dep" {
		t.Errorf("dependent job: %+v", j)
	}
	if j := m["6"]; j.State != slurm.StateFailed || j.ExitCode != 3 || j.Reason != "NonZeroExitCode" || j.Nodes != "st-node1" || j.Start.IsZero() {
		t.Errorf("exit-3 job: %+v", j)
	}
	if n := c.RoundTrips(); n != 1 {
		t.Errorf("%d round trips, want 1", n)
	}
	// 304 Not Modified: the cached listing answers.
	again, err := c.Jobs(ctx, []string{"2", "5", "6"})
	if err != nil || len(again) != 3 {
		t.Fatalf("after 304: %v %v", again, err)
	}
	reqs := f.requests()
	if !strings.Contains(reqs[len(reqs)-1], "update_time=") {
		t.Errorf("no update_time on the second listing: %v", reqs)
	}
	// Accounting: purged ids, the comma escaped as 22.05 needs.
	acct, err := c.Jobs(ctx, []string{"2", "5", "77777", "77778"})
	if err != nil {
		t.Fatal(err)
	}
	reqs = f.requests()
	if last := reqs[len(reqs)-1]; !strings.Contains(last, "step=77777%2C77778") {
		t.Errorf("slurmdb request %q: want step=77777%%2C77778", last)
	}
	_ = acct
	// Single id: GET /job/ID, an unknown one falls through to slurmdb.
	one, err := c.Jobs(ctx, []string{"5"})
	if err != nil || len(one) != 1 || one[0].ID != "5" || one[0].State != slurm.StateCompleted {
		t.Errorf("single job: %v %v", one, err)
	}
}

func TestJobsByComment(t *testing.T) {
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			f := newFakeRestd(t, v)
			c := f.client(t, nil)
			prefix := map[string]string{V0038: "slurmtune-rec", V0040: "slurmtune:r1:", V0041: "slurmtune:r1:"}[v]
			jobs, err := c.JobsByComment(context.Background(), prefix)
			if err != nil {
				t.Fatal(err)
			}
			if n := c.RoundTrips(); n != 2 {
				t.Errorf("%d round trips, want 2", n)
			}
			if len(jobs) == 0 {
				t.Fatal("no jobs found")
			}
			for _, j := range jobs {
				if !strings.HasPrefix(j.Comment, prefix) {
					t.Errorf("job %s comment %q", j.ID, j.Comment)
				}
			}
			if v != V0038 {
				got := []string{}
				for _, j := range jobs {
					got = append(got, j.ID+"/"+j.Source)
				}
				// 101 is in both: the accounting record wins for a finished job.
				if want := []string{"101/" + sourceAccounting, "102/" + sourceController, "103/" + sourceController}; !reflect.DeepEqual(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
				reqs := f.requests()
				if !strings.Contains(reqs[len(reqs)-1], "start_time=") {
					t.Errorf("slurmdb asked without a start time: %v", reqs)
				}
			}
		})
	}
}

func TestCancel(t *testing.T) {
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			f := newFakeRestd(t, v)
			c := f.client(t, nil)
			ids := []string{"103", "101"}
			if v == V0038 {
				ids = []string{"2", "999999"} // 999999: Invalid job id, not an error
			}
			if err := c.Cancel(context.Background(), ids); err != nil {
				t.Fatal(err)
			}
			if n := c.RoundTrips(); n != int64(len(ids)) {
				t.Errorf("%d round trips, want one per job", n)
			}
		})
	}
}

// TestDetectVersion: a 22.05 slurmrestd answers 404 for the newer ping
// paths; the client settles on v0.0.38 in three requests, once.
func TestDetectVersion(t *testing.T) {
	f := newFakeRestd(t, V0038)
	c := f.client(t, func(cfg *Config) { cfg.Version = "" })
	v, err := c.APIVersion(context.Background())
	if err != nil || v != V0038 {
		t.Fatalf("detected %q, %v", v, err)
	}
	want := []string{"GET /slurm/v0.0.41/ping/", "GET /slurm/v0.0.40/ping/", "GET /slurm/v0.0.38/ping"}
	if got := f.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("probes %v, want %v", got, want)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Error(err)
	}
	if n := c.RoundTrips(); n != 4 {
		t.Errorf("%d round trips, want 4 (3 probes once, 1 ping)", n)
	}

	f41 := newFakeRestd(t, V0041)
	c41 := f41.client(t, func(cfg *Config) { cfg.Version = "" })
	if v, err := c41.APIVersion(context.Background()); err != nil || v != V0041 {
		t.Errorf("detected %q, %v", v, err)
	}
	for in, want := range map[string]string{"v0.0.40": V0040, "0.0.41": V0041, "v0038": V0038, "0040": V0040} {
		if got, ok := normVersion(in); !ok || got != want {
			t.Errorf("normVersion(%q) = %q", in, got)
		}
	}
	if _, err := New(Config{URL: "http://x", Token: testToken(time.Now().Add(time.Hour)), Version: "v0.0.39"}); err == nil {
		t.Error("unsupported pinned version accepted")
	}
}

func TestRoundTripsThousandLiveJobs(t *testing.T) {
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			f := newFakeRestd(t, v)
			ids := bigListing(t, f, 1000)
			c := f.client(t, nil)
			for i := 0; i < 3; i++ {
				before := c.RoundTrips()
				jobs, err := c.Jobs(context.Background(), ids)
				if err != nil {
					t.Fatal(err)
				}
				if len(jobs) != 1000 {
					t.Fatalf("got %d jobs", len(jobs))
				}
				if n := c.RoundTrips() - before; n != 1 {
					t.Errorf("refresh %d: %d round trips, want 1", i, n)
				}
			}
		})
	}
}

// --- errors ---

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tok := testToken(time.Now().Add(time.Hour))
	c, err := New(Config{URL: "http://" + addr, Token: tok, Version: V0041, RetryBackoff: time.Millisecond, ReadRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Jobs(context.Background(), []string{"1", "2"})
	if !errors.Is(err, slurm.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), addr) {
		t.Errorf("message: %q", err)
	}
	if strings.Contains(err.Error(), tok) {
		t.Error("token in error message")
	}
	if n := c.RoundTrips(); n != 3 {
		t.Errorf("%d attempts, want 3 (1 + 2 retries)", n)
	}
	// A submit to a server that is not there: unavailable, not uncertain
	// (nothing was sent), and not retried.
	before := c.RoundTrips()
	_, err = c.Submit(context.Background(), testRequest())
	if !errors.Is(err, slurm.ErrUnavailable) || errors.Is(err, slurm.ErrSubmitUncertain) {
		t.Errorf("submit: %v", err)
	}
	if n := c.RoundTrips() - before; n != 1 {
		t.Errorf("submit tried %d times", n)
	}
}

func TestSubmitAnswerLost(t *testing.T) {
	f := newFakeRestd(t, V0041)
	f.override = func(r *http.Request, body []byte) (int, []byte) {
		if r.Method == "POST" {
			// The request arrived; the connection dies before the answer.
			panic(http.ErrAbortHandler)
		}
		return 0, nil
	}
	c := f.client(t, nil)
	_, err := c.Submit(context.Background(), testRequest())
	if !errors.Is(err, slurm.ErrSubmitUncertain) {
		t.Fatalf("want ErrSubmitUncertain, got %v", err)
	}
	if n := c.RoundTrips(); n != 1 {
		t.Errorf("submit sent %d times, want 1 (never retried)", n)
	}
}

func TestTokenRejected(t *testing.T) {
	tok := testToken(time.Now().Add(time.Hour))
	cases := map[string]func(r *http.Request, body []byte) (int, []byte){
		"401": func(*http.Request, []byte) (int, []byte) { return 401, []byte("Authentication failure") },
		"22.05 listing": func(r *http.Request, _ []byte) (int, []byte) {
			return 500, readFixture(t, V0038, "jobs-badtoken.json")
		},
		"22.05 slurmdb": func(r *http.Request, _ []byte) (int, []byte) {
			return 500, readFixture(t, V0038, "db-badtoken.json")
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFakeRestd(t, V0038)
			f.override = h
			c := f.client(t, func(cfg *Config) { cfg.Token = tok })
			_, err := c.Jobs(context.Background(), []string{"1", "2"})
			if !errors.Is(err, ErrTokenRejected) {
				t.Fatalf("want ErrTokenRejected, got %v", err)
			}
			if !strings.Contains(err.Error(), "token rejected or expired: refresh it with `scontrol token` or set SLURM_JWT") {
				t.Errorf("message %q", err)
			}
			if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), strings.Split(tok, ".")[1]) {
				t.Error("token in error message")
			}
			if n := c.RoundTrips(); n != 1 {
				t.Errorf("%d round trips: a rejected token is not retried without a source", n)
			}
		})
	}
}

func TestExpiredTokenNotSent(t *testing.T) {
	f := newFakeRestd(t, V0041)
	tok := testToken(time.Now().Add(-time.Minute))
	c := f.client(t, func(cfg *Config) { cfg.Token = tok })
	_, err := c.Jobs(context.Background(), []string{"1", "2"})
	if !errors.Is(err, ErrTokenRejected) || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), tok) {
		t.Error("token in error message")
	}
	if c.RoundTrips() != 0 {
		t.Error("an expired token was sent")
	}
}

func TestTokenSourceRefresh(t *testing.T) {
	f := newFakeRestd(t, V0041)
	now := time.Now()
	var calls atomic.Int32
	var rejected atomic.Bool
	f.override = func(r *http.Request, _ []byte) (int, []byte) {
		if rejected.Load() && r.Header.Get("X-SLURM-USER-TOKEN") != testToken(now.Add(3*time.Hour)) {
			return 401, []byte("Authentication failure")
		}
		return 0, nil
	}
	c := f.client(t, func(cfg *Config) {
		cfg.Token = ""
		cfg.Now = func() time.Time { return now }
		cfg.TokenSource = func(context.Context) (string, error) {
			n := calls.Add(1)
			return "SLURM_JWT=" + testToken(now.Add(time.Duration(n)*time.Hour)) + "\n", nil
		}
	})
	ctx := context.Background()
	if _, err := c.Jobs(ctx, []string{"101", "102"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Jobs(ctx, []string{"101", "102"}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("source called %d times for a valid token, want 1", calls.Load())
	}
	// 30 s before exp (inside the margin): fetched again before sending.
	now = now.Add(time.Hour - 30*time.Second)
	if _, err := c.Jobs(ctx, []string{"101", "102"}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("source called %d times, want 2 (refresh before expiry)", calls.Load())
	}
	// The server rejects the current token: one new fetch, one retry.
	rejected.Store(true)
	if _, err := c.Jobs(ctx, []string{"101", "102"}); err != nil {
		t.Fatalf("after rejection: %v", err)
	}
	if calls.Load() != 3 {
		t.Errorf("source called %d times, want 3", calls.Load())
	}
	if got := f.requests(); len(got) == 0 {
		t.Fatal("no requests")
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "jwt")
	tok := testToken(time.Now().Add(time.Hour))
	if err := os.WriteFile(p, []byte("SLURM_JWT="+tok+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{URL: "http://127.0.0.1:1", TokenFile: p, NoEnv: true})
	if err == nil || !strings.Contains(err.Error(), "readable or writable by group or others") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v", err)
	}
	if strings.Contains(err.Error(), tok) {
		t.Error("token in error message")
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeRestd(t, V0041)
	var seen atomic.Value
	f.override = func(r *http.Request, _ []byte) (int, []byte) {
		seen.Store(r.Header.Get("X-SLURM-USER-TOKEN") + "|" + r.Header.Get("X-SLURM-USER-NAME"))
		return 0, nil
	}
	c := f.client(t, func(cfg *Config) { cfg.Token = ""; cfg.TokenFile = p })
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := seen.Load(); got != tok+"|alice" {
		t.Errorf("headers %v, want the file's token and the token's user", got)
	}
}

func TestParseToken(t *testing.T) {
	exp := time.Unix(1795821387, 0)
	tk, err := parseToken("  SLURM_JWT=" + testToken(exp) + "\n")
	if err != nil || !tk.exp.Equal(exp) || tk.user != "alice" {
		t.Errorf("%+v %v", tk, err)
	}
	for _, bad := range []string{"", "abc", "a.b.c", makeJWT(`{"exp":"soon"}`)} {
		if _, err := parseToken(bad); !errors.Is(err, ErrTokenRejected) {
			t.Errorf("parseToken(%q): %v", bad, err)
		}
	}
}

func TestReadsRetriedOnTransientErrors(t *testing.T) {
	f := newFakeRestd(t, V0041)
	var n atomic.Int32
	f.override = func(r *http.Request, _ []byte) (int, []byte) {
		if n.Add(1) <= 2 {
			return 503, []byte("busy")
		}
		return 0, nil
	}
	c := f.client(t, nil)
	if _, err := c.Jobs(context.Background(), []string{"101", "102"}); err != nil {
		t.Fatalf("read not retried: %v", err)
	}
	if c.RoundTrips() != 3 {
		t.Errorf("%d round trips, want 3", c.RoundTrips())
	}
	// slurmrestd up, slurmctld down: retried, then ErrUnavailable.
	f.override = func(r *http.Request, _ []byte) (int, []byte) {
		return 500, []byte(`{"errors":[{"error_number":1800,"error":"Unable to contact slurm controller (connect failure)","source":"slurm_load_jobs()"}],"jobs":[],"last_backfill":{},"last_update":{}}`)
	}
	before := c.RoundTrips()
	_, err := c.Jobs(context.Background(), []string{"101", "102"})
	if !errors.Is(err, slurm.ErrUnavailable) || !strings.Contains(err.Error(), "cannot reach slurmctld") {
		t.Errorf("got %v", err)
	}
	if got := c.RoundTrips() - before; got != 4 {
		t.Errorf("%d attempts, want 4", got)
	}
}

func TestSubmitRejected(t *testing.T) {
	for _, v := range Versions {
		f := newFakeRestd(t, v)
		file := map[string]string{V0038: "submit-badpart.json", V0040: "submit-badpart.json", V0041: "submit-badpart.json"}[v]
		f.override = func(r *http.Request, _ []byte) (int, []byte) {
			if r.Method == "POST" {
				return 500, readFixture(t, v, file)
			}
			return 0, nil
		}
		c := f.client(t, nil)
		_, err := c.Submit(context.Background(), testRequest())
		var ae *APIError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "Invalid partition name specified") || errors.Is(err, slurm.ErrSubmitUncertain) {
			t.Errorf("%s: %v", v, err)
		}
	}
}

func TestNoAccounting(t *testing.T) {
	f := newFakeRestd(t, V0038)
	f.override = func(r *http.Request, _ []byte) (int, []byte) {
		if strings.HasPrefix(r.URL.Path, "/slurmdb/") {
			return 404, []byte("Unable find requested URL. Please view /openapi/v3 for API reference.")
		}
		return 0, nil
	}
	c := f.client(t, nil)
	jobs, err := c.Jobs(context.Background(), []string{"5", "424242"})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("%v %v", jobs, err)
	}
	// Known missing: the next refresh does not ask slurmdb again.
	before := c.RoundTrips()
	if _, err := c.Jobs(context.Background(), []string{"5", "424242"}); err != nil {
		t.Fatal(err)
	}
	if n := c.RoundTrips() - before; n != 1 {
		t.Errorf("%d round trips, want 1", n)
	}
}

func TestConfigStringHidesToken(t *testing.T) {
	tok := testToken(time.Now().Add(time.Hour))
	cfg := Config{URL: "http://h:6820", Token: tok}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, tok) {
			t.Errorf("token printed: %s", s)
		}
	}
}

// TestSubmitArrayMatchesDocument: an array with aftercorr and afterany
// dependencies goes as the documents' "array" and "dependency" fields
// (checked against each version's document by the fake).
func TestSubmitArrayMatchesDocument(t *testing.T) {
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			f := newFakeRestd(t, v)
			c := f.client(t, nil)
			req := testRequest()
			req.AfterOK, req.AfterCorr, req.AfterAny, req.Array = nil, []string{"5"}, []string{"6"}, "0-3%2"
			if _, err := c.Submit(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			body := f.body("POST", "/slurm/"+v+"/job/submit")
			job, _ := body["job"].(map[string]any)
			if job["array"] != "0-3%2" || job["dependency"] != "aftercorr:5,afterany:6" {
				t.Errorf("array %v, dependency %v", job["array"], job["dependency"])
			}
		})
	}
}
