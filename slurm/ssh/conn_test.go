package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
)

func run(t testing.TB, c *Conn, cmd cmdline.Command) []byte {
	t.Helper()
	out, err := c.Run(context.Background(), cmd)
	if err != nil {
		t.Fatalf("Run %q: %v", cmd.Argv, err)
	}
	return out
}

var awkwardArgs = []string{
	"plain",
	"two words",
	"",
	"it's",
	`"double"`,
	`'single'`,
	"$(echo injected)",
	"`echo injected`",
	"$HOME ${PATH}",
	"line one\nline two\n",
	"tab\there",
	"back\\slash\\",
	"semi; echo injected",
	"a && b || c | d > e < f",
	"*", "~", "#not a comment", "-n", "--format=%i|%T",
	"A=B",
	"!bang !! !$",
	"{a,b}",
	"ünïcödé ✓",
	"\x01\x7f\xff",
	"'",
	"''''",
	"%",
}

func TestRunAwkwardArgsComeBackLiterally(t *testing.T) {
	e := needEnv(t)
	c := e.dial(t, e.config())
	for _, arg := range awkwardArgs {
		out := run(t, c, cmdline.Command{Argv: []string{"printf", "%s", arg}})
		if string(out) != arg {
			t.Errorf("printf %%s %q: got %q", arg, out)
		}
	}
	// All at once, as separate words.
	argv := append([]string{"printf", "[%s]"}, awkwardArgs...)
	var want strings.Builder
	for _, a := range awkwardArgs {
		want.WriteString("[" + a + "]")
	}
	if out := run(t, c, cmdline.Command{Argv: argv}); string(out) != want.String() {
		t.Errorf("all args: got %q, want %q", out, want.String())
	}
	// argv[0] itself is not re-interpreted either.
	if _, err := c.Run(context.Background(), cmdline.Command{Argv: []string{"A=B", "true"}}); err == nil {
		t.Errorf("command named A=B ran as an assignment")
	}
}

func TestRunEnvAndStdin(t *testing.T) {
	e := needEnv(t)
	c := e.dial(t, e.config())
	env := map[string]string{
		"SLURMTUNE_A": "it's $(not) `run`; \"quoted\"\nnext line",
		"SLURMTUNE_B": "",
		"SLURM_CONF":  "/etc/slurm/slurm.conf",
	}
	out := run(t, c, cmdline.Command{
		Argv: []string{"sh", "-c", `printf '%s|%s|%s|%s' "$SLURMTUNE_A" "$SLURMTUNE_B" "$SLURM_CONF" "${SLURMTUNE_B+set}"`},
		Env:  env,
	})
	want := env["SLURMTUNE_A"] + "||/etc/slurm/slurm.conf|set"
	if string(out) != want {
		t.Errorf("env: got %q, want %q", out, want)
	}
	stdin := []byte("#!/bin/bash\n#SBATCH --job-name=x\necho 'hi'\x00\xff\n")
	if out := run(t, c, cmdline.Command{Argv: []string{"cat"}, Stdin: stdin}); !bytes.Equal(out, stdin) {
		t.Errorf("stdin: got %q", out)
	}
	// No stdin: the command sees EOF at once.
	if out := run(t, c, cmdline.Command{Argv: []string{"wc", "-c"}}); strings.TrimSpace(string(out)) != "0" {
		t.Errorf("no stdin: wc -c = %q", out)
	}
	if _, err := c.Run(context.Background(), cmdline.Command{Argv: []string{"true"}, Env: map[string]string{"BAD NAME": "x"}}); err == nil {
		t.Errorf("invalid env name accepted")
	}
}

func TestRunExitError(t *testing.T) {
	e := needEnv(t)
	c := e.dial(t, e.config())
	out, err := c.Run(context.Background(), cmdline.Command{Argv: []string{"sh", "-c", "echo partial; echo 'squeue: error: Invalid job id' >&2; exit 3"}})
	var ee *cmdline.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want *cmdline.ExitError", err)
	}
	if ee.Code != 3 || ee.Stderr != "squeue: error: Invalid job id\n" || ee.Argv[0] != "sh" {
		t.Errorf("ExitError = %+v", ee)
	}
	if string(out) != "partial\n" {
		t.Errorf("stdout with exit error = %q", out)
	}
	if errors.Is(err, slurm.ErrUnavailable) {
		t.Errorf("exit error marked unavailable")
	}
	_, err = c.Run(context.Background(), cmdline.Command{Argv: []string{"no-such-command-slurmtune"}})
	if !errors.As(err, &ee) || ee.Code != 127 {
		t.Errorf("missing command: got %v", err)
	}
	// cmdline's error classification sees the remote stderr.
	_, err = c.Run(context.Background(), cmdline.Command{Argv: []string{"sh", "-c", "echo 'sbatch: error: Batch job submission failed: Unable to contact slurm controller' >&2; exit 1"}})
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "Unable to contact slurm controller") {
		t.Errorf("stderr lost: %v", err)
	}
}

