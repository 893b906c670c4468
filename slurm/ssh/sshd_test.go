package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// The tests run against real OpenSSH servers on loopback: a target and a
// bastion (for ProxyJump), started once for the package by TestMain. Without
// sshd the tests skip, unless SLURMTUNE_TEST_STRICT=1 where they fail.

const encPassphrase = "correct horse battery"

type sshd struct {
	name    string
	dir     string
	port    int
	hostKey gossh.PublicKey
	log     *syncBuffer
	cmd     *exec.Cmd
}

type testEnv struct {
	dir        string
	home       string // scratch $HOME (userHomeDir points here)
	user       string
	plainKey   string // ed25519, no passphrase, authorized
	rsaKey     string // rsa, authorized, used through the agent
	encKey     string // ed25519 encrypted with encPassphrase, authorized
	otherKey   string // not authorized
	knownHosts string // both servers' keys under every port used
	binDir     string // a fake sbatch
	target     *sshd
	bastion    *sshd
}

var (
	env    *testEnv
	envErr error
)

func TestMain(m *testing.M) {
	env, envErr = setupEnv()
	code := m.Run()
	if env != nil {
		env.stop()
	}
	os.Exit(code)
}

// needEnv returns the sshd environment, skipping (or failing when strict)
// without one.
func needEnv(t testing.TB) *testEnv {
	t.Helper()
	if envErr != nil {
		if os.Getenv("SLURMTUNE_TEST_STRICT") == "1" {
			t.Fatalf("no sshd to test against: %v", envErr)
		}
		t.Skipf("no sshd to test against: %v", envErr)
	}
	return env
}

func setupEnv() (*testEnv, error) {
	sshdPath := "/usr/sbin/sshd"
	if _, err := os.Stat(sshdPath); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install -y openssh-server)", sshdPath)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		return nil, fmt.Errorf("ssh-keygen not found")
	}
	dir, err := os.MkdirTemp("", "slurmtune-sshd-")
	if err != nil {
		return nil, err
	}
	e := &testEnv{dir: dir, home: filepath.Join(dir, "home"), user: currentUser()}
	fail := func(err error) (*testEnv, error) {
		e.stop()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(e.home, ".ssh"), 0o700); err != nil {
		return fail(err)
	}
	userHomeDir = func() (string, error) { return e.home, nil }
	if os.Geteuid() == 0 {
		// sshd insists on its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return fail(err)
		}
	}
	keygen := func(path, typ, pass string) error {
		args := []string{"-q", "-t", typ, "-N", pass, "-C", filepath.Base(path), "-f", path}
		if typ == "rsa" {
			args = append(args, "-b", "2048")
		}
		out, err := exec.Command("ssh-keygen", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ssh-keygen %s: %v: %s", path, err, out)
		}
		return nil
	}
	e.plainKey = filepath.Join(dir, "id_plain")
	e.rsaKey = filepath.Join(dir, "id_rsa_agent")
	e.encKey = filepath.Join(dir, "id_enc")
	e.otherKey = filepath.Join(dir, "id_other")
	for _, k := range []struct{ path, typ, pass string }{
		{e.plainKey, "ed25519", ""}, {e.rsaKey, "rsa", ""}, {e.encKey, "ed25519", encPassphrase}, {e.otherKey, "ed25519", ""},
	} {
		if err := keygen(k.path, k.typ, k.pass); err != nil {
			return fail(err)
		}
	}
	var auth bytes.Buffer
	for _, k := range []string{e.plainKey, e.rsaKey, e.encKey} {
		pub, err := os.ReadFile(k + ".pub")
		if err != nil {
			return fail(err)
		}
		auth.Write(pub)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), auth.Bytes(), 0o600); err != nil {
		return fail(err)
	}
	// The .pub files stay for ssh-keygen's sake but the loader must not need
	// them for the encrypted key (OpenSSH format embeds the public key).
	os.Remove(e.encKey + ".pub")

	for _, name := range []string{"target", "bastion"} {
		s, err := startSSHD(e, name, name == "bastion", keygen)
		if err != nil {
			return fail(err)
		}
		if name == "target" {
			e.target = s
		} else {
			e.bastion = s
		}
	}
	e.knownHosts = filepath.Join(dir, "known_hosts")
	if err := e.writeKnownHosts(e.knownHosts, e.target.port, e.bastion.port); err != nil {
		return fail(err)
	}

	e.binDir = filepath.Join(dir, "bin")
	if err := os.MkdirAll(e.binDir, 0o755); err != nil {
		return fail(err)
	}
	sbatch := "#!/bin/sh\n: > \"$SBATCH_MARK\"\nsleep 10\necho 4242\n"
	if err := os.WriteFile(filepath.Join(e.binDir, "sbatch"), []byte(sbatch), 0o755); err != nil {
		return fail(err)
	}
	return e, nil
}

