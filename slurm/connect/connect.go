// Package connect opens the transport a pipeline's cluster section, or the
// one recorded with a run, names: Slurm's commands on this host (local) or
// over one SSH connection (ssh), or slurmrestd (rest, with files and
// Slurm's commands over SSH when cluster.ssh.host is set, else on this
// host). It is the one place that knows the transports' concrete types;
// callers get a slurm.Client, a slurm.Inspector and a slurm.FileSystem.
package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/cmdline"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/slurm/rest"
	sshx "github.com/slurmtune/slurmtune/slurm/ssh"
)

// Cluster is one open connection to a cluster. Close it when done.
type Cluster struct {
	Client    slurm.Client
	Inspector slurm.Inspector
	FS        slurm.FileSystem
	// Transport is local, ssh or rest; Name names the cluster for the
	// record (ClusterName, the SSH host, or the REST URL).
	Transport, Name string
	// Config is the cluster section as JSON, recorded with every run so
	// later commands can reach the same cluster (see OfRun).
	Config string
	// SSHHost is the login node files and commands go through; "" when
	// they are this host's.
	SSHHost string
	login   cmdline.Runner
	close   func() error
}

// Open connects as c says.
func Open(ctx context.Context, c jobs.Cluster) (*Cluster, error) {
	cfg, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	cl := &Cluster{Transport: c.Transport, Config: string(cfg), close: func() error { return nil }}
	if c.Transport == "ssh" || c.Transport == "rest" && c.SSH.Host != "" {
		conn, err := sshx.Dial(ctx, sshx.Config{Host: c.SSH.Host, Port: c.SSH.Port, User: c.SSH.User,
			IdentityFile: c.SSH.IdentityFile, KnownHosts: c.SSH.KnownHosts, ProxyJump: c.SSH.ProxyJump})
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", c.SSH.Host, err)
		}
		cl.close = conn.Close
		cl.FS, cl.login, cl.SSHHost = conn, conn, c.SSH.Host
	} else {
		cl.FS, cl.login = local.FS{}, local.Runner{}
	}
	cmds := cmdline.New(cl.login)
	switch c.Transport {
	case "local", "ssh":
		cl.Client, cl.Inspector = cmds, cmds
		if c.Transport == "local" {
			cl.Name = LocalName()
		} else {
			cl.Name = c.SSH.Host
		}
	case "rest":
		url := c.REST.URL
		if url == "" {
			url = os.Getenv("SLURMTUNE_REST_URL")
		}
		cmds := cmdline.New(commandsHere{cl.login})
		rc, err := rest.New(rest.Config{URL: url, User: c.REST.User, TokenFile: c.REST.TokenFile,
			TokenSource: func(ctx context.Context) (string, error) { return cmds.Token(ctx, time.Hour) }})
		if err != nil {
			_ = cl.close() // the connection only just opened: err is what went wrong
			return nil, err
		}
		cl.Client, cl.Inspector, cl.Name = rc, restInspector{rc, cmds}, url
	default:
		_ = cl.close() // the connection only just opened: the transport name is what went wrong
		return nil, fmt.Errorf("unknown cluster.transport %q", c.Transport)
	}
	return cl, nil
}

// restInspector answers what slurmrestd answers (its API version, which
// needs it to be up) itself, and the rest with Slurm's commands where the
// REST transport runs them (this host, or the login node over SSH); where
// there are none those questions fail with slurm.ErrNotAvailable.
type restInspector struct {
	rc *rest.Client
	*cmdline.Client
}

func (r restInspector) APIVersion(ctx context.Context) (string, error) {
	if err := r.rc.Ping(ctx); err != nil {
		return "", err
	}
	return r.rc.APIVersion(ctx)
}

// commandsHere runs Slurm's commands for a REST connection; a command that
// is not there is slurm.ErrNotAvailable, not a failure of Slurm.
type commandsHere struct{ cmdline.Runner }

func (c commandsHere) Run(ctx context.Context, cmd cmdline.Command) ([]byte, error) {
	out, err := c.Runner.Run(ctx, cmd)
	var ee *cmdline.ExitError
	if errors.Is(err, exec.ErrNotFound) || errors.As(err, &ee) && ee.Code == 127 {
		return out, fmt.Errorf("%w: %v", slurm.ErrNotAvailable, err)
	}
	return out, err
}

