// Package ssh runs Slurm's command-line tools on a cluster's login node over
// SSH (a cmdline.Runner) and reaches the cluster's filesystem over SFTP (a
// slurm.FileSystem), both over one authenticated connection.
//
// Host keys are always checked against known_hosts: an unknown or changed
// key is refused with a message saying how to accept it. Authentication uses
// ssh-agent and key files; ~/.ssh/config is read for Host aliases, so the
// configured host can be whatever the user types after "ssh".
package ssh

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config says where and how to connect. Explicit fields win over
// ~/.ssh/config, which wins over the defaults, as with ssh's command line.
type Config struct {
	// Host is a host name, address or ~/.ssh/config alias.
	Host string
	// Port is the SSH port; 0 means ~/.ssh/config's, else 22.
	Port int
	// User is the remote user; "" means ~/.ssh/config's, else the local user.
	User string
	// IdentityFile is a private key file, tried before ~/.ssh/config's
	// IdentityFile(s) and ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
	IdentityFile string
	// KnownHosts is the known_hosts file; "" means ~/.ssh/config's
	// UserKnownHostsFile, else ~/.ssh/known_hosts (plus
	// /etc/ssh/ssh_known_hosts). Several files may be separated by spaces.
	KnownHosts string
	// ProxyJump is [user@]host[:port] of a jump host (comma-separated for
	// several hops, first hop first); "" means ~/.ssh/config's, "none" none.
	ProxyJump string
	// ConfigFile is the ssh_config file; "" means ~/.ssh/config (a missing
	// one is fine), "none" reads none.
	ConfigFile string
	// Timeout bounds connecting and the SSH handshake of each hop; 0 means
	// ~/.ssh/config's ConnectTimeout, else 30s.
	Timeout time.Duration
	// KeepAlive is the interval of keepalive@openssh.com requests; the
	// connection is closed when three intervals pass without an answer.
	// 0 means ~/.ssh/config's ServerAliveInterval, else 30s; negative
	// disables keepalives.
	KeepAlive time.Duration
	// AgentSocket is the ssh-agent socket; "" means ~/.ssh/config's
	// IdentityAgent, else $SSH_AUTH_SOCK; "none" uses no agent.
	AgentSocket string
	// PassphrasePrompt asks for the passphrase of an encrypted key file. nil
	// asks on the terminal (/dev/tty) and fails when there is none.
	PassphrasePrompt func(file string) ([]byte, error)
	// MaxSessions bounds the sessions open at once over the connection
	// (sshd's MaxSessions, 10 by default, counts the SFTP session too);
	// 0 means 10.
	MaxSessions int
}

// userHomeDir and currentUser are variables so tests can point them at a
// scratch home.
var (
	userHomeDir = os.UserHomeDir
	currentUser = func() string {
		if u, err := user.Current(); err == nil && u.Username != "" {
			return u.Username
		}
		return os.Getenv("USER")
	}
)

// endpoint is one resolved SSH server to authenticate to.
type endpoint struct {
	alias         string // the name as given (for messages)
	host          string // HostName
	port          int
	user          string
	hostKeyAlias  string
	identityFiles []identityFile
}

type identityFile struct {
	path     string
	explicit bool // named by Config.IdentityFile: missing is an error
}

func (e endpoint) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

// knownHostsName is the name the host key is recorded under.
func (e endpoint) knownHostsName() string {
	if e.hostKeyAlias != "" {
		return e.hostKeyAlias
	}
	return e.host
}

func (e endpoint) String() string {
	s := e.user + "@" + e.host
	if e.port != 22 {
		s += ":" + strconv.Itoa(e.port)
	}
	if e.alias != "" && e.alias != e.host {
		s += " (" + e.alias + ")"
	}
	return s
}

// resolved is a Config with ~/.ssh/config and the defaults applied.
type resolved struct {
	target         endpoint
	jumps          []endpoint // first hop first
	knownHosts     []string   // files that exist or were named
	addKnownHosts  string     // where to tell the user to add a key
	agentSocket    string
	identitiesOnly bool
	timeout        time.Duration
	keepAlive      time.Duration
	aliveCountMax  int
	maxSessions    int
}

