package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ServerOptions configures RunServer.
type ServerOptions struct {
	// Command is the model server's argv; {model}, {port}, {name} and
	// {host} are replaced in every argument.
	Command []string
	Model   string
	Name    string
	// Port is the port to serve on; 0 picks a free one.
	Port int
	// Host is the address the router should use; empty: this node's first
	// non-loopback IPv4 address.
	Host string
	// AddressFile receives "host:port" once the server answers /health.
	AddressFile string
	// PromptLog is passed to the server as SLURMTUNE_PROMPT_LOG.
	PromptLog string
	// RunDir, when set, is the run directory whose serve/address and
	// serve/prompts.jsonl are the default AddressFile and PromptLog.
	RunDir string
	// StartupTimeout bounds the time to a healthy server. Default 10m.
	StartupTimeout time.Duration
	Stdout, Stderr io.Writer
	Log            *slog.Logger
}

// RunServer runs a model server for the router: it picks a port, starts
// the command, writes the address file once /health answers on it, and
// waits for the server to exit. When ctx ends (SIGTERM from scancel) the
// server gets SIGTERM, then SIGKILL 10s later. The address file is removed
// on the way out.
func RunServer(ctx context.Context, o ServerOptions) error {
	if o.RunDir != "" && o.AddressFile == "" {
		o.AddressFile = addressFile(o.RunDir)
	}
	if o.RunDir != "" && o.PromptLog == "" {
		o.PromptLog = filepath.Join(o.RunDir, "serve", "prompts.jsonl")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(o.Command) == 0 {
		return errors.New("serve: empty command")
	}
	port := o.Port
	if port == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		port = p
	}
	host := o.Host
	if host == "" {
		h, err := NodeAddress()
		if err != nil {
			return err
		}
		host = h
	}
	rep := strings.NewReplacer("{model}", o.Model, "{port}", strconv.Itoa(port), "{name}", o.Name, "{host}", host)
	argv := make([]string, len(o.Command))
	for i, a := range o.Command {
		argv[i] = rep.Replace(a)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"SLURMTUNE_SERVE_MODEL="+o.Model,
		"SLURMTUNE_SERVE_PORT="+strconv.Itoa(port),
		"SLURMTUNE_SERVE_NAME="+o.Name,
		"SLURMTUNE_SERVE_HOST="+host,
		"SLURMTUNE_PROMPT_LOG="+o.PromptLog)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("serve: start %s: %w", argv[0], err)
	}
	log.Info("model server started", "pid", cmd.Process.Pid, "argv", strings.Join(argv, " "), "port", port)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return <-exited
		}
	}
	defer func() {
		if o.AddressFile != "" {
			_ = os.Remove(o.AddressFile)
		}
	}()

	timeout := o.StartupTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	healthy := make(chan error, 1)
	go func() {
		healthy <- WaitHealthy(hctx, &http.Client{Timeout: 5 * time.Second}, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 500*time.Millisecond)
	}()
	select {
	case err := <-exited:
		cancel()
		log.Debug("health wait ended by the exit", "err", <-healthy)
		return fmt.Errorf("serve: model server exited before it was healthy: %v", exitText(err))
	case err := <-healthy:
		cancel()
		if err != nil {
			serr := stop()
			return fmt.Errorf("serve: model server not healthy within %s: %w (server: %v)", timeout, err, exitText(serr))
		}
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if o.AddressFile != "" {
		if err := writeAtomic(o.AddressFile, []byte(addr+"\n")); err != nil {
			_ = stop()
			return fmt.Errorf("serve: write address: %w", err)
		}
	}
	log.Info("model server healthy", "address", addr)
	select {
	case err := <-exited:
		return serverExit(err)
	case <-ctx.Done():
		log.Info("stopping model server")
		_ = stop()
		return nil
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func serverExit(err error) error {
	if err == nil {
		return errors.New("serve: model server exited")
	}
	return fmt.Errorf("serve: model server: %w", err)
}

// addressFile is where the serving job of the run in runDir writes its
// host:port.
func addressFile(runDir string) string { return filepath.Join(runDir, "serve", "address") }

// FreePort returns a TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// NodeAddress returns the address other hosts reach this node at: the
// first non-loopback IPv4 address its hostname resolves to, else the first
// non-loopback IPv4 address of its interfaces.
func NodeAddress() (string, error) {
	if h, err := os.Hostname(); err == nil {
		if ips, err := net.LookupIP(h); err == nil {
			for _, ip := range ips {
				if v4 := ip.To4(); v4 != nil && !v4.IsLoopback() {
					return v4.String(), nil
				}
			}
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("node address: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if v4 := n.IP.To4(); v4 != nil && !v4.IsLoopback() {
				return v4.String(), nil
			}
		}
	}
	return "", errors.New("node address: no non-loopback IPv4 address")
}
