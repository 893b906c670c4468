package ssh

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/sys/unix"
)

// errNoTerminal is what the default passphrase prompt returns without a
// terminal.
var errNoTerminal = errors.New("no terminal")

// ttyPath is the terminal the default prompt uses (a variable for tests).
var ttyPath = "/dev/tty"

// keyring gathers the keys of one Dial: the agent's and the key files', each
// loaded once even when several hops use it.
type keyring struct {
	prompt func(file string) ([]byte, error)

	agentSocket string
	agentConn   net.Conn
	agentKeys   []gossh.Signer
	agentErr    error
	agentDone   bool

	mu    sync.Mutex
	files map[string]*fileKey
	// problems are things worth telling when authentication fails.
	problems []string
	missing  []string // default key files that do not exist
}

func newKeyring(agentSocket string, prompt func(string) ([]byte, error)) *keyring {
	if prompt == nil {
		prompt = ttyPrompt
	}
	return &keyring{agentSocket: agentSocket, prompt: prompt, files: map[string]*fileKey{}}
}

func (k *keyring) note(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	for _, p := range k.problems {
		if p == msg {
			return
		}
	}
	k.problems = append(k.problems, msg)
}

func (k *keyring) close() {
	if k.agentConn != nil {
		k.agentConn.Close()
	}
}

// agentSigners connects to the agent once.
func (k *keyring) agentSigners() []gossh.Signer {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.agentDone || k.agentSocket == "" {
		return k.agentKeys
	}
	k.agentDone = true
	c, err := net.Dial("unix", k.agentSocket)
	if err != nil {
		k.agentErr = err
		k.problems = append(k.problems, fmt.Sprintf("ssh-agent at %s: %v", k.agentSocket, err))
		return nil
	}
	k.agentConn = c
	signers, err := agent.NewClient(c).Signers()
	if err != nil {
		k.agentErr = err
		k.problems = append(k.problems, fmt.Sprintf("ssh-agent: %v", err))
		return nil
	}
	k.agentKeys = signers
	return signers
}

// signers returns the keys to offer to e: agent keys first, then the key
// files not already in the agent.
func (k *keyring) signers(e endpoint, identitiesOnly bool) ([]gossh.Signer, error) {
	var fileKeys []*fileKey
	for _, idf := range e.identityFiles {
		fk, err := k.file(idf)
		if err != nil {
			return nil, err
		}
		if fk != nil {
			fileKeys = append(fileKeys, fk)
		}
	}
	agentKeys := k.agentSigners()
	inAgent := map[string]bool{}
	var out []gossh.Signer
	for _, s := range agentKeys {
		blob := string(s.PublicKey().Marshal())
		if identitiesOnly {
			keep := false
			for _, fk := range fileKeys {
				if fk.pub != nil && string(fk.pub.Marshal()) == blob {
					keep = true
				}
			}
			if !keep {
				continue
			}
		}
		inAgent[blob] = true
		out = append(out, s)
	}
	for _, fk := range fileKeys {
		if fk.pub != nil && inAgent[string(fk.pub.Marshal())] {
			continue
		}
		if fk.pub == nil {
			// Encrypted key whose public half is unknown: it has to be
			// decrypted now to be offered at all.
			if _, err := fk.unlock(); err != nil {
				k.note("%v", err)
				continue
			}
		}
		out = append(out, fk)
	}
	return out, nil
}

// file loads a key file once. A missing file is skipped unless it was named
// explicitly.
func (k *keyring) file(idf identityFile) (*fileKey, error) {
	k.mu.Lock()
	fk, ok := k.files[idf.path]
	k.mu.Unlock()
	if ok {
		return fk, nil
	}
	fk, err := loadKeyFile(idf.path, k)
	if err != nil {
		if idf.explicit || !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("ssh: identity file: %w", err)
		}
		fk = nil
		k.mu.Lock()
		k.missing = append(k.missing, idf.path)
		k.mu.Unlock()
	}
	k.mu.Lock()
	k.files[idf.path] = fk
	k.mu.Unlock()
	return fk, nil
}

// fileKey is a private key file. An encrypted one is decrypted (asking for
// its passphrase) only when a server accepts its public key, like ssh does.
type fileKey struct {
	path string
	pem  []byte
	pub  gossh.PublicKey
	kr   *keyring

	mu      sync.Mutex
	signer  gossh.Signer
	lockErr error
}

