package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestE2ERunDirPrivateAndSecrets submits train-only runs on the dev
// cluster over each transport. The private run: its directory is 0700, its
// files 0600 and its scripts 0700, another user (nobody, via setpriv)
// cannot read them, and the secrets (one from a 0600 file read at job
// start; with local and rest one more from slurmtune's environment, sent
// with the job) reach the job's environment (the job prints their SHA-256)
// while no value appears in any file under the run directory or in the
// database. Over local, a share: group run gets 0750/0640 and its job
// refuses to start with a secret file that others can read; over ssh an
// {env:} secret is refused before anything is submitted.
func TestE2ERunDirPrivateAndSecrets(t *testing.T) {
	for _, transport := range []string{"local", "rest", "ssh"} {
		t.Run(transport, func(t *testing.T) {
			slurmtest.RequireCluster(t)
			var sets []string
			if transport != "local" {
				sets = transportSets(t, transport)
			}
			t.Parallel()
			runDirSecrets(t, transport, sets)
		})
	}
}

func runDirSecrets(t *testing.T, transport string, sets []string) {
	tmp := t.TempDir()
	// Let only the run directory's own modes protect it.
	runs := filepath.Join(tmp, "runs")
	if err := os.Mkdir(runs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(tmp), tmp} { // t.TempDir's own, 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(tmp, "st.db")
	fileSecret := "hf_FILESECRET" + hex.EncodeToString([]byte(time.Now().String()))[:16]
	envSecret := "wandb-ENVSECRET-" + hex.EncodeToString([]byte(tmp))[:16]
	secretFile := filepath.Join(tmp, "hf_token")
	if err := os.WriteFile(secretFile, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openFile := filepath.Join(tmp, "hf_token_open")
	if err := os.WriteFile(openFile, []byte(fileSecret), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openFile, 0o644); err != nil {
		t.Fatal(err)
	}

	submit := func(extra ...string) string {
		t.Helper()
		args := append([]string{"submit", quickPipeline(t), "--json", "--set", "workdir=" + runs,
			"--set", "prep.enabled=false", "--set", "eval.enabled=false", "--set", "deploy.enabled=false",
			"--set", "train.script=" + filepath.Join(repoRoot(t), "cmd", "slurmtune", "testdata", "secret_train.sh")}, sets...)
		if transport != "ssh" {
			args = append(args, "--set", "environment.secrets.WANDB_API_KEY.env=ST_TEST_WANDB")
		}
		args = append(args, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath, args...)
		cmd.Env = append(os.Environ(), "SLURMTUNE_DB="+db, "ST_TEST_WANDB="+envSecret)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			t.Fatalf("submit %v: %v: %s", extra, err, se.String())
		}
		var sub submitJSON
		if err := json.Unmarshal(so.Bytes(), &sub); err != nil {
			t.Fatalf("submit --json: %v: %s", err, so.String())
		}
		return sub.Run
	}
	if transport == "ssh" {
		// {env:} would have to go on the login node's command line.
		r := slurmtune(t, db, append([]string{"submit", quickPipeline(t), "--set", "workdir=" + runs,
			"--set", "environment.secrets.WANDB_API_KEY.env=ST_TEST_WANDB"}, sets...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "environment.secrets.WANDB_API_KEY.env: the ssh transport passes") {
			t.Errorf("ssh with an {env:} secret: exit %d: %s", r.code, r.stderr)
		}
	}
	private := submit("--set", "environment.secrets.HF_TOKEN.file="+secretFile)
	group := ""
	if transport == "local" {
		group = submit("--set", "share=group", "--set", "environment.secrets.HF_TOKEN.file="+openFile)
	}

	// Modes, right after submit.
	checkModes := func(run string, dir, file, script fs.FileMode) string {
		t.Helper()
		s := statusOf(t, db, run)
		rd := s.Runs[0].RunDir
		for _, c := range []struct {
			path string
			want fs.FileMode
		}{
			{rd, dir}, {filepath.Join(rd, "logs"), dir},
			{filepath.Join(rd, "train.sbatch"), script},
			{filepath.Join(rd, "pipeline.yaml"), file}, {filepath.Join(rd, "hyperparameters.json"), file},
		} {
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Errorf("%s: %v", c.path, err)
				continue
			}
			if got := fi.Mode().Perm(); got != c.want {
				t.Errorf("%s: mode %v, want %v", c.path, got, c.want)
			}
		}
		return rd
	}
	privDir := checkModes(private, 0o700, 0o600, 0o700)
	unreadable := []string{filepath.Join(privDir, "train.sbatch"), filepath.Join(privDir, "pipeline.yaml")}
	dirs := []string{privDir}
	groupDir := ""
	if group != "" {
		groupDir = checkModes(group, 0o750, 0o640, 0o750)
		unreadable = append(unreadable, filepath.Join(groupDir, "train.sbatch"), filepath.Join(groupDir, "pipeline.yaml"))
		dirs = append(dirs, groupDir)
	}

	// Another user: nobody can read neither run's files. The control (a
	// world-readable file beside them) proves the check can succeed.
	asNobody := func(path string) error {
		return exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", path).Run()
	}
	control := filepath.Join(runs, "control")
	if err := os.WriteFile(control, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(control, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := asNobody(control); err != nil {
		t.Fatalf("nobody cannot read even a world-readable file (%v): the check proves nothing", err)
	}
	for _, p := range unreadable {
		if err := asNobody(p); err == nil {
			t.Errorf("nobody read %s", p)
		}
	}

	// The private run's job got both secrets.
	s := waitEnded(t, db, private, 4*time.Minute)
	if s.Runs[0].State != "SUCCEEDED" {
		t.Fatalf("private run: %+v\n%s", s.Runs[0], slurmtune(t, db, "logs", private, "train").stdout)
	}
	sum := func(v string) string { h := sha256.Sum256([]byte(v)); return hex.EncodeToString(h[:]) }
	log := slurmtune(t, db, "logs", private, "train").stdout
	if !strings.Contains(log, "hf_token sha256 "+sum(fileSecret)) {
		t.Errorf("the file secret did not reach the job:\n%s", log)
	}
	if transport != "ssh" && !strings.Contains(log, "wandb sha256 "+sum(envSecret)) {
		t.Errorf("the environment secret did not reach the job:\n%s", log)
	}
	// ... and is in no file under the run directory, nor in the database.
	for _, root := range dirs {
		if err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, rerr := os.ReadFile(p)
			if rerr != nil {
				t.Errorf("%s: %v", p, rerr)
				return nil
			}
			if bytes.Contains(data, []byte(fileSecret)) || bytes.Contains(data, []byte(envSecret)) {
				t.Errorf("a secret value is in %s", p)
			}
			return nil
		}); err != nil {
			t.Errorf("look for secrets under %s: %v", root, err)
		}
	}
	dbData, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(dbData, []byte(fileSecret)) || bytes.Contains(dbData, []byte(envSecret)) {
		t.Error("a secret value is in the database")
	}

	if group == "" {
		return
	}
	// The group run's job refused a secret file others can read.
	g := waitEnded(t, db, group, 4*time.Minute)
	if g.Runs[0].State == "SUCCEEDED" {
		t.Error("a job started with a world-readable secret file")
	}
	glog := slurmtune(t, db, "logs", group, "train").stdout
	if !strings.Contains(glog, "slurmtune: secret HF_TOKEN: "+openFile+" is readable by group or others (mode 644)") {
		t.Errorf("group run's log lacks the refusal:\n%s", glog)
	}
}
