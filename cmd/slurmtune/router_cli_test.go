package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/serve"
	"github.com/slurmtune/slurmtune/serve/deploy"
)

// TestRouterCommand runs `slurmtune router --state FILE` as a process on
// loopback: it routes to the backend the state file names, publishes the
// per-backend stats a canary judgement reads next to the state file, and
// stops cleanly on SIGTERM.
func TestRouterCommand(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok from backend")
	}))
	defer backend.Close()
	tmp := t.TempDir()
	state := filepath.Join(tmp, "tiny.json")
	if err := serve.WriteState(state, serve.State{Name: "tiny", Version: 1, Backends: []serve.Backend{{Name: "blue", URL: backend.URL, Weight: 100}}}); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(binPath, "router", "--listen", addr, "--state", state, "--health-interval", "200ms", "--access-log", os.DevNull)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }() // by pid: our own child; fails only once it has been waited for
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/v1/completions")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if string(body) != "ok from backend" {
		t.Fatalf("through the router: %q", body)
	}
	stats := deploy.PathsFor(state).Stats
	for ; time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(stats); err == nil {
			break
		}
	}
	if _, err := os.Stat(stats); err != nil {
		t.Errorf("the router did not publish its stats next to the state file: %v", err)
	}
	resp, err := http.Post("http://"+addr+"/v1/completions", "application/json", strings.NewReader(`{"model":"tiny","prompt":"a prompt for drift"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM the router: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("router exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("router did not stop within 10s of SIGTERM")
	}
	// The prompt went to the prompt log next to the state file, written
	// out on shutdown.
	prompts, err := os.ReadFile(deploy.PathsFor(state).Prompts)
	if err != nil || !strings.Contains(string(prompts), `"backend":"blue"`) || !strings.Contains(string(prompts), `"prompt":"a prompt for drift"`) {
		t.Errorf("prompt log: %q (%v)", prompts, err)
	}
}

// freeLoopbackAddr returns a loopback address that was free a moment ago,
// for a process that must be told where to listen.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