func TestRunContextCancel(t *testing.T) {
	e := needEnv(t)
	c := e.dial(t, e.config())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, cmdline.Command{Argv: []string{"sleep", "30"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	// The connection survives a cancelled session.
	if out := run(t, c, cmdline.Command{Argv: []string{"echo", "ok"}}); string(out) != "ok\n" {
		t.Errorf("after cancel: %q", out)
	}
	// A cancelled sbatch may or may not have queued its job.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	mark := filepath.Join(t.TempDir(), "mark")
	_, err = c.Run(ctx2, cmdline.Command{Argv: []string{"sbatch"}, Env: map[string]string{"PATH": e.binDir + ":" + os.Getenv("PATH"), "SBATCH_MARK": mark}})
	if !errors.Is(err, slurm.ErrSubmitUncertain) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled sbatch: %v", err)
	}
}

// TestManySessionsOneConnection runs 50 commands, then 30 at once, and
// checks they all went over one TCP connection.
func TestManySessionsOneConnection(t *testing.T) {
	e := needEnv(t)
	p := newProxy(t, e.target.port)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := e.writeKnownHosts(kh, p.port()); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Port, cfg.KnownHosts = p.port(), kh
	c := e.dial(t, cfg)
	for i := 0; i < 50; i++ {
		want := fmt.Sprint(i)
		if out := run(t, c, cmdline.Command{Argv: []string{"echo", want}}); strings.TrimSpace(string(out)) != want {
			t.Fatalf("run %d: %q", i, out)
		}
	}
	// More at once than sshd's MaxSessions (10): Run queues them.
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Run(context.Background(), cmdline.Command{Argv: []string{"sleep", "0.1"}})
			errs <- err
		}()
	}
	// SFTP shares the connection too.
	if err := c.WriteFile(context.Background(), filepath.Join(t.TempDir(), "f"), []byte("x"), 0o644); err != nil {
		t.Errorf("WriteFile: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent run: %v", err)
		}
	}
	if n := p.accepted.Load(); n != 1 {
		t.Errorf("%d TCP connections, want 1", n)
	}
}

