package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// The CLI over the SSH and REST transports, against the dev cluster, the dev
// sshd (scripts/dev-sshd.sh) and the dev slurmrestd. Jobs run `slurmtune`
// subcommands on the nodes, so cluster.slurmtune names the test binary.

// devSSH is the dev sshd's settings; it skips (or fails when strict)
// without them.
type devSSH struct{ host, port, user, key, knownHosts string }

func needSSH(t testing.TB) devSSH {
	t.Helper()
	slurmtest.RequireCluster(t)
	d := devSSH{os.Getenv("SLURMTUNE_SSH_HOST"), os.Getenv("SLURMTUNE_SSH_PORT"), os.Getenv("SLURMTUNE_SSH_USER"),
		os.Getenv("SLURMTUNE_SSH_KEY"), os.Getenv("SLURMTUNE_SSH_KNOWN_HOSTS")}
	if d.host == "" || d.key == "" || d.knownHosts == "" {
		slurmtest.Missing(t, "no dev sshd: SLURMTUNE_SSH_* unset (eval \"$(scripts/dev-sshd.sh env)\")")
	}
	if d.port == "" {
		d.port = "22"
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(d.host, d.port), 5*time.Second)
	if err != nil {
		slurmtest.Missing(t, "dev sshd not reachable: %v", err)
	}
	c.Close()
	return d
}

// sets are the --set flags for the ssh transport to d, with the test
// binary as the compute nodes' slurmtune.
func (d devSSH) sets() []string {
	return append(d.connSets(), "--set", "cluster.slurmtune="+binPath)
}

// connSets are the --set flags that reach d, cluster.slurmtune left alone.
func (d devSSH) connSets() []string {
	return []string{"--set", "cluster.transport=ssh", "--set", "cluster.ssh.host=" + d.host, "--set", "cluster.ssh.port=" + d.port,
		"--set", "cluster.ssh.user=" + d.user, "--set", "cluster.ssh.identity_file=" + d.key,
		"--set", "cluster.ssh.known_hosts=" + d.knownHosts}
}

func needREST(t testing.TB) string {
	t.Helper()
	slurmtest.RequireCluster(t)
	url := os.Getenv("SLURMTUNE_REST_URL")
	if url == "" || os.Getenv("SLURM_JWT") == "" {
		slurmtest.Missing(t, "no dev slurmrestd: SLURMTUNE_REST_URL/SLURM_JWT unset (eval \"$(scripts/dev-cluster.sh env)\")")
	}
	return url
}

func restSets(url string) []string {
	return []string{"--set", "cluster.transport=rest", "--set", "cluster.rest.url=" + url, "--set", "cluster.slurmtune=" + binPath}
}

// transportSets returns the --set flags of a transport, skipping without it.
func transportSets(t *testing.T, transport string) []string {
	switch transport {
	case "ssh":
		return needSSH(t).sets()
	case "local":
		slurmtest.RequireCluster(t)
		return []string{"--set", "cluster.transport=local"}
	}
	return restSets(needREST(t))
}

// countLines counts the lines of s that are exactly line.
func countLines(s, line string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if l == line {
			n++
		}
	}
	return n
}