// Close closes the connection.
func (cl *Cluster) Close() error { return cl.close() }

// Where names the login side in messages: the SSH host, or this host
// (local, and REST without cluster.ssh: it shares the workdir with the
// cluster).
func (cl *Cluster) Where() string {
	if cl.SSHHost != "" {
		return cl.SSHHost
	}
	return "this host"
}

// Output runs a command on the login side (this host or the login node)
// and returns its standard output; it is how the compute binary is
// checked there.
func (cl *Cluster) Output(ctx context.Context, argv ...string) ([]byte, error) {
	return cl.login.Run(ctx, cmdline.Command{Argv: argv})
}

// Here runs a command on this host and returns its standard output.
func Here(ctx context.Context, argv ...string) ([]byte, error) {
	return local.Runner{}.Run(ctx, cmdline.Command{Argv: argv})
}

// LocalName names the local cluster by its slurm.conf, for the record.
func LocalName() string {
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		conf = "/etc/slurm/slurm.conf"
	}
	data, err := os.ReadFile(conf)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "ClusterName") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// OfRun is the cluster section a run was submitted with (runs from before
// it was recorded used the local transport).
func OfRun(config string) (jobs.Cluster, error) {
	var c jobs.Cluster
	if config == "" {
		return jobs.Cluster{Transport: "local"}, nil
	}
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		return c, fmt.Errorf("recorded cluster configuration: %w", err)
	}
	return c, nil
}

// Set keeps one connection per distinct cluster configuration (a run's
// recorded Config) for the duration of a command. Close it when done.
type Set struct {
	conns map[string]*Cluster
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{conns: map[string]*Cluster{}} }

// Get returns the connection for config, opening it the first time.
func (s *Set) Get(ctx context.Context, config string) (*Cluster, error) {
	if cl, ok := s.conns[config]; ok {
		return cl, nil
	}
	c, err := OfRun(config)
	if err != nil {
		return nil, err
	}
	cl, err := Open(ctx, c)
	if err != nil {
		return nil, err
	}
	s.conns[config] = cl
	return cl, nil
}

// Add makes cl the set's connection for its configuration (the set closes
// it).
func (s *Set) Add(cl *Cluster) { s.conns[cl.Config] = cl }

// Close closes every connection.
func (s *Set) Close() {
	for _, cl := range s.conns {
		cl.Close()
	}
}

// HostFS is this host's filesystem (what the local transport's jobs see).
func HostFS() slurm.FileSystem { return local.FS{} }

// HostClient is Slurm through this host's commands: the login node's, or, in
// a job, the node the job runs on (the deploy stage's switches and queries).
func HostClient() slurm.Client { return local.NewClient() }

// SbatchAsIs runs sbatch with args on stdin, stdout and stderr as the user
// typed it (`slurmtune sbatch` with options it does not wrap); only the local
// transport can.
func (cl *Cluster) SbatchAsIs(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, ok := cl.Client.(*cmdline.Client)
	if !ok || cl.Transport != "local" {
		return errors.New("sbatch: this transport cannot run sbatch as is (only the local one can)")
	}
	return c.SbatchAsIs(ctx, args, stdin, stdout, stderr)
}

// ListFiles lists the names of the regular files in dir on the cluster's
// filesystem; none when dir does not exist.
func (cl *Cluster) ListFiles(ctx context.Context, dir string) ([]string, error) {
	var names []string
	switch f := cl.FS.(type) {
	case local.FS:
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, en := range entries {
			if en.Type().IsRegular() {
				names = append(names, en.Name())
			}
		}
	case *sshx.Conn:
		sc, err := f.SFTP()
		if err != nil {
			return nil, err
		}
		entries, err := sc.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) || os.IsNotExist(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, en := range entries {
			if en.Mode().IsRegular() {
				names = append(names, en.Name())
			}
		}
	default:
		return nil, fmt.Errorf("cannot list %s on a %T filesystem", dir, cl.FS)
	}
	return names, nil
}