func TestHostKeyUnknown(t *testing.T) {
	e := needEnv(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	// Only the other server's key.
	if err := e.writeKnownHosts(kh, e.bastion.port); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{kh, filepath.Join(t.TempDir(), "missing_known_hosts")} {
		cfg := e.config()
		cfg.KnownHosts = file
		_, err := Dial(context.Background(), cfg)
		var he *HostKeyError
		if !errors.As(err, &he) || he.Changed || !errors.Is(err, ErrHostKey) {
			t.Fatalf("got %v, want unknown host key error", err)
		}
		msg := err.Error()
		fp := gossh.FingerprintSHA256(e.target.hostKey)
		port := fmt.Sprint(e.target.port)
		for _, want := range []string{"[127.0.0.1]:" + port, "unknown", "ssh-ed25519", fp,
			"ssh-keyscan -p " + port + " 127.0.0.1 >> " + file} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
		if strings.Contains(msg, "\n") || errors.Is(err, slurm.ErrUnavailable) {
			t.Errorf("message not one line, or marked unavailable: %q", msg)
		}
		t.Log(msg)
	}
}

func TestHostKeyChanged(t *testing.T) {
	e := needEnv(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", e.target.port, gossh.MarshalAuthorizedKey(otherHostKey(t)))
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.KnownHosts = kh
	_, err := Dial(context.Background(), cfg)
	var he *HostKeyError
	if !errors.As(err, &he) || !he.Changed {
		t.Fatalf("got %v, want changed host key error", err)
	}
	msg := err.Error()
	for _, want := range []string{"CHANGED", "ssh-ed25519", gossh.FingerprintSHA256(e.target.hostKey),
		fmt.Sprintf("ssh-keygen -R '[127.0.0.1]:%d' -f %s", e.target.port, kh), kh + ":1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	t.Log(msg)

	// Hashed known_hosts entries work like plain ones.
	hashed := filepath.Join(t.TempDir(), "known_hosts")
	host := knownhosts.Normalize(fmt.Sprintf("127.0.0.1:%d", e.target.port))
	if err := os.WriteFile(hashed, []byte(knownhosts.HashHostname(host)+" "+string(gossh.MarshalAuthorizedKey(e.target.hostKey))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.KnownHosts = hashed
	c := e.dial(t, cfg)
	run(t, c, cmdline.Command{Argv: []string{"true"}})
}

func TestAgentAuth(t *testing.T) {
	e := needEnv(t)
	pem, err := os.ReadFile(e.rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := gossh.ParseRawPrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	sock := serveAgent(t, keyring)

	cfg := e.config()
	cfg.IdentityFile = "" // defaults: ~/.ssh/id_* of the scratch home, none there
	cfg.AgentSocket = sock
	_, err = Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "authentication as "+e.user) || !strings.Contains(err.Error(), "0 ssh-agent key(s)") ||
		!strings.Contains(err.Error(), filepath.Join(e.home, ".ssh", "id_ed25519")) {
		t.Fatalf("empty agent: got %v", err)
	}
	t.Log(err)

	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, cfg) // RSA through the agent: rsa-sha2 signatures
	run(t, c, cmdline.Command{Argv: []string{"true"}})

	// $SSH_AUTH_SOCK is the default.
	t.Setenv("SSH_AUTH_SOCK", sock)
	cfg.AgentSocket = ""
	c = e.dial(t, cfg)
	run(t, c, cmdline.Command{Argv: []string{"true"}})
}

func serveAgent(t testing.TB, kr agent.Agent) string {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// ServeAgent ends with the client's connection (io.EOF):
				// the client reports any problem of its own.
				_ = agent.ServeAgent(kr, c)
				c.Close()
			}()
		}
	}()
	return sock
}

func TestEncryptedKey(t *testing.T) {
	e := needEnv(t)
	cfg := e.config()
	cfg.IdentityFile = e.encKey

	var asked []string
	cfg.PassphrasePrompt = func(file string) ([]byte, error) {
		asked = append(asked, file)
		return []byte(encPassphrase), nil
	}
	c := e.dial(t, cfg)
	run(t, c, cmdline.Command{Argv: []string{"true"}})
	if len(asked) != 1 || asked[0] != e.encKey {
		t.Errorf("prompted for %q, want once for %s", asked, e.encKey)
	}

	asked = nil
	cfg.PassphrasePrompt = func(file string) ([]byte, error) {
		asked = append(asked, file)
		return []byte("wrong"), nil
	}
	_, err := Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "incorrect passphrase") || len(asked) != 3 {
		t.Errorf("wrong passphrase: %v (asked %d times)", err, len(asked))
	}

	// No prompt and no terminal.
	defer func(p string) { ttyPath = p }(ttyPath)
	ttyPath = filepath.Join(t.TempDir(), "no-tty")
	cfg.PassphrasePrompt = nil
	_, err = Dial(context.Background(), cfg)
	want := "key " + e.encKey + " is encrypted and no terminal to ask for its passphrase: add it to ssh-agent"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("no tty: got %v, want %q", err, want)
	}
	t.Log(err)

	// A regular file is not a terminal either.
	ttyPath = e.plainKey + ".pub"
	if _, err := ttyPrompt("x"); !errors.Is(err, errNoTerminal) {
		t.Errorf("ttyPrompt on a file: %v", err)
	}

	// The encrypted key is not unlocked when the agent already has a key
	// the server accepts.
	pem, _ := os.ReadFile(e.plainKey)
	raw, _ := gossh.ParseRawPrivateKey(pem)
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	cfg.AgentSocket = serveAgent(t, kr)
	asked = nil
	cfg.PassphrasePrompt = func(file string) ([]byte, error) {
		asked = append(asked, file)
		return nil, errors.New("should not ask")
	}
	c = e.dial(t, cfg)
	run(t, c, cmdline.Command{Argv: []string{"true"}})
	if len(asked) != 0 {
		t.Errorf("asked for a passphrase although the agent key worked")
	}
}

