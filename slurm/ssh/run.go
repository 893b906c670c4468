package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
)

// Run runs cmd on the remote host in a new session over the connection and
// returns its stdout. The command line is argv quoted for a POSIX shell
// (the remote user's login shell runs it), with cmd.Env passed through
// env(1). A command that exits non-zero returns a *cmdline.ExitError.
//
// When the connection breaks (or ctx ends) while sbatch runs, whether the
// job was queued is unknown: the error wraps slurm.ErrSubmitUncertain.
// Other failures of the connection wrap slurm.ErrUnavailable.
func (c *Conn) Run(ctx context.Context, cmd cmdline.Command) ([]byte, error) {
	if len(cmd.Argv) == 0 {
		return nil, errors.New("ssh: run: empty command")
	}
	name := cmd.Argv[0]
	if len(cmd.Secrets) > 0 {
		// env(1) on the remote command line would show them to every
		// user of the login node (ps), and sshd rarely accepts SetEnv.
		return nil, fmt.Errorf("ssh: %s: cannot pass secret environment variables (%s) without showing them on the login node's command line: read them from a file on the cluster instead", name, strings.Join(sortedKeys(cmd.Secrets), ", "))
	}
	line, err := CommandLine(cmd.Argv, cmd.Env)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", name, ctx.Err())
	case <-c.done:
		return nil, c.unavailable(name, errors.New("connection lost"))
	}
	release := true
	defer func() {
		if release {
			<-c.sem
		}
	}()
	sess, err := c.newSession(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", name, ctx.Err())
		}
		// Nothing was sent: not even sbatch can have run.
		return nil, c.unavailable(name+": new session", err)
	}
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if cmd.Stdin != nil {
		sess.Stdin = bytes.NewReader(cmd.Stdin)
	}
	submit := path.Base(name) == "sbatch"
	done := make(chan error, 1)
	ended := make(chan struct{}) // closed once the session is over
	go func() {
		defer close(ended)
		err := sess.Start(line)
		if err == nil {
			err = sess.Wait()
		}
		done <- err
	}()
	select {
	case err = <-done:
		sess.Close()
	case <-ctx.Done():
		// Ask the command to stop (sshd may not deliver signals) and give up
		// on it; its session holds a slot until the server ends it.
		_ = sess.Signal(gossh.SIGTERM) // best effort, as said
		sess.Close()
		release = false
		go func() {
			<-ended // no one waits for the command's result any more, only for its slot
			<-c.sem
		}()
		if submit {
			return nil, fmt.Errorf("%w: %s was interrupted: %w", slurm.ErrSubmitUncertain, name, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", name, ctx.Err())
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	var ee *gossh.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), &cmdline.ExitError{Argv: cmd.Argv, Code: ee.ExitStatus(), Stderr: stderr.String()}
	}
	// The session ended without an exit status: the connection broke.
	if submit {
		cause := err
		if why := c.lost(); why != nil {
			cause = why
		}
		return nil, fmt.Errorf("%w: ssh %s: connection broke while %s ran: %v", slurm.ErrSubmitUncertain, c.target, name, cause)
	}
	return nil, c.unavailable(name, err)
}

// newSession opens a session, waiting while the server refuses one (sshd
// refuses sessions beyond its MaxSessions, and frees a closed one a little
// after the client does).
func (c *Conn) newSession(ctx context.Context) (*gossh.Session, error) {
	wait := 10 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for {
		sess, err := c.client.NewSession()
		if err == nil {
			return sess, nil
		}
		var oce *gossh.OpenChannelError
		if !errors.As(err, &oce) || c.lost() != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (the server's MaxSessions is lower than Config.MaxSessions?)", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// CommandLine is the shell command line Run sends for argv and env:
// "env K=V ... argv" with every word quoted by QuoteArgs.
func CommandLine(argv []string, env map[string]string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("ssh: empty command")
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return "", fmt.Errorf("ssh: %s: argument contains a NUL byte", argv[0])
		}
	}
	if len(env) == 0 {
		return QuoteArgs(argv), nil
	}
	if strings.Contains(argv[0], "=") {
		return "", fmt.Errorf("ssh: command name %q contains '=' (env would take it for a variable)", argv[0])
	}
	keys := make([]string, 0, len(env))
	for k, v := range env {
		if !validEnvName(k) {
			return "", fmt.Errorf("ssh: %s: invalid environment variable name %q", argv[0], k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return "", fmt.Errorf("ssh: %s: environment variable %s contains a NUL byte", argv[0], k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]string, 0, 1+len(keys)+len(argv))
	words = append(words, "env")
	for _, k := range keys {
		words = append(words, k+"="+env[k])
	}
	words = append(words, argv...)
	return QuoteArgs(words), nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// QuoteArgs joins args into a POSIX shell command line that the shell splits
// back into exactly args: words made only of safe characters are left bare,
// anything else is single-quoted, an embedded quote closing the quotes,
// adding \' and reopening them; the empty word is a pair of quotes:
//
//	QuoteArgs([]string{"echo", "it's", ""}) == `echo 'it'\''s' ''`
//
// Arguments must not contain NUL bytes (no argv can).
func QuoteArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		quoteArg(&b, a)
	}
	return b.String()
}

func quoteArg(b *strings.Builder, s string) {
	if s == "" {
		b.WriteString("''")
		return
	}
	if isSafeWord(s) {
		b.WriteString(s)
		return
	}
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			b.WriteString(`'\''`)
		} else {
			b.WriteByte(s[i])
		}
	}
	b.WriteByte('\'')
}

// isSafeWord reports whether s means itself to a POSIX shell unquoted, in
// any position ('=' is excluded: a first word "A=B" would be an assignment;
// '~' would expand; '#' would start a comment).
func isSafeWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("_-+./:,@%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
