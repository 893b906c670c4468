package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKey is wrapped by every refused host key (*HostKeyError).
var ErrHostKey = errors.New("ssh host key not trusted")

// HostKeyError is a host key that is not in known_hosts (Changed false) or
// that differs from the one recorded there (Changed true).
type HostKeyError struct {
	// Host is the host name the key is recorded under, Port its SSH port.
	Host string
	Port int
	// KeyType and Fingerprint (SHA256:...) describe the key the server
	// presented.
	KeyType     string
	Fingerprint string
	// Changed is set when known_hosts has another key for the host.
	Changed bool
	// Revoked is set when the key is marked @revoked.
	Revoked bool
	// Known lists the recorded keys that did not match (file:line type fp).
	Known []string
	// KnownHostsFile is where a key would be added.
	KnownHostsFile string
	// Via is the jump host in front of Host, if any.
	Via string
}

func (e *HostKeyError) Unwrap() error { return ErrHostKey }

// knownHostsName is how ssh-keygen -R and known_hosts spell host:port.
func (e *HostKeyError) knownHostsName() string {
	if e.Port == 22 {
		return e.Host
	}
	return "[" + e.Host + "]:" + strconv.Itoa(e.Port)
}

func (e *HostKeyError) keyscan() string {
	s := "ssh-keyscan"
	if e.Port != 22 {
		s += " -p " + strconv.Itoa(e.Port)
	}
	s += " " + e.Host + " >> " + e.KnownHostsFile
	if e.Via != "" {
		s += " (run it on " + e.Via + ", or connect once with ssh -J " + e.Via + ")"
	}
	return s
}

func (e *HostKeyError) Error() string {
	switch {
	case e.Revoked:
		return fmt.Sprintf("ssh: host key of %s (%s %s) is marked @revoked in known_hosts: refusing to connect",
			e.knownHostsName(), e.KeyType, e.Fingerprint)
	case e.Changed:
		return fmt.Sprintf("ssh: host key of %s has CHANGED: it presented %s %s but known_hosts has %s; "+
			"someone may be intercepting the connection, or the host was reinstalled; "+
			"if the cluster admins confirm the new fingerprint, remove the old key with: ssh-keygen -R '%s' -f %s and accept the new one with: %s",
			e.knownHostsName(), e.KeyType, e.Fingerprint, strings.Join(e.Known, ", "),
			e.knownHostsName(), e.KnownHostsFile, e.keyscan())
	default:
		return fmt.Sprintf("ssh: host key of %s is unknown: %s %s; "+
			"after checking that fingerprint with the cluster admins, accept it with: %s",
			e.knownHostsName(), e.KeyType, e.Fingerprint, e.keyscan())
	}
}

// hostKeyChecker checks host keys against known_hosts files.
type hostKeyChecker struct {
	files   []string
	addFile string
	cb      gossh.HostKeyCallback // nil when no file exists
}

func newHostKeyChecker(files []string, addFile string) (*hostKeyChecker, error) {
	h := &hostKeyChecker{files: files, addFile: addFile}
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("ssh: known_hosts: %w", err)
		}
		existing = append(existing, f)
	}
	if len(existing) > 0 {
		cb, err := knownhosts.New(existing...)
		if err != nil {
			return nil, fmt.Errorf("ssh: known_hosts: %w", err)
		}
		h.cb = cb
	}
	return h, nil
}

// check returns the callback for endpoint e; it records the refusal in
// *refused so Dial can return it as is.
func (h *hostKeyChecker) callback(e endpoint, via string, refused **HostKeyError) gossh.HostKeyCallback {
	name := e.knownHostsName()
	return func(_ string, remote net.Addr, key gossh.PublicKey) error {
		addr := net.JoinHostPort(name, strconv.Itoa(e.port))
		herr := &HostKeyError{
			Host:           name,
			Port:           e.port,
			KeyType:        key.Type(),
			Fingerprint:    gossh.FingerprintSHA256(key),
			KnownHostsFile: h.addFile,
			Via:            via,
		}
		if h.cb == nil {
			*refused = herr
			return herr
		}
		err := h.cb(addr, tcpAddr(remote), key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &re):
			herr.Revoked = true
		case errors.As(err, &ke):
			if len(ke.Want) > 0 {
				herr.Changed = true
				for _, w := range ke.Want {
					herr.Known = append(herr.Known, fmt.Sprintf("%s %s at %s:%d", w.Key.Type(), gossh.FingerprintSHA256(w.Key), w.Filename, w.Line))
				}
			}
		default:
			return fmt.Errorf("ssh: checking host key of %s: %w", addr, err)
		}
		*refused = herr
		return herr
	}
}

// tcpAddr gives knownhosts the *net.TCPAddr it insists on.
func tcpAddr(a net.Addr) net.Addr {
	if _, ok := a.(*net.TCPAddr); ok {
		return a
	}
	return &net.TCPAddr{IP: net.IPv4zero}
}

// algorithms returns the host key algorithms to ask for, those of the keys
// known_hosts has for e first, so a host with several keys presents the one
// recorded (as ssh does).
func (h *hostKeyChecker) algorithms(e endpoint) []string {
	// Host certificates are not asked for: known_hosts @cert-authority
	// lines are not supported, plain keys are.
	supported := gossh.SupportedAlgorithms().HostKeys
	var all []string
	for _, a := range []string{gossh.KeyAlgoED25519, gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384,
		gossh.KeyAlgoECDSA521, gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256} {
		if slices.Contains(supported, a) {
			all = append(all, a)
		}
	}
	for _, a := range supported {
		if !strings.Contains(a, "-cert-") && !slices.Contains(all, a) {
			all = append(all, a)
		}
	}
	if h.cb == nil {
		return all
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return all
	}
	probe, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return all
	}
	addr := net.JoinHostPort(e.knownHostsName(), strconv.Itoa(e.port))
	err = h.cb(addr, &net.TCPAddr{IP: net.IPv4zero}, probe.PublicKey())
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return all
	}
	var first []string
	for _, w := range ke.Want {
		var algos []string
		switch t := w.Key.Type(); t {
		case gossh.KeyAlgoRSA:
			algos = []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256}
		default:
			algos = []string{t}
		}
		for _, a := range algos {
			if slices.Contains(all, a) && !slices.Contains(first, a) {
				first = append(first, a)
			}
		}
	}
	if len(first) == 0 {
		return all
	}
	for _, a := range all {
		if !slices.Contains(first, a) {
			first = append(first, a)
		}
	}
	return first
}
