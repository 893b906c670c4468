package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
)

// Conn is one authenticated SSH connection to a login node (through its
// jump hosts, if any). Everything a command does goes over it: each Run is a
// session, file access is one SFTP session opened on first use. It is safe
// for concurrent use. It does not reconnect: once the connection is lost,
// every call fails with an error wrapping slurm.ErrUnavailable.
type Conn struct {
	client *gossh.Client
	jumps  []*gossh.Client // first hop first
	target endpoint
	sem    chan struct{}

	done chan struct{} // closed when the connection has ended
	mu   sync.Mutex
	err  error // why it ended

	sftpMu sync.Mutex
	sftp   *sftp.Client

	closeOnce sync.Once
}

var (
	_ cmdline.Runner   = (*Conn)(nil)
	_ slurm.FileSystem = (*Conn)(nil)
)

// errClosed is why a Conn closed by Close ended.
var errClosed = errors.New("connection closed")

// NewClient returns a Slurm client that runs Slurm's tools over conn.
func NewClient(conn *Conn) *cmdline.Client { return cmdline.New(conn) }

// Dial connects and authenticates to cfg.Host, through cfg.ProxyJump's hosts
// if any. Network failures wrap slurm.ErrUnavailable; a refused host key is
// a *HostKeyError; failed authentication says which keys were offered.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	hk, err := newHostKeyChecker(r.knownHosts, r.addKnownHosts)
	if err != nil {
		return nil, err
	}
	keys := newKeyring(r.agentSocket, cfg.PassphrasePrompt)
	defer keys.close()

	var clients []*gossh.Client
	closeAll := func() {
		for i := len(clients) - 1; i >= 0; i-- {
			clients[i].Close()
		}
	}
	hops := append(append([]endpoint(nil), r.jumps...), r.target)
	for i, ep := range hops {
		var prev *gossh.Client
		via := ""
		if i > 0 {
			prev = clients[i-1]
			via = hops[i-1].String()
		}
		c, err := dialHop(ctx, r, hk, keys, prev, via, ep)
		if err != nil {
			closeAll()
			return nil, err
		}
		clients = append(clients, c)
	}
	conn := &Conn{
		client: clients[len(clients)-1],
		jumps:  clients[:len(clients)-1],
		target: r.target,
		sem:    make(chan struct{}, max(r.maxSessions-1, 1)),
		done:   make(chan struct{}),
	}
	go conn.watch()
	if r.keepAlive > 0 {
		go conn.keepalive(r.keepAlive, r.aliveCountMax)
	}
	return conn, nil
}

// dialHop connects to ep, directly or through prev, and authenticates.
func dialHop(ctx context.Context, r *resolved, hk *hostKeyChecker, keys *keyring, prev *gossh.Client, via string, ep endpoint) (*gossh.Client, error) {
	hctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	where := ep.String()
	if via != "" {
		where += " via " + via
	}
	var nc net.Conn
	var err error
	if prev == nil {
		d := net.Dialer{KeepAlive: 30 * time.Second}
		nc, err = d.DialContext(hctx, "tcp", ep.addr())
	} else {
		nc, err = prev.DialContext(hctx, "tcp", ep.addr())
	}
	if err != nil {
		return nil, dialErr(ctx, hctx, where, "connect", err)
	}
	// The handshake honours the timeout and ctx: closing the connection
	// makes it fail.
	stop := context.AfterFunc(hctx, func() { nc.Close() })
	defer stop()

	var offered []gossh.Signer
	var signErr error
	var refused *HostKeyError
	cc := &gossh.ClientConfig{
		User: ep.user,
		Auth: []gossh.AuthMethod{gossh.PublicKeysCallback(func() ([]gossh.Signer, error) {
			offered, signErr = keys.signers(ep, r.identitiesOnly)
			return offered, signErr
		})},
		HostKeyCallback:   hk.callback(ep, via, &refused),
		HostKeyAlgorithms: hk.algorithms(ep),
		ClientVersion:     "SSH-2.0-slurmtune",
	}
	sc, chans, reqs, err := gossh.NewClientConn(nc, ep.addr(), cc)
	if err != nil {
		nc.Close()
		switch {
		case refused != nil:
			return nil, refused
		case signErr != nil:
			return nil, signErr
		case isAuthFailure(err):
			return nil, keys.authFailure(ep, offered, err)
		}
		return nil, dialErr(ctx, hctx, where, "handshake", err)
	}
	if !stop() {
		sc.Close()
		return nil, dialErr(ctx, hctx, where, "handshake", context.Cause(hctx))
	}
	return gossh.NewClient(sc, chans, reqs), nil
}

func isAuthFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unable to authenticate") || strings.Contains(s, "no supported methods remain") ||
		strings.Contains(s, "too many authentication") || strings.Contains(s, "key ") && strings.Contains(s, "passphrase")
}

// dialErr wraps a failure to reach a host: the caller's cancellation as is,
// anything else (refused, timed out, reset) as slurm.ErrUnavailable.
func dialErr(ctx, hctx context.Context, where, step string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("ssh %s: %s: %w", where, step, ctx.Err())
	}
	if hctx.Err() != nil {
		return fmt.Errorf("%w: ssh %s: %s: timed out", slurm.ErrUnavailable, where, step)
	}
	return fmt.Errorf("%w: ssh %s: %s: %w", slurm.ErrUnavailable, where, step, err)
}

// watch records the end of the connection.
func (c *Conn) watch() {
	err := c.client.Wait()
	c.mu.Lock()
	if c.err == nil {
		if err == nil {
			err = errors.New("closed by the server")
		}
		c.err = fmt.Errorf("connection lost: %w", err)
	}
	c.mu.Unlock()
	for i := len(c.jumps) - 1; i >= 0; i-- {
		c.jumps[i].Close()
	}
	close(c.done)
}

// fail ends the connection for reason err.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.client.Close()
}

// keepalive sends keepalive@openssh.com every interval and ends the
// connection when countMax intervals pass without an answer.
func (c *Conn) keepalive(interval time.Duration, countMax int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(interval * time.Duration(countMax))
		select {
		case err := <-reply:
			timer.Stop()
			if err != nil {
				c.fail(fmt.Errorf("keepalive failed: %w", err))
				return
			}
		case <-timer.C:
			c.fail(fmt.Errorf("no answer to keepalives for %s", interval*time.Duration(countMax)))
			return
		case <-c.done:
			timer.Stop()
			return
		}
	}
}

// lost returns why the connection ended, nil while it is up.
func (c *Conn) lost() error {
	// c.err is set only as the connection ends (fail, Close, watch): a
	// command whose session ended because fail closed the client sees the
	// reason (a failed keepalive) before watch has closed done.
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// unavailable wraps a failure caused by the connection.
func (c *Conn) unavailable(what string, err error) error {
	if why := c.lost(); why != nil {
		if errors.Is(why, errClosed) {
			return fmt.Errorf("ssh %s: %s: %w", c.target, what, net.ErrClosed)
		}
		err = why
	}
	return fmt.Errorf("%w: ssh %s: %s: %v", slurm.ErrUnavailable, c.target, what, err)
}

// Alive reports whether the connection is still up.
func (c *Conn) Alive() bool { return c.lost() == nil }

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is up.
func (c *Conn) Err() error { return c.lost() }

// Client returns the underlying SSH client (for port forwarding and such).
func (c *Conn) Client() *gossh.Client { return c.client }

// String names the target, e.g. "alice@login.example.org (cluster)".
func (c *Conn) String() string { return c.target.String() }

// Close closes the SFTP session and the connection and its jump hosts'.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = errClosed
		}
		c.mu.Unlock()
		c.sftpMu.Lock()
		if c.sftp != nil {
			c.sftp.Close()
			c.sftp = nil
		}
		c.sftpMu.Unlock()
		c.client.Close()
		<-c.done
	})
	return nil
}