func startSSHD(e *testEnv, name string, forwarding bool, keygen func(string, string, string) error) (*sshd, error) {
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hostKey := filepath.Join(dir, "host_ed25519")
	if err := keygen(hostKey, "ed25519", ""); err != nil {
		return nil, err
	}
	pubData, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(pubData)
	if err != nil {
		return nil, err
	}
	fwd := "no"
	if forwarding {
		fwd = "yes"
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
AllowTcpForwarding %s
Subsystem sftp internal-sftp
LogLevel VERBOSE
MaxStartups 100
SetEnv SHLVL=1
`, port, hostKey, filepath.Join(dir, "sshd.pid"), filepath.Join(e.dir, "authorized_keys"), fwd)
		// SetEnv SHLVL=1 keeps bash from sourcing ~/.bashrc for every
		// command (it does when run by sshd at shell level 1): the tests then
		// time the transport, not the host's shell setup.
		confPath := filepath.Join(dir, "sshd_config")
		// Newer sshd slows down sources that fail to authenticate, which the
		// negative tests do on purpose.
		if err := os.WriteFile(confPath, []byte(conf+"PerSourcePenalties no\n"), 0o600); err != nil {
			return nil, err
		}
		if out, err := exec.Command("/usr/sbin/sshd", "-t", "-f", confPath).CombinedOutput(); err != nil {
			if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
				return nil, err
			}
			if out2, err := exec.Command("/usr/sbin/sshd", "-t", "-f", confPath).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("sshd -t: %v: %s %s", err, out, out2)
			}
		}
		s := &sshd{name: name, dir: dir, port: port, hostKey: pub, log: &syncBuffer{}}
		s.cmd = exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", confPath)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start sshd: %w", err)
		}
		exited := make(chan struct{})
		// Its exit status is not the answer: waitListening and the log are.
		go func() { _ = s.cmd.Wait(); close(exited) }()
		if err := waitListening(port, exited); err != nil {
			s.stop()
			lastErr = fmt.Errorf("sshd %s: %v: %s", name, err, s.log.String())
			continue
		}
		return s, nil
	}
	return nil, lastErr
}

func waitListening(port int, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited")
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			// Read the banner so sshd does not log a bare disconnect.
			// Best effort: the port accepted, which is what is waited for.
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 64)
			_, _ = c.Read(buf)
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not listening after 10s")
}

func (s *sshd) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill() // by pid: our own child; fails only once it has exited
}

func (e *testEnv) stop() {
	e.target.stop()
	e.bastion.stop()
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// writeKnownHosts records the target's key under the given ports (proxies
// in front of it) and the bastion's under its own port.
func (e *testEnv) writeKnownHosts(path string, targetPorts ...int) error {
	keys := map[int]gossh.PublicKey{e.bastion.port: e.bastion.hostKey}
	for _, p := range targetPorts {
		if p != e.bastion.port {
			keys[p] = e.target.hostKey
		}
	}
	return writeKnownHosts(path, keys)
}

// writeKnownHosts writes a known_hosts file with key under [127.0.0.1]:port.
func writeKnownHosts(path string, keys map[int]gossh.PublicKey) error {
	var b strings.Builder
	for p, key := range keys {
		fmt.Fprintf(&b, "[127.0.0.1]:%d %s", p, gossh.MarshalAuthorizedKey(key))
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// config is a Config for the target that depends on nothing of the real
// user's: no ssh config, no agent, the plain key, the test known_hosts.
func (e *testEnv) config() Config {
	return Config{
		Host:         "127.0.0.1",
		Port:         e.target.port,
		User:         e.user,
		IdentityFile: e.plainKey,
		KnownHosts:   e.knownHosts,
		ConfigFile:   "none",
		AgentSocket:  "none",
		Timeout:      10 * time.Second,
	}
}

func (e *testEnv) dial(t testing.TB, cfg Config) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tcpProxy forwards loopback TCP connections to a server, counting them; it
// can cut them (a network failure) or freeze them (a silent one).
type tcpProxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	gate     sync.RWMutex // held for writing while frozen
	frozen   atomic.Bool
	mu       sync.Mutex
	conns    []net.Conn
}

func newProxy(t testing.TB, targetPort int) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: fmt.Sprintf("127.0.0.1:%d", targetPort)}
	go p.serve()
	t.Cleanup(func() {
		p.thaw()
		ln.Close()
		p.cut()
	})
	return p
}

func (p *tcpProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c)
		go p.pipe(c, s)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate.RLock()
			_, werr := dst.Write(buf[:n])
			p.gate.RUnlock()
			if werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// cut closes every proxied connection at once.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) freeze() {
	if p.frozen.CompareAndSwap(false, true) {
		p.gate.Lock()
	}
}

func (p *tcpProxy) thaw() {
	if p.frozen.CompareAndSwap(true, false) {
		p.gate.Unlock()
	}
}

// otherHostKey is a fresh key that no server has.
func otherHostKey(t testing.TB) gossh.PublicKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}