// statusTransport is the run's transport as `status --json` shows it.
func statusTransport(t testing.TB, db, run string) (transport, cluster string) {
	t.Helper()
	r := slurmtune(t, db, "status", run, "--json")
	var s struct {
		Runs []struct {
			Transport string `json:"transport"`
			Cluster   string `json:"cluster"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Runs) != 1 {
		t.Fatalf("status --json: %v (%d runs)\n%s", err, len(s.Runs), r.stdout)
	}
	return s.Runs[0].Transport, s.Runs[0].Cluster
}

// TestE2ETransports: submit --wait, status (table and --json, which shows
// the transport), logs and cancel work unchanged over ssh and rest; the
// two-node training job gets the allocation it asked for over every
// transport (local included), as Slurm reports it.
func TestE2ETransports(t *testing.T) {
	for _, transport := range []string{"local", "ssh", "rest"} {
		t.Run(transport+"/run", func(t *testing.T) {
			sets := append(transportSets(t, transport), "--set", "train.nodes=2", "--set", "train.tasks_per_node=2")
			t.Parallel()
			tmp := openTempDir(t)
			db := filepath.Join(tmp, "st.db")
			workdir := filepath.Join(tmp, "runs")
			args := append([]string{"submit", quickPipeline(t), "--wait", "--interval", "1s",
				"--set", "workdir=" + workdir, "--set", "name=tr-" + transport}, sets...)
			r := slurmtune(t, db, args...)
			runID := strings.TrimSpace(r.stdout)
			if r.code != 0 {
				msg := r.stderr
				if runID != "" {
					msg += "\nprep log:\n" + slurmtune(t, db, "logs", runID, "prep").stdout
				}
				t.Fatalf("submit --wait over %s: exit %d\n%s", transport, r.code, msg)
			}
			s := statusOf(t, db, runID)
			if s.Runs[0].State != "SUCCEEDED" {
				t.Errorf("run %s: %s, want SUCCEEDED", runID, s.Runs[0].State)
			}
			for _, st := range s.Runs[0].Stages {
				if st.State != "COMPLETED" || st.ExitCode == nil || *st.ExitCode != 0 || st.JobID == "" {
					t.Errorf("stage %+v, want COMPLETED with exit 0", st)
				}
			}
			if tr, cl := statusTransport(t, db, runID); tr != transport || cl == "" {
				t.Errorf("status --json: transport %q cluster %q, want transport %q and a cluster", tr, cl, transport)
			}
			if st := slurmtune(t, db, "status", runID); st.code != 0 || !strings.Contains(st.stdout, "SUCCEEDED") {
				t.Errorf("status: exit %d:\n%s%s", st.code, st.stdout, st.stderr)
			}
			// The train stage's metrics lines were read over the transport by submit --wait.
			var m metricsOut
			if err := json.Unmarshal([]byte(slurmtune(t, db, "metrics", runID, "--json", "--no-sync").stdout), &m); err != nil {
				t.Fatal(err)
			}
			if len(m.Points) != 2 || m.Points[0].Name != "loss" || m.Points[1].Value != 2.25 ||
				m.Points[1].JobID != s.Runs[0].Stages[1].JobID || m.Eval == nil || !m.Eval.Passed {
				t.Errorf("metrics over %s: %+v", transport, m)
			}
			train := s.Runs[0].Stages[1]
			if lg := slurmtune(t, db, "logs", runID, "train"); lg.code != 0 || countLines(lg.stdout, "world size 4") != 4 ||
				!strings.Contains(lg.stdout, "stage train job "+train.JobID) {
				t.Errorf("logs %s train: exit %d, want 4 ranks of world size 4:\n%s%s", runID, lg.code, lg.stdout, lg.stderr)
			}
			// What Slurm allocated, read back from the controller.
			nodes, tasks := slurmtest.JobField(t, train.JobID, "NumNodes"), slurmtest.JobField(t, train.JobID, "NumTasks")
			if nodes != "2" || tasks != "4" || train.Nodes != "st-node[1-2]" {
				t.Errorf("train job %s over %s: NumNodes=%s NumTasks=%s nodes %q, want 2 nodes (st-node[1-2]) and 4 tasks",
					train.JobID, transport, nodes, tasks, train.Nodes)
			}
		})
		// The tiny pipeline itself (torch.distributed, 2 nodes x 2 tasks)
		// over ssh and rest; the local transport runs it in TestE2E.
		if transport != "local" {
			t.Run(transport+"/tiny", func(t *testing.T) {
				sets := transportSets(t, transport)
				t.Parallel()
				tmp := openTempDir(t)
				db := filepath.Join(tmp, "st.db")
				r := slurmtune(t, db, append([]string{"submit", tinyPipeline(t), "--wait", "--interval", "2s",
					"--set", "workdir=" + filepath.Join(tmp, "runs"), "--set", "name=tr-tiny-" + transport}, sets...)...)
				runID := strings.TrimSpace(r.stdout)
				if r.code != 0 {
					t.Fatalf("tiny pipeline over %s: exit %d\n%s", transport, r.code, r.stderr)
				}
				s := statusOf(t, db, runID)
				train := s.Runs[0].Stages[1]
				nodes, tasks := slurmtest.JobField(t, train.JobID, "NumNodes"), slurmtest.JobField(t, train.JobID, "NumTasks")
				if s.Runs[0].State != "SUCCEEDED" || nodes != "2" || tasks != "4" {
					t.Errorf("tiny over %s: run %s, train job %s NumNodes=%s NumTasks=%s; want SUCCEEDED on 2 nodes, 4 tasks",
						transport, s.Runs[0].State, train.JobID, nodes, tasks)
				}
				if lg := slurmtune(t, db, "logs", runID, "train"); !strings.Contains(lg.stdout, "world size 4") {
					t.Errorf("tiny train log over %s lacks world size 4:\n%s", transport, lg.stdout)
				}
			})
		}
		// cancel: a run whose training would take two minutes.
		t.Run(transport+"/cancel", func(t *testing.T) {
			sets := transportSets(t, transport)
			t.Parallel()
			tmp := openTempDir(t)
			db := filepath.Join(tmp, "st.db")
			workdir := filepath.Join(tmp, "runs")
			sleeper := filepath.Join(tmp, "sleep_train.sh")
			if err := os.WriteFile(sleeper, []byte("#!/bin/sh\necho sleeping\nsleep 120\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"submit", quickPipeline(t), "--json", "--set", "workdir=" + workdir,
				"--set", "name=tr-cancel-" + transport, "--set", "train.script=" + sleeper}, sets...)
			r := slurmtune(t, db, args...)
			var sub submitJSON
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &sub) != nil {
				t.Fatalf("submit over %s: exit %d: %s%s", transport, r.code, r.stdout, r.stderr)
			}
			if c := slurmtune(t, db, "cancel", sub.Run); c.code != 0 {
				t.Fatalf("cancel over %s: exit %d: %s", transport, c.code, c.stderr)
			}
			if tr, _ := statusTransport(t, db, sub.Run); tr != transport {
				t.Errorf("status --json: transport %q, want %q", tr, transport)
			}
			s := waitEnded(t, db, sub.Run, time.Minute)
			if s.Runs[0].State != "CANCELLED" {
				t.Errorf("run %s after cancel: %s, want CANCELLED", sub.Run, s.Runs[0].State)
			}
			for _, st := range s.Runs[0].Stages {
				if st.Name == "prep" && st.State == "COMPLETED" {
					continue
				}
				if st.State != "CANCELLED" {
					t.Errorf("%s after cancel: %s, want CANCELLED", st.Name, st.State)
				}
				if sq := slurmtest.Run(t, "squeue", "-h", "--states=all", "-O", "State:0", "-j", st.JobID); !strings.HasPrefix(strings.TrimSpace(sq), "CANCELLED") {
					t.Errorf("squeue says job %s (%s) is %q", st.JobID, st.Name, sq)
				}
			}
		})
	}
}

// refusedOneLine checks a command refused with exit 1 and one line on stderr
// that contains every want, and that nothing was recorded.
func refusedOneLine(t *testing.T, db string, r result, want ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if strings.Contains(msg, "\n") {
		t.Errorf("stderr is not one line:\n%s", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	if s := slurmtune(t, db, "status", "--json"); !strings.Contains(s.stdout, `"runs": []`) {
		t.Errorf("a run was recorded although the cluster was refused:\n%s", s.stdout)
	}
}

// TestE2ESSHHostKeyRefused: an unknown and a changed host key are refused
// with one line saying what to do; nothing is submitted or recorded.
func TestE2ESSHHostKeyRefused(t *testing.T) {
	d := needSSH(t)
	t.Parallel()
	tmp := t.TempDir()
	hostPort := "[" + d.host + "]:" + d.port
	if d.port == "22" {
		hostPort = d.host
	}
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(other)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, content string
		want          []string
	}{
		{"unknown", "", []string{"host key of " + hostPort + " is unknown", "ssh-keyscan", "SHA256:"}},
		{"changed", knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(d.host, d.port))}, signer.PublicKey()) + "\n",
			[]string{"host key of " + hostPort + " has CHANGED", "ssh-keygen -R", gossh.FingerprintSHA256(signer.PublicKey())}},
	} {
		t.Run(c.name, func(t *testing.T) {
			kh := filepath.Join(tmp, c.name+"_known_hosts")
			if err := os.WriteFile(kh, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			dd := d
			dd.knownHosts = kh
			db := filepath.Join(tmp, c.name+".db")
			name := "hostkey-" + c.name + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
			r := slurmtune(t, db, append([]string{"submit", quickPipeline(t), "--set", "workdir=" + filepath.Join(tmp, "runs"),
				"--set", "name=" + name}, dd.sets()...)...)
			refusedOneLine(t, db, r, c.want...)
			if out := slurmtest.Run(t, "squeue", "-h", "--states=all", "-O", "Name:0"); strings.Contains(out, name) {
				t.Errorf("a job was submitted although the host key was refused")
			}
		})
	}
}

// TestE2ERESTExpiredToken: with an expired token (scontrol token lifespan=1,
// waited out) slurmtune over REST says the token expired and how to get a
// new one, in one line, exit 1.
func TestE2ERESTExpiredToken(t *testing.T) {
	url := needREST(t)
	t.Parallel()
	tok := strings.TrimPrefix(strings.TrimSpace(slurmtest.Run(t, "scontrol", "token", "lifespan=1")), "SLURM_JWT=")
	time.Sleep(2100 * time.Millisecond)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	submit := func(extraEnv ...string) result {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath, append([]string{"submit", quickPipeline(t), "--set", "workdir=" + filepath.Join(tmp, "runs")}, restSets(url)...)...)
		cmd.Env = append(append(os.Environ(), "SLURMTUNE_DB="+db, "SLURM_JWT="+tok), extraEnv...)
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		code := 0
		if err := cmd.Run(); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		return result{so.String(), se.String(), code}
	}

	// When a new token cannot be minted (no working scontrol here), the
	// expired one gives the token message, on one line, without the token.
	stub := filepath.Join(tmp, "stub")
	if err := os.MkdirAll(stub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stub, "scontrol"), []byte("#!/bin/sh\necho 'scontrol: error: no controller here' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := submit("PATH=" + stub + ":" + os.Getenv("PATH"))
	if r.code != 1 {
		t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if strings.Contains(msg, "\n") {
		t.Errorf("stderr is not one line:\n%s", r.stderr)
	}
	for _, w := range []string{"token rejected or expired", "scontrol token", "expired at"} {
		if !strings.Contains(msg, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	if strings.Contains(r.stderr, tok) {
		t.Errorf("the token appears in the message")
	}

	// Where scontrol works, the expired token is replaced by a fresh one
	// (minted over munge, not with the expired token) and the submit succeeds.
	ok := submit()
	if ok.code != 0 || strings.TrimSpace(ok.stdout) == "" {
		t.Fatalf("submit with an expired SLURM_JWT and a working scontrol: exit %d: %s", ok.code, ok.stderr)
	}
	if c := slurmtune(t, db, "cancel", strings.TrimSpace(ok.stdout)); c.code != 0 {
		t.Errorf("cancel: %s", c.stderr)
	}
}

// dropProxy forwards TCP connections to an sshd. On the first connection,
// once armed() says the next command is the sbatch of the stage tagged
// tag(), it delays everything the server sends by hold and cuts the
// connection as soon as the job exists in Slurm: sbatch reached slurmctld,
// its answer never reaches the client. Later connections pass through.
type dropProxy struct {
	ln     net.Listener
	target string
	hold   time.Duration
	armed  func() (tag string, ok bool)

	mu    sync.Mutex
	conns int
	cut   string // what happened at the cut, for the test's log
	done  chan struct{}
}

func newDropProxy(t *testing.T, target string, hold time.Duration, armed func() (string, bool)) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target, hold: hold, armed: armed, done: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *dropProxy) port() string { return strconv.Itoa(p.ln.Addr().(*net.TCPAddr).Port) }

// proxyCopy copies src to dst, then half-closes dst. Either side closing ends
// the copy: the client sees a broken stream itself.
func proxyCopy(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.(*net.TCPConn).CloseWrite()
}

func (p *dropProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns++
		first := p.conns == 1
		p.mu.Unlock()
		go proxyCopy(s, c)
		if !first {
			go proxyCopy(c, s)
			continue
		}
		go p.dropping(c, s)
	}
}

type chunk struct {
	at   time.Time
	data []byte
}

// dropping copies server -> client, holding data once armed, and cuts both
// sides when the tagged job shows up in squeue.
func (p *dropProxy) dropping(c, s net.Conn) {
	defer close(p.done)
	queue := make(chan chunk, 4096)
	stop := make(chan struct{})
	var once sync.Once
	cut := func(why string) {
		once.Do(func() {
			p.mu.Lock()
			p.cut = why
			p.mu.Unlock()
			close(stop)
			c.Close()
			s.Close()
		})
	}
	// Writer: releases each chunk hold after it arrived (at once before arming).
	go func() {
		for {
			select {
			case <-stop:
				return
			case ch := <-queue:
				if d := time.Until(ch.at); d > 0 {
					select {
					case <-stop:
						return
					case <-time.After(d):
					}
				}
				if _, err := c.Write(ch.data); err != nil {
					cut("client write: " + err.Error())
					return
				}
			}
		}
	}()
	// Watcher: arms, then polls Slurm for the tagged job.
	var armedAt time.Time
	var armMu sync.Mutex
	go func() {
		var tag string
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if t, ok := p.armed(); ok {
				tag = t
				break
			}
		}
		armMu.Lock()
		armedAt = time.Now()
		armMu.Unlock()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			out, _ := exec.Command("squeue", "-h", "--states=all", "-O", "JobID:0|,Comment:0").Output()
			for _, line := range strings.Split(string(out), "\n") {
				if id, comment, ok := strings.Cut(line, "|"); ok && comment == tag {
					cut(fmt.Sprintf("job %s (%s) appeared %s after arming; its answer was held back", id, tag, time.Since(armedAt).Round(time.Millisecond)))
					return
				}
			}
		}
		cut("no job tagged " + tag + " appeared within 20s of arming")
	}()
	buf := make([]byte, 32*1024)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			armMu.Lock()
			at := time.Time{}
			if !armedAt.IsZero() {
				at = time.Now().Add(p.hold)
			}
			armMu.Unlock()
			select {
			case queue <- chunk{at, append([]byte(nil), buf[:n]...)}:
			case <-stop:
				return
			}
		}
		if err != nil {
			cut("server read: " + err.Error())
			return
		}
	}
}

// TestE2ESSHDroppedSubmitNotDuplicated: the SSH connection drops while
// sbatch of the first stage runs (a proxy between slurmtune and sshd holds
// back sshd's answer and cuts the connection once the job exists). The job
// reached Slurm; slurmtune cannot know its id. A stage is never submitted
// twice: exactly one job carries the stage's tag, and it ends up tracked by
// the run (adopted at once, or by the next `slurmtune sync`).
func TestE2ESSHDroppedSubmitNotDuplicated(t *testing.T) {
	d := needSSH(t)
	t.Parallel()
	tmp := openTempDir(t)
	db := filepath.Join(tmp, "st.db")
	workdir := filepath.Join(tmp, "runs")
	// Arm when the run directory is complete: the next command is sbatch.
	armed := func() (string, bool) {
		m, _ := filepath.Glob(filepath.Join(workdir, "*", "train.sbatch"))
		if len(m) == 0 {
			return "", false
		}
		return "slurmtune:" + filepath.Base(filepath.Dir(m[0])) + ":prep", true
	}
	p := newDropProxy(t, net.JoinHostPort(d.host, d.port), 1500*time.Millisecond, armed)
	// The sshd's host key, also under the proxy's port.
	khData, err := os.ReadFile(d.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	var kh strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(khData)), "\n") {
		kh.WriteString(line + "\n")
		kh.WriteString(strings.Replace(line, "["+d.host+"]:"+d.port, "["+d.host+"]:"+p.port(), 1) + "\n")
	}
	khFile := filepath.Join(tmp, "known_hosts")
	if err := os.WriteFile(khFile, []byte(kh.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	pd := d
	pd.port, pd.knownHosts = p.port(), khFile

	name := fmt.Sprintf("drop%d", time.Now().UnixNano()%1e6)
	r := slurmtune(t, db, append([]string{"submit", quickPipeline(t), "--json", "--set", "workdir=" + workdir, "--set", "name=" + name}, pd.sets()...)...)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy never cut the connection")
	}
	p.mu.Lock()
	t.Logf("cut: %s", p.cut)
	p.mu.Unlock()
	t.Logf("submit through the dropped connection: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	m, _ := filepath.Glob(filepath.Join(workdir, "*", "train.sbatch"))
	if len(m) != 1 {
		t.Fatalf("no run directory was written")
	}
	runID := filepath.Base(filepath.Dir(m[0]))
	tagged := slurmJobsTagged(t, runID+":")
	t.Cleanup(func() {
		var ids []string
		for _, v := range slurmJobsTagged(t, runID+":") {
			ids = append(ids, v...)
		}
		cancelJobs(t, ids)
	})
	prepTag := "slurmtune:" + runID + ":prep"
	if len(tagged[prepTag]) != 1 {
		t.Fatalf("jobs tagged %s: %v, want exactly one (the sbatch that lost its answer)", prepTag, tagged[prepTag])
	}
	prepJob := tagged[prepTag][0]

	// Adopted at once, or by the next sync (a fresh connection).
	if s := statusOf(t, db, runID); s.Runs[0].Stages[0].JobID != prepJob {
		if sy := slurmtune(t, db, "sync"); sy.code != 0 {
			t.Errorf("sync: exit %d: %s", sy.code, sy.stderr)
		}
	}
	s := statusOf(t, db, runID)
	if got := s.Runs[0].Stages[0].JobID; got != prepJob {
		t.Errorf("the prep job %s that reached Slurm is not tracked (stage prep: %+v, run %s); it runs unwatched", prepJob, s.Runs[0].Stages[0], s.Runs[0].State)
	}
	// Never twice: after the sync, still one job per tag.
	for tag, ids := range slurmJobsTagged(t, runID+":") {
		if len(ids) > 1 {
			t.Errorf("stage %s submitted %d times: %v", tag, len(ids), ids)
		}
	}
}

// TestE2EUploadedBinary: over ssh to an account whose PATH has no
// slurmtune, the default (cluster.slurmtune: upload) copies this binary
// into the workdir, verified by checksum, and the pipeline runs with it;
// naming a binary the cluster lacks is refused before anything is queued.
func TestE2EUploadedBinary(t *testing.T) {
	d := needSSH(t)
	if out, err := exec.Command("ssh", "-i", d.key, "-o", "UserKnownHostsFile="+d.knownHosts, "-o", "BatchMode=yes",
		"-p", d.port, d.user+"@"+d.host, "command -v slurmtune || echo none").Output(); err != nil || strings.TrimSpace(lastLine(string(out))) != "none" {
		t.Fatalf("the dev sshd's account must have no slurmtune on its PATH: %q, %v", out, err)
	}
	self, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(self)

	t.Run("upload", func(t *testing.T) {
		t.Parallel()
		tmp := openTempDir(t)
		db := filepath.Join(tmp, "st.db")
		workdir := filepath.Join(tmp, "runs")
		args := append([]string{"submit", quickPipeline(t), "--wait", "--interval", "1s",
			"--set", "workdir=" + workdir, "--set", "name=tr-upload"}, d.connSets()...)
		r := slurmtune(t, db, args...)
		runID := strings.TrimSpace(r.stdout)
		if r.code != 0 {
			t.Fatalf("submit --wait with the uploaded binary: exit %d\n%s", r.code, r.stderr)
		}
		bins, _ := filepath.Glob(filepath.Join(workdir, ".slurmtune", "bin", "slurmtune-*"))
		var bin string
		for _, b := range bins {
			if !strings.HasSuffix(b, ".sha256") {
				bin = b
			}
		}
		got, err := os.ReadFile(bin)
		if err != nil || sha256.Sum256(got) != sum {
			t.Fatalf("uploaded binary %q (of %v): %v, checksum differs from this binary's", bin, bins, err)
		}
		script, err := os.ReadFile(filepath.Join(workdir, runID, "train.sbatch"))
		if err != nil || !strings.Contains(string(script), bin) {
			t.Errorf("train.sbatch does not call the uploaded binary %s: %v", bin, err)
		}
		if s := statusOf(t, db, runID); s.Runs[0].State != "SUCCEEDED" {
			t.Errorf("run %s: %s, want SUCCEEDED", runID, s.Runs[0].State)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		tmp := t.TempDir()
		db := filepath.Join(tmp, "st.db")
		name := fmt.Sprintf("tr-noup%d", time.Now().UnixNano()%1e6)
		args := append([]string{"submit", quickPipeline(t), "--set", "workdir=" + filepath.Join(tmp, "runs"),
			"--set", "name=" + name, "--set", "cluster.slurmtune=slurmtune"}, d.connSets()...)
		r := slurmtune(t, db, args...)
		msg := strings.TrimSpace(r.stderr)
		if r.code != 1 || strings.Count(msg, "\n") != 0 ||
			!strings.Contains(msg, `cluster.slurmtune: "slurmtune" does not run on `+d.host) || !strings.Contains(msg, "set cluster.slurmtune: upload") {
			t.Errorf("submit naming a missing binary: exit %d, stderr %q; want exit 1 and one line saying what to set", r.code, msg)
		}
		if tags := slurmJobsTagged(t, name); len(tags) != 0 {
			t.Errorf("jobs were queued: %v", tags)
		}
		if s := slurmtune(t, db, "status", "--json", "--no-sync"); !strings.Contains(s.stdout, `"runs": []`) {
			t.Errorf("a run was recorded: %s", s.stdout)
		}
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestE2EMissingFiles: the files the jobs read are looked up where they
// will see them, over SFTP for ssh: validate --cluster and submit report
// each missing one as FILE:LINE:COL, exit 2, and submit queues nothing.
func TestE2EMissingFiles(t *testing.T) {
	d := needSSH(t)
	t.Parallel()
	tmp := t.TempDir()
	name := fmt.Sprintf("tr-files%d", time.Now().UnixNano()%1e6)
	file := filepath.Join(tmp, "p.yaml")
	if err := os.WriteFile(file, []byte("name: "+name+`
workdir: `+filepath.Join(tmp, "runs")+`
data: {inputs: [`+repoRoot(t)+`/examples/tiny/data/*.jsonl, `+tmp+`/none/*.jsonl]}
train: {nodes: 1, python: /bin/sh, script: `+tmp+`/train.sh}
eval: {python: /bin/sh, script: `+repoRoot(t)+`/cmd/slurmtune/testdata/quick_eval.sh, gates: {perplexity: {max: 100}}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{
		file + ":3:" + strconv.Itoa(len("data: {inputs: [")+len(repoRoot(t)+"/examples/tiny/data/*.jsonl, ")+1) + ": data.inputs[1]: " + tmp + "/none/*.jsonl matches no file on " + d.host,
		file + ":4:44: train.script: " + tmp + "/train.sh does not exist on " + d.host,
	}
	db := filepath.Join(tmp, "st.db")
	for _, cmd := range [][]string{{"validate", file, "--cluster"}, {"submit", file}} {
		r := slurmtune(t, db, append(cmd, d.sets()...)...)
		if r.code != 2 || strings.TrimSpace(r.stderr) != strings.Join(want, "\n") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and:\n%s", cmd[0], r.code, r.stderr, strings.Join(want, "\n"))
		}
	}
	if tags := slurmJobsTagged(t, name); len(tags) != 0 {
		t.Errorf("jobs were queued: %v", tags)
	}
	// Once the file is there, the same pipeline validates.
	if err := os.WriteFile(filepath.Join(tmp, "train.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tmp, "none"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "none", "x.jsonl"), []byte("{\"text\": \"x\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := slurmtune(t, db, append([]string{"validate", file, "--cluster"}, d.sets()...)...); r.code != 0 {
		t.Errorf("validate --cluster with the files there: exit %d: %s", r.code, r.stderr)
	}
}

// TestE2EStageErrorLine: a stage whose payload fails with its own error
// line shows that line in status (table and --json), read from the end of
// its log where the transport reads files (SFTP for ssh).
func TestE2EStageErrorLine(t *testing.T) {
	for _, transport := range []string{"local", "ssh"} {
		t.Run(transport, func(t *testing.T) {
			sets := transportSets(t, transport)
			t.Parallel()
			tmp := openTempDir(t)
			db := filepath.Join(tmp, "st.db")
			failing := filepath.Join(tmp, "fail_train.sh")
			if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'step 1 loss 2.0'\necho 'fail_train: error: the data has 0 examples' >&2\nexit 3\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"submit", quickPipeline(t), "--wait", "--interval", "1s", "--set", "workdir=" + filepath.Join(tmp, "runs"),
				"--set", "name=tr-err-" + transport, "--set", "train.script=" + failing}, sets...)
			r := slurmtune(t, db, args...)
			runID := strings.TrimSpace(r.stdout)
			if r.code != 1 {
				t.Fatalf("submit --wait of a failing train: exit %d, want 1: %s", r.code, r.stderr)
			}
			want := "fail_train: error: the data has 0 examples"
			s := statusOf(t, db, runID)
			if train := s.Runs[0].Stages[1]; train.State != "FAILED" || train.Error != want {
				t.Errorf("status --json train: %+v, want FAILED with error %q", train, want)
			}
			if tbl := slurmtune(t, db, "status", runID, "--no-sync"); !strings.Contains(tbl.stdout, want) {
				t.Errorf("status table lacks the error line:\n%s", tbl.stdout)
			}
		})
	}
}
