package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/serve"
)

// TestRouterStalledClientsAndHangingBackend runs `slurmtune router` as a
// process on loopback with a 128 MiB memory limit, a 1s body grace and a
// 1s backend timeout, in front of a backend that answers and one that
// never does (its /health still passes). 200 clients each announce a 1 MiB
// body and trickle a byte every 300ms: every one is cut off by the body
// deadline. The hanging backend times out and leaves rotation. Normal
// completions sent meanwhile are served and prompt-logged, and the
// router's peak RSS stays under its memory limit.
func TestRouterStalledClientsAndHangingBackend(t *testing.T) {
	t.Parallel()
	const stalled = 200
	const memLimitMiB = 128

	release := make(chan struct{})
	var releaseOnce sync.Once
	stop := func() { releaseOnce.Do(func() { close(release) }) }
	defer stop()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			_, _ = io.WriteString(w, "ok") // the router's health check judges the answer
			return
		}
		select { // never answers
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer stop()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // what it was sent does not matter here
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"text":"fine"}],"backend":"good"}`) // the client checks the answer
	}))
	defer good.Close()

	tmp := t.TempDir()
	state := filepath.Join(tmp, "tiny.json")
	if err := serve.WriteState(state, serve.State{Name: "tiny", Version: 1, Backends: []serve.Backend{
		{Name: "hang", URL: hang.URL, Weight: 90}, {Name: "good", URL: good.URL, Weight: 10}}}); err != nil {
		t.Fatal(err)
	}
	promptLog := filepath.Join(tmp, "prompts.jsonl")
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(binPath, "router", "--listen", addr, "--state", state, "--health-interval", "200ms",
		"--access-log", "", "--prompt-log", promptLog, "--memory-limit", strconv.Itoa(memLimitMiB),
		"--body-grace", "1s", "--backend-timeout", "1s")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }() // by pid: our own child; fails only once it has been waited for
	base := "http://" + addr
	client := &http.Client{Timeout: 20 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(base + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("router did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 200 stalled uploads.
	type cut struct {
		after time.Duration
		err   error
	}
	cuts := make(chan cut, stalled)
	for i := 0; i < stalled; i++ {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				cuts <- cut{err: err}
				return
			}
			defer c.Close()
			start := time.Now()
			fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", 1<<20)
			done := make(chan struct{})
			go func() { // the trickle
				defer close(done)
				for {
					select {
					case <-release:
						return
					case <-time.After(300 * time.Millisecond):
					}
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}()
			if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
				cuts <- cut{err: err} // the trickle ends with c.Close
				return
			}
			_, rerr := io.Copy(io.Discard, c) // until the router hangs up
			if ne, ok := rerr.(net.Error); ok && ne.Timeout() {
				cuts <- cut{err: fmt.Errorf("still open after %s", time.Since(start).Round(time.Millisecond))}
				return
			}
			cuts <- cut{after: time.Since(start)}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the uploads are under way

	// Normal completions meanwhile: the first ones hit the hanging backend
	// (weight 90) and time out; then it is out of rotation.
	var statuses []int
	logged := 0
	for i := 0; i < 12; i++ {
		body := fmt.Sprintf(`{"model":"m","prompt":"normal prompt %d during the stall"}`, i)
		resp, err := client.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("normal request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == 200 {
			if !bytes.Contains(b, []byte(`"backend":"good"`)) {
				t.Errorf("request %d: %s", i, b)
			}
			logged++
		}
	}
	timeouts := 0
	for _, s := range statuses {
		if s == http.StatusGatewayTimeout {
			timeouts++
		}
	}
	if timeouts == 0 || timeouts > 2 || statuses[len(statuses)-1] != 200 || statuses[len(statuses)-2] != 200 {
		t.Errorf("statuses %v: want the hanging backend to time out (504) once or twice, then leave rotation", statuses)
	}

	// Every stalled upload was cut by the deadline.
	var slowest time.Duration
	for i := 0; i < stalled; i++ {
		c := <-cuts
		if c.err != nil {
			t.Errorf("stalled upload: %v", c.err)
			continue
		}
		slowest = max(slowest, c.after)
	}
	t.Logf("200 stalled uploads cut, the last after %s; statuses %v", slowest.Round(time.Millisecond), statuses)
	if slowest > 5*time.Second {
		t.Errorf("slowest cut after %s, want about the 1s grace", slowest)
	}

	metrics := func() string {
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	m := metrics()
	for _, want := range []string{
		`slurmtune_router_backend_healthy{backend="hang"} 0`,
		`slurmtune_router_backend_timeouts_total{backend="hang"}`,
		fmt.Sprintf("slurmtune_router_slow_bodies_total %d", stalled),
		"slurmtune_router_prompts_dropped_total 0",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The served prompts reached the prompt log.
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(metrics(), fmt.Sprintf("slurmtune_router_prompts_logged_total %d", logged)) {
		if time.Now().After(deadline) {
			t.Fatalf("prompts_logged_total never reached %d:\n%s", logged, grepMetric(metrics(), "prompts_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Peak RSS of the router, from the kernel.
	hwm := vmHWM(t, cmd.Process.Pid)
	t.Logf("router peak RSS %.1f MiB (limit %d MiB)", float64(hwm)/(1<<20), memLimitMiB)
	if hwm >= memLimitMiB<<20 {
		t.Errorf("router peak RSS %d bytes, over its %d MiB limit", hwm, memLimitMiB)
	}
	// Stopped, the router has written its prompt log out.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM the router: %v", err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	stop()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("router exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("router did not stop on SIGTERM")
	}
	data, err := os.ReadFile(promptLog)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("during the stall")); n != logged {
		t.Errorf("prompt log holds %d normal prompts, want %d", n, logged)
	}

	stop()
}

func grepMetric(m, sub string) string {
	var out []string
	for _, l := range strings.Split(m, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// vmHWM reads a process's peak resident set size from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
