package release

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// stubNVML is a libnvidia-ml.so.1 with no GPUs: enough of NVML's C API for
// the exporter to initialise it, enumerate zero devices and shut it down.
// Each call appends its name to the file $STUB_NVML_CALLS, so the test sees
// that the release build's calls reached the library it dlopened.
const stubNVML = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void note(const char *call) {
	const char *p = getenv("STUB_NVML_CALLS");
	FILE *f = p ? fopen(p, "a") : NULL;
	if (f) { fprintf(f, "%s\n", call); fclose(f); }
}
int nvmlInit_v2(void) { note("nvmlInit_v2"); return 0; }
int nvmlInitWithFlags(unsigned int flags) { note("nvmlInitWithFlags"); return 0; }
int nvmlShutdown(void) { note("nvmlShutdown"); return 0; }
const char *nvmlErrorString(int r) { return r == 3 ? "Not Supported (stub)" : "stub error"; }
int nvmlDeviceGetCount_v2(unsigned int *n) { note("nvmlDeviceGetCount_v2"); *n = 0; return 0; }
int nvmlSystemGetDriverVersion(char *v, unsigned int n) { note("nvmlSystemGetDriverVersion"); snprintf(v, n, "0.0-stub"); return 0; }
int nvmlEventSetCreate(void **set) { note("nvmlEventSetCreate"); return 3; }
`

// TestExporterNVML runs `slurmtune exporter` from the amd64 release build
// over real HTTP: without libnvidia-ml (this machine has no NVIDIA driver)
// it serves slurmtune_nvml_up 0 and exits 0 on SIGTERM (and so does the
// arm64 build, under qemu-user in its userland); with a stub
// libnvidia-ml.so.1 on LD_LIBRARY_PATH it dlopens it, binds go-nvml's calls
// to it lazily, and serves slurmtune_nvml_up 1. A real driver and GPU are
// not here: what the stub shows is the loading and binding, not telemetry.
func TestExporterNVML(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("runs the amd64 build natively")
	}
	bin := needBuild(t, "amd64")

	t.Run("absent", func(t *testing.T) {
		if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"); err == nil {
			t.Skip("this machine has NVML: the absent case cannot be run here")
		}
		metrics, stderr := runExporter(t, []string{bin}, nil)
		checkAbsent(t, metrics, stderr)
	})

	// The arm64 build, under qemu-user in its userland (which has no NVML).
	t.Run("absent-arm64", func(t *testing.T) {
		arm := needBuild(t, "arm64")
		u := needUserland(t, "arm64")
		dir := u.copyInto(t, map[string]string{"slurmtune": arm})
		metrics, stderr := runExporter(t, u.command(dir+"/slurmtune"), nil)
		checkAbsent(t, metrics, stderr)
	})

	t.Run("present", func(t *testing.T) {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			slurmtest.Missing(t, "no gcc to build the stub libnvidia-ml.so.1: %v", err)
		}
		lib := t.TempDir()
		src := filepath.Join(lib, "stub.c")
		if err := os.WriteFile(src, []byte(stubNVML), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.CommandContext(ctxFor(t), gcc, "-shared", "-fPIC", "-Wl,-soname,libnvidia-ml.so.1",
			"-o", filepath.Join(lib, "libnvidia-ml.so.1"), src).CombinedOutput(); err != nil {
			t.Fatalf("gcc stub: %v: %s", err, out)
		}
		calls := filepath.Join(t.TempDir(), "calls")
		metrics, stderr := runExporter(t, []string{bin}, []string{"LD_LIBRARY_PATH=" + lib, "STUB_NVML_CALLS=" + calls})
		if !nvmlUp(metrics, "1") {
			t.Errorf("metrics with the stub NVML:\n%s\nstderr:\n%s", metrics, stderr)
		}
		data, err := os.ReadFile(calls)
		if err != nil {
			t.Fatalf("the stub NVML was never called: %v\nstderr:\n%s", err, stderr)
		}
		got := string(data)
		for _, call := range []string{"nvmlInit_v2", "nvmlDeviceGetCount_v2", "nvmlShutdown"} {
			if !strings.Contains(got, call+"\n") {
				t.Errorf("the stub NVML got no %s call; calls:\n%s", call, got)
			}
		}
	})
}

// checkAbsent checks what the exporter served and logged without NVML.
func checkAbsent(t *testing.T, metrics, stderr string) {
	t.Helper()
	if !nvmlUp(metrics, "0") {
		t.Errorf("metrics without NVML:\n%s", metrics)
	}
	if !strings.Contains(stderr, "NVML unavailable") || !strings.Contains(stderr, "ERROR_LIBRARY_NOT_FOUND") {
		t.Errorf("stderr does not say NVML is unavailable and why:\n%s", stderr)
	}
}

// runExporter starts `slurmtune exporter` (argv: the binary, or what runs
// it) with extra environment, scrapes /metrics once it answers, stops it
// with SIGTERM and returns the exposition and its stderr. The exporter must
// exit 0.
func runExporter(t *testing.T, argv []string, env []string) (string, string) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(argv[0], append(argv[1:], "exporter", "--listen", addr, "--interval", "100ms")...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			t.Logf("exporter after the kill: %v", <-done)
		}
	}()

	var metrics string
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, err := scrape(addr)
		// The first scrape may come before the first collection.
		if err == nil && strings.Contains(body, "slurmtune_nvml_up") {
			metrics = body
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics from %s: %v\nstderr:\n%s", addr, err, stderr.String())
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("exporter exited: %v\nstderr:\n%s", err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("exporter after SIGTERM: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("exporter did not exit 15s after SIGTERM\nstderr:\n%s", stderr.String())
	}
	return metrics, stderr.String()
}

func scrape(addr string) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(body), nil
}

// nvmlUp reports whether an exposition has slurmtune_nvml_up with value v.
func nvmlUp(metrics, v string) bool {
	return regexp.MustCompile(`(?m)^slurmtune_nvml_up(\{[^}]*\})? ` + v + `$`).MatchString(metrics)
}

// freeAddr returns a loopback address nothing listens on just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