func loadKeyFile(path string, kr *keyring) (*fileKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fk := &fileKey{path: path, pem: data, kr: kr}
	s, err := gossh.ParsePrivateKey(data)
	var missing *gossh.PassphraseMissingError
	switch {
	case err == nil:
		fk.signer = s
		fk.pub = s.PublicKey()
	case errors.As(err, &missing):
		fk.pub = missing.PublicKey
		if fk.pub == nil {
			if pubData, err := os.ReadFile(path + ".pub"); err == nil {
				if pk, _, _, _, err := gossh.ParseAuthorizedKey(pubData); err == nil {
					fk.pub = pk
				}
			}
		}
	default:
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fk, nil
}

// unlock returns the decrypted signer, asking for the passphrase (up to
// three times) the first time.
func (f *fileKey) unlock() (gossh.Signer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.signer != nil {
		return f.signer, nil
	}
	if f.lockErr != nil {
		return nil, f.lockErr
	}
	for try := 0; try < 3; try++ {
		pass, err := f.kr.prompt(f.path)
		if errors.Is(err, errNoTerminal) {
			f.lockErr = fmt.Errorf("key %s is encrypted and no terminal to ask for its passphrase: add it to ssh-agent (ssh-add %s)", f.path, f.path)
			return nil, f.lockErr
		}
		if err != nil {
			f.lockErr = fmt.Errorf("key %s: passphrase: %w", f.path, err)
			return nil, f.lockErr
		}
		s, err := gossh.ParsePrivateKeyWithPassphrase(f.pem, pass)
		clear(pass)
		if err == nil {
			f.signer = s
			return s, nil
		}
		if !errors.Is(err, x509.IncorrectPasswordError) {
			f.lockErr = fmt.Errorf("key %s: %w", f.path, err)
			return nil, f.lockErr
		}
	}
	f.lockErr = fmt.Errorf("key %s: incorrect passphrase", f.path)
	return nil, f.lockErr
}

// PublicKey implements gossh.Signer.
func (f *fileKey) PublicKey() gossh.PublicKey {
	if f.pub != nil {
		return f.pub
	}
	s, _ := f.unlock()
	return s.PublicKey()
}

// Sign implements gossh.Signer.
func (f *fileKey) Sign(rand io.Reader, data []byte) (*gossh.Signature, error) {
	s, err := f.unlock()
	if err != nil {
		f.kr.note("%v", err)
		return nil, err
	}
	return s.Sign(rand, data)
}

// SignWithAlgorithm implements gossh.AlgorithmSigner (needed for
// rsa-sha2-256/512).
func (f *fileKey) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*gossh.Signature, error) {
	s, err := f.unlock()
	if err != nil {
		f.kr.note("%v", err)
		return nil, err
	}
	if as, ok := s.(gossh.AlgorithmSigner); ok {
		return as.SignWithAlgorithm(rand, data, algorithm)
	}
	if algorithm != "" && algorithm != s.PublicKey().Type() {
		return nil, fmt.Errorf("key %s: cannot sign with %s", f.path, algorithm)
	}
	return s.Sign(rand, data)
}

// ttyPrompt asks for a passphrase on the controlling terminal, without echo.
func ttyPrompt(file string) ([]byte, error) {
	tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
	if err != nil {
		return nil, errNoTerminal
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, errNoTerminal
	}
	fmt.Fprintf(tty, "Enter passphrase for key '%s': ", file)
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, errNoTerminal
	}
	defer func() {
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, old); err != nil {
			fmt.Fprintf(tty, "\nslurmtune: could not turn the terminal's echo back on (run `stty sane`): %v", err)
		}
		fmt.Fprintln(tty)
	}()
	var line bytes.Buffer
	var b [1]byte
	for {
		n, err := tty.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line.WriteByte(b[0])
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && line.Len() > 0 {
				break
			}
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
	}
	return bytes.TrimSuffix(line.Bytes(), []byte("\r")), nil
}

// authFailure explains a failed authentication.
func (k *keyring) authFailure(e endpoint, offered []gossh.Signer, err error) error {
	k.mu.Lock()
	problems := strings.Join(k.problems, "; ")
	k.mu.Unlock()
	var names []string
	nAgent := 0
	for _, s := range offered {
		if fk, ok := s.(*fileKey); ok {
			names = append(names, fk.path)
		} else {
			nAgent++
		}
	}
	var what []string
	switch {
	case k.agentSocket == "":
		what = append(what, "no ssh-agent")
	case k.agentErr != nil:
		what = append(what, "no usable ssh-agent")
	default:
		what = append(what, fmt.Sprintf("%d ssh-agent key(s)", nAgent))
	}
	if len(names) > 0 {
		what = append(what, "key files "+strings.Join(names, ", "))
	} else {
		what = append(what, "no key files")
	}
	k.mu.Lock()
	if len(k.missing) > 0 {
		what = append(what, "not found: "+strings.Join(k.missing, ", "))
	}
	k.mu.Unlock()
	msg := fmt.Sprintf("ssh: authentication as %s to %s failed (offered %s)", e.user, e.String(), strings.Join(what, "; "))
	if problems != "" {
		msg += ": " + problems
	}
	if !strings.Contains(problems, strings.TrimPrefix(err.Error(), "ssh: handshake failed: ")) {
		msg += ": " + err.Error()
	}
	return &authError{msg: msg, err: err}
}

// authError is a failed authentication; its message says what was tried.
type authError struct {
	msg string
	err error
}

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() error { return e.err }