func TestAuthFailureNamesKeys(t *testing.T) {
	e := needEnv(t)
	cfg := e.config()
	cfg.IdentityFile = e.otherKey
	_, err := Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), e.otherKey) || errors.Is(err, slurm.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	cfg.IdentityFile = filepath.Join(t.TempDir(), "missing")
	if _, err := Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing identity file: %v", err)
	}
}

func TestSSHConfigAlias(t *testing.T) {
	e := needEnv(t)
	// The key sits in the scratch home so ~ expansion is exercised.
	keyData, _ := os.ReadFile(e.plainKey)
	if err := os.WriteFile(filepath.Join(e.home, ".ssh", "cluster_key"), keyData, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`# test config
Host other
    HostName 192.0.2.1

Host clus?er login-*
    HostName 127.0.0.1
    Port %d
    User %s
    IdentityFile ~/.ssh/cluster_key
    UserKnownHostsFile %s

Host *
    Port 1
    User nobody
    ServerAliveInterval 15
`, e.target.port, e.user, e.knownHosts)
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, Config{Host: "cluster", ConfigFile: path, AgentSocket: "none"})
	out := run(t, c, cmdline.Command{Argv: []string{"echo", "via alias"}})
	if string(out) != "via alias\n" {
		t.Errorf("got %q", out)
	}
	if !strings.Contains(c.String(), "127.0.0.1") || !strings.Contains(c.String(), "(cluster)") {
		t.Errorf("String() = %q", c.String())
	}
	// Explicit fields win over the file.
	_, err := Dial(context.Background(), Config{Host: "cluster", ConfigFile: path, AgentSocket: "none", Port: 1, Timeout: 2 * time.Second})
	if !errors.Is(err, slurm.ErrUnavailable) {
		t.Errorf("explicit port 1: %v", err)
	}
}