func (cfg Config) resolve() (*resolved, error) {
	if strings.TrimSpace(cfg.Host) == "" {
		return nil, errors.New("ssh: no host configured")
	}
	home, err := userHomeDir()
	if err != nil {
		home = ""
	}
	var sc *SSHConfig
	switch cfg.ConfigFile {
	case "none":
	case "":
		if home != "" {
			sc, err = LoadSSHConfig(filepath.Join(home, ".ssh", "config"))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("ssh: %w", err)
			}
		}
	default:
		sc, err = LoadSSHConfig(expandHome(cfg.ConfigFile, home))
		if err != nil {
			return nil, fmt.Errorf("ssh: config file: %w", err)
		}
	}
	localUser := currentUser()
	r := &resolved{}
	hc := sc.Lookup(cfg.Host)
	if hc.ProxyCommand != "" && !strings.EqualFold(hc.ProxyCommand, "none") && cfg.ProxyJump == "" && hc.ProxyJump == "" {
		return nil, fmt.Errorf("ssh: %s: ProxyCommand in the ssh config is not supported; use ProxyJump (or cluster.ssh.proxy_jump)", cfg.Host)
	}
	var explicitID []identityFile
	if cfg.IdentityFile != "" {
		explicitID = []identityFile{{path: expandHome(cfg.IdentityFile, home), explicit: true}}
	}
	r.target = makeEndpoint(cfg.Host, cfg.User, cfg.Port, hc, explicitID, home, localUser)

	jumpSpec := cfg.ProxyJump
	if jumpSpec == "" {
		jumpSpec = hc.ProxyJump
	}
	r.jumps, err = jumpChain(sc, jumpSpec, explicitID, home, localUser, 0)
	if err != nil {
		return nil, err
	}

	switch {
	case cfg.KnownHosts != "":
		for _, f := range strings.Fields(cfg.KnownHosts) {
			r.knownHosts = append(r.knownHosts, expandHome(f, home))
		}
	case len(hc.UserKnownHostsFiles) > 0:
		for _, f := range hc.UserKnownHostsFiles {
			if f == "none" || f == "/dev/null" {
				continue
			}
			r.knownHosts = append(r.knownHosts, expandHome(expandPercent(f, map[byte]string{'d': home, 'u': localUser}), home))
		}
	default:
		r.knownHosts = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	if len(r.knownHosts) > 0 {
		r.addKnownHosts = r.knownHosts[0]
	} else {
		r.addKnownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	if cfg.KnownHosts == "" {
		if _, err := os.Stat("/etc/ssh/ssh_known_hosts"); err == nil {
			r.knownHosts = append(r.knownHosts, "/etc/ssh/ssh_known_hosts")
		}
	}

	switch {
	case cfg.AgentSocket != "":
		r.agentSocket = cfg.AgentSocket
	case hc.IdentityAgent != "" && hc.IdentityAgent != "SSH_AUTH_SOCK":
		r.agentSocket = expandHome(hc.IdentityAgent, home)
		if v, ok := strings.CutPrefix(r.agentSocket, "$"); ok {
			r.agentSocket = os.Getenv(v)
		}
	default:
		r.agentSocket = os.Getenv("SSH_AUTH_SOCK")
	}
	if r.agentSocket == "none" {
		r.agentSocket = ""
	}
	r.identitiesOnly = hc.IdentitiesOnly

	r.timeout = cfg.Timeout
	if r.timeout <= 0 {
		r.timeout = hc.ConnectTimeout
	}
	if r.timeout <= 0 {
		r.timeout = 30 * time.Second
	}
	r.keepAlive = cfg.KeepAlive
	if r.keepAlive == 0 {
		r.keepAlive = hc.ServerAliveInterval
	}
	if r.keepAlive == 0 {
		r.keepAlive = 30 * time.Second
	}
	r.aliveCountMax = hc.ServerAliveCountMax
	if r.aliveCountMax <= 0 {
		r.aliveCountMax = 3
	}
	r.maxSessions = cfg.MaxSessions
	if r.maxSessions <= 0 {
		r.maxSessions = 10
	}
	return r, nil
}

// jumpChain resolves a ProxyJump value into hops, first hop first. As with
// ssh, the first hop's own ProxyJump (from the ssh config) is followed too;
// later hops are reached through the earlier ones.
func jumpChain(sc *SSHConfig, spec string, explicitID []identityFile, home, localUser string, depth int) ([]endpoint, error) {
	if depth > 8 {
		return nil, fmt.Errorf("ssh: ProxyJump chain too long (a loop?) at %q", spec)
	}
	hops, err := parseProxyJump(spec)
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	var out []endpoint
	for i, h := range hops {
		jhc := sc.Lookup(h.Host)
		if i == 0 && jhc.ProxyJump != "" {
			before, err := jumpChain(sc, jhc.ProxyJump, explicitID, home, localUser, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, before...)
		}
		out = append(out, makeEndpoint(h.Host, h.User, h.Port, jhc, explicitID, home, localUser))
	}
	return out, nil
}

// makeEndpoint applies explicit values over the ssh config's over defaults.
func makeEndpoint(alias, user string, port int, hc HostConfig, explicitID []identityFile, home, localUser string) endpoint {
	e := endpoint{alias: alias, host: alias, port: port, user: user, hostKeyAlias: hc.HostKeyAlias}
	if hc.HostName != "" {
		e.host = hc.HostName
	}
	if e.port == 0 {
		e.port = hc.Port
	}
	if e.port == 0 {
		e.port = 22
	}
	if e.user == "" {
		e.user = hc.User
	}
	if e.user == "" {
		e.user = localUser
	}
	e.identityFiles = append(e.identityFiles, explicitID...)
	tokens := map[byte]string{'d': home, 'u': localUser, 'h': e.host, 'r': e.user, 'n': alias, 'p': strconv.Itoa(e.port)}
	for _, f := range hc.IdentityFiles {
		if strings.EqualFold(f, "none") {
			continue
		}
		e.identityFiles = append(e.identityFiles, identityFile{path: expandHome(expandPercent(f, tokens), home)})
	}
	if len(hc.IdentityFiles) == 0 && len(explicitID) == 0 && home != "" {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			e.identityFiles = append(e.identityFiles, identityFile{path: filepath.Join(home, ".ssh", name)})
		}
	}
	return e
}