func TestProxyJump(t *testing.T) {
	e := needEnv(t)
	tp := newProxy(t, e.target.port)
	bp := newProxy(t, e.bastion.port)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := writeKnownHosts(kh, map[int]gossh.PublicKey{tp.port(): e.target.hostKey, bp.port(): e.bastion.hostKey}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Port, cfg.KnownHosts = tp.port(), kh
	cfg.ProxyJump = fmt.Sprintf("%s@127.0.0.1:%d", e.user, bp.port())
	c := e.dial(t, cfg)
	for i := 0; i < 5; i++ {
		run(t, c, cmdline.Command{Argv: []string{"true"}})
	}
	if err := c.WriteFile(context.Background(), filepath.Join(t.TempDir(), "f"), []byte("via bastion"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, t2 := bp.accepted.Load(), tp.accepted.Load(); b != 1 || t2 != 1 {
		t.Errorf("connections: bastion %d, target %d; want 1 and 1", b, t2)
	}

	// The same through ssh config aliases for both hosts.
	conf := fmt.Sprintf(`Host cluster
    HostName 127.0.0.1
    Port %d
    ProxyJump jump
Host jump
    HostName 127.0.0.1
    Port %d
Host *
    User %s
    IdentityFile %s
    UserKnownHostsFile %s
`, tp.port(), bp.port(), e.user, e.plainKey, kh)
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := e.dial(t, Config{Host: "cluster", ConfigFile: path, AgentSocket: "none"})
	run(t, c2, cmdline.Command{Argv: []string{"true"}})
	if b, t2 := bp.accepted.Load(), tp.accepted.Load(); b != 2 || t2 != 2 {
		t.Errorf("connections: bastion %d, target %d; want 2 and 2", b, t2)
	}

	// Two hops: the bastion, then the bastion again (reached from itself).
	if err := writeKnownHosts(kh, map[int]gossh.PublicKey{tp.port(): e.target.hostKey, bp.port(): e.bastion.hostKey, e.bastion.port: e.bastion.hostKey}); err != nil {
		t.Fatal(err)
	}
	cfg3 := cfg
	cfg3.ProxyJump = fmt.Sprintf("%s@127.0.0.1:%d,127.0.0.1:%d", e.user, bp.port(), e.bastion.port)
	c3 := e.dial(t, cfg3)
	run(t, c3, cmdline.Command{Argv: []string{"true"}})
	if b, t2 := bp.accepted.Load(), tp.accepted.Load(); b != 3 || t2 != 3 {
		t.Errorf("connections: bastion %d, target %d; want 3 and 3", b, t2)
	}

	// The target's unknown key behind the bastion is refused, naming it.
	if err := writeKnownHosts(kh, map[int]gossh.PublicKey{bp.port(): e.bastion.hostKey}); err != nil {
		t.Fatal(err)
	}
	_, err := Dial(context.Background(), cfg)
	var he *HostKeyError
	if !errors.As(err, &he) || he.Port != tp.port() || he.Via == "" {
		t.Errorf("unknown target behind bastion: %v", err)
	}

	// A dead bastion is unavailable.
	cfg.ProxyJump = fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	cfg.Timeout = 3 * time.Second
	if _, err := Dial(context.Background(), cfg); !errors.Is(err, slurm.ErrUnavailable) {
		t.Errorf("dead bastion: %v", err)
	}
	// The target refuses forwarding: a bastion that cannot forward fails
	// clearly too.
	cfg2 := e.config()
	cfg2.ProxyJump = fmt.Sprintf("127.0.0.1:%d", e.target.port)
	cfg2.Port = e.bastion.port
	_, err = Dial(context.Background(), cfg2)
	if err == nil {
		t.Errorf("jump through a host without forwarding succeeded")
	}
}

func closedPort(t testing.TB) int {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDialUnavailable(t *testing.T) {
	e := needEnv(t)
	cfg := e.config()
	cfg.Port = closedPort(t)
	if _, err := Dial(context.Background(), cfg); !errors.Is(err, slurm.ErrUnavailable) {
		t.Errorf("closed port: %v", err)
	}
	// A server that accepts and says nothing: the timeout applies to the
	// handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cfg.Port = ln.Addr().(*net.TCPAddr).Port
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err = Dial(context.Background(), cfg)
	if !errors.Is(err, slurm.ErrUnavailable) || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("silent server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// The caller's ctx ends the handshake too, and is reported as such.
	cfg.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx deadline: %v", err)
	}
}

// TestSbatchConnectionDropped: the connection breaks while sbatch runs; the
// submit outcome is unknown.
func TestSbatchConnectionDropped(t *testing.T) {
	e := needEnv(t)
	p := newProxy(t, e.target.port)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := e.writeKnownHosts(kh, p.port()); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Port, cfg.KnownHosts = p.port(), kh
	c := e.dial(t, cfg)
	client := NewClient(c)

	mark := filepath.Join(t.TempDir(), "sbatch-started")
	req := slurm.SubmitRequest{
		ScriptPath: "/tmp/job.sh",
		Comment:    "slurmtune:test",
		Env:        map[string]string{"PATH": e.binDir + ":" + os.Getenv("PATH"), "SBATCH_MARK": mark},
	}
	errc := make(chan error, 1)
	go func() {
		_, err := client.Submit(context.Background(), req)
		errc <- err
	}()
	waitFile(t, mark)
	p.cut()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Submit did not return after the connection broke")
	}
	if !errors.Is(err, slurm.ErrSubmitUncertain) || errors.Is(err, slurm.ErrUnavailable) {
		t.Fatalf("got %v, want ErrSubmitUncertain", err)
	}
	t.Log(err)

	// Later calls: unavailable, and nothing is sent (not even sbatch).
	_, err = client.Submit(context.Background(), req)
	if !errors.Is(err, slurm.ErrUnavailable) || errors.Is(err, slurm.ErrSubmitUncertain) {
		t.Errorf("submit on a dead connection: %v", err)
	}
	if _, err := client.Jobs(context.Background(), []string{"1"}); !errors.Is(err, slurm.ErrUnavailable) {
		t.Errorf("squeue on a dead connection: %v", err)
	}
	if _, err := c.ReadFile(context.Background(), "/etc/hostname"); !errors.Is(err, slurm.ErrUnavailable) {
		t.Errorf("sftp on a dead connection: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("Done not closed after the connection broke")
	}
	if c.Alive() || c.Err() == nil {
		t.Errorf("Alive after the connection broke")
	}

	// A non-sbatch command on a breaking connection is unavailable.
	c2 := e.dial(t, cfg)
	errc2 := make(chan error, 1)
	mark2 := filepath.Join(t.TempDir(), "started")
	go func() {
		_, err := c2.Run(context.Background(), cmdline.Command{Argv: []string{"sh", "-c", `: > "$1"; sleep 10`, "sh", mark2}})
		errc2 <- err
	}()
	waitFile(t, mark2)
	p.cut()
	if err := <-errc2; !errors.Is(err, slurm.ErrUnavailable) || errors.Is(err, slurm.ErrSubmitUncertain) {
		t.Errorf("squeue-like command: %v", err)
	}
}

func waitFile(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}

// TestKeepAlive: a connection that goes silent is closed by the keepalives
// and a command in flight fails as unavailable.
func TestKeepAlive(t *testing.T) {
	e := needEnv(t)
	p := newProxy(t, e.target.port)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := e.writeKnownHosts(kh, p.port()); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Port, cfg.KnownHosts = p.port(), kh
	cfg.KeepAlive = 100 * time.Millisecond
	c := e.dial(t, cfg)
	// Keepalives answered: the connection stays up while idle.
	time.Sleep(600 * time.Millisecond)
	run(t, c, cmdline.Command{Argv: []string{"true"}})

	errc := make(chan error, 1)
	mark := filepath.Join(t.TempDir(), "started")
	go func() {
		_, err := c.Run(context.Background(), cmdline.Command{Argv: []string{"sh", "-c", `: > "$1"; sleep 10`, "sh", mark}})
		errc <- err
	}()
	waitFile(t, mark)
	p.freeze()
	select {
	case err := <-errc:
		if !errors.Is(err, slurm.ErrUnavailable) || !strings.Contains(err.Error(), "keepalive") {
			t.Errorf("got %v", err)
		}
		t.Log(err)
	case <-time.After(5 * time.Second):
		t.Fatal("frozen connection not detected")
	}
	<-c.Done()
}

func TestClose(t *testing.T) {
	e := needEnv(t)
	c := e.dial(t, e.config())
	if _, err := c.ReadFile(context.Background(), "/etc/hostname"); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err := c.Run(context.Background(), cmdline.Command{Argv: []string{"true"}})
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
}

// TestNeverInsecure guards the rule that host keys are always checked.
func TestNeverInsecure(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	bad := "Insecure" + "IgnoreHostKey"
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if bytes.Contains(data, []byte(bad)) {
			t.Errorf("%s uses %s", f, bad)
		}
	}
}

// TestDevSSHD runs against scripts/dev-sshd.sh's server when its variables
// are set (eval "$(scripts/dev-sshd.sh env)"), with the Slurm dev cluster
// behind it when there is one.
func TestDevSSHD(t *testing.T) {
	host := os.Getenv("SLURMTUNE_SSH_HOST")
	if host == "" {
		t.Skip("SLURMTUNE_SSH_HOST not set (eval \"$(scripts/dev-sshd.sh env)\")")
	}
	var port int
	if _, err := fmt.Sscan(os.Getenv("SLURMTUNE_SSH_PORT"), &port); err != nil {
		t.Fatalf("SLURMTUNE_SSH_PORT=%q: %v", os.Getenv("SLURMTUNE_SSH_PORT"), err)
	}
	c := env.dial(t, Config{
		Host: host, Port: port, User: os.Getenv("SLURMTUNE_SSH_USER"),
		IdentityFile: os.Getenv("SLURMTUNE_SSH_KEY"), KnownHosts: os.Getenv("SLURMTUNE_SSH_KNOWN_HOSTS"),
		ConfigFile: "none", AgentSocket: "none",
	})
	if out := run(t, c, cmdline.Command{Argv: []string{"echo", "it's ok"}}); string(out) != "it's ok\n" {
		t.Errorf("echo: %q", out)
	}
	if _, err := c.Run(context.Background(), cmdline.Command{Argv: []string{"sh", "-c", "command -v squeue"}}); err != nil {
		t.Skip("no Slurm behind the dev sshd")
	}
	v, err := NewClient(c).Version(context.Background())
	if err != nil {
		t.Fatalf("sinfo --version over ssh: %v", err)
	}
	t.Logf("Slurm %s over ssh", v)
}

func BenchmarkRunOverSSH(b *testing.B) {
	e := needEnv(b)
	c := e.dial(b, e.config())
	ctx := context.Background()
	cmd := cmdline.Command{Argv: []string{"true"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Run(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRunOverSSHParallel(b *testing.B) {
	e := needEnv(b)
	c := e.dial(b, e.config())
	ctx := context.Background()
	cmd := cmdline.Command{Argv: []string{"true"}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Run(ctx, cmd); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
