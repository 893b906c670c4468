package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestE2EChainTimeLimitCapped: with train.chain_time_limit the train job
// asks for the partition's MaxTime (short: 30 min) instead of train.time,
// as Slurm reports the job's TimeLimit, over local, ssh and REST; render
// writes the same capped --time, also when the pipeline names the REST
// transport (its partitions read back from the cluster through that
// connection). slurmrestd 22.05 (v0.0.38) refuses sbatch's batch-only
// --signal=B:SIG@T ("Invalid SIGNAL specification"), so over REST the job
// gets SLURMTUNE_SELF_SIGNAL instead and its script arms its own timer:
// its log says so, with the time left that Slurm gives the capped job.
func TestE2EChainTimeLimitCapped(t *testing.T) {
	chained := []string{"--set", "cluster.partition=short", "--set", "train.time=2h", "--set", "train.chain_time_limit=true"}
	for _, transport := range []string{"local", "ssh", "rest"} {
		t.Run(transport, func(t *testing.T) {
			sets := transportSets(t, transport)
			t.Parallel()
			tmp := openTempDir(t)
			db := filepath.Join(tmp, "st.db")
			args := append([]string{"submit", quickPipeline(t), "--json", "--set", "workdir=" + filepath.Join(tmp, "runs"),
				"--set", "name=cap-" + transport}, sets...)
			r := slurmtune(t, db, append(args, chained...)...)
			if r.code != 0 {
				t.Fatalf("submit over %s: exit %d: %s", transport, r.code, r.stderr)
			}
			var sub submitJSON
			if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil || sub.Jobs["train"] == "" {
				t.Fatalf("submit --json: %v: %s", err, r.stdout)
			}
			defer slurmtune(t, db, "cancel", sub.Run)
			if got := slurmtest.JobField(t, sub.Jobs["train"], "TimeLimit"); got != "00:30:00" {
				t.Errorf("train job %s over %s: TimeLimit=%s, want 00:30:00 (short's MaxTime)", sub.Jobs["train"], transport, got)
			}
			if transport == "rest" {
				checkArmed(t, db, sub.Run, 30*60, 120)
			}
		})
	}
	for _, transport := range []string{"local", "rest"} {
		t.Run("render/"+transport, func(t *testing.T) {
			sets := transportSets(t, transport)
			dir := t.TempDir()
			args := append([]string{"render", quickPipeline(t), "-o", filepath.Join(dir, "out")}, sets...)
			r := slurmtune(t, filepath.Join(dir, "st.db"), append(args, chained...)...)
			if r.code != 0 {
				t.Fatalf("render: exit %d: %s", r.code, r.stderr)
			}
			b, err := os.ReadFile(filepath.Join(dir, "out", "train.sbatch"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "\n#SBATCH --time=00:30:00\n") {
				t.Errorf("render over %s: train.sbatch lacks --time=00:30:00:\n%s", transport, b)
			}
		})
	}
}

// armedRE is the line the train script logs when it arms its own timer.
var armedRE = regexp.MustCompile(`slurmtune: no --signal over this transport: SIG(\w+) in (\d+) s \(time left (\d+) s minus grace (\d+) s\)`)

// checkArmed waits for the run's train log to show the armed timer and
// checks its numbers: the time left is at most the job's limit and at most
// two minutes less (the job has just started), and the timer is the time
// left minus the grace.
func checkArmed(t *testing.T, db, run string, limit, grace int) {
	t.Helper()
	waitLog(t, db, run, "slurmtune: no --signal over this transport: ", 3*time.Minute)
	m := armedRE.FindStringSubmatch(trainLog(t, db, run))
	if m == nil {
		t.Fatalf("train log has no well-formed timer line:\n%s", trainLog(t, db, run))
	}
	t.Logf("train log: %s", m[0])
	in, _ := strconv.Atoi(m[2])
	left, _ := strconv.Atoi(m[3])
	g, _ := strconv.Atoi(m[4])
	if m[1] != "USR2" || g != grace || left > limit || left < limit-120 || in != max(left-grace, 0) {
		t.Errorf("timer line %q: want SIGUSR2, time left in (%d-120, %d], grace %d, in = left - grace", m[0], limit, limit, grace)
	}
}

// TestE2ERESTSelfSignalFires: over REST (v0.0.38, no --signal) the timer a
// preemptible train job arms really sends the stop signal to its batch
// shell before the time limit: with a 1-minute limit and a 45 s grace the
// script logs the signal about 15 s in, passes it to the ranks (the
// payload logs it) and requeues the job for the time limit.
func TestE2ERESTSelfSignalFires(t *testing.T) {
	sets := transportSets(t, "rest")
	t.Parallel()
	tmp := openTempDir(t)
	db := filepath.Join(tmp, "st.db")
	args := append([]string{"submit", quickPipeline(t), "--json", "--set", "workdir=" + filepath.Join(tmp, "runs"),
		"--set", "name=selfsig", "--set", "train.time=1", "--set", "train.preemptible=true", "--set", "train.signal_grace=45",
		"--set", "train.max_restarts=1",
		"--set", "train.script=" + filepath.Join(repoRoot(t), "cmd", "slurmtune", "testdata", "stop_train.sh")}, sets...)
	r := slurmtune(t, db, args...)
	if r.code != 0 {
		t.Fatalf("submit over rest: exit %d: %s", r.code, r.stderr)
	}
	var sub submitJSON
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil || sub.Jobs["train"] == "" {
		t.Fatalf("submit --json: %v: %s", err, r.stdout)
	}
	defer slurmtune(t, db, "cancel", sub.Run)
	checkArmed(t, db, sub.Run, 60, 45)
	waitLog(t, db, sub.Run, "slurmtune: requeueing job "+sub.Jobs["train"]+" after the time limit", 2*time.Minute)
	log := trainLog(t, db, sub.Run)
	for _, want := range []string{"slurmtune: SIGUSR2 at ", "payload: got SIGUSR2"} {
		if !strings.Contains(log, want) {
			t.Errorf("train log lacks %q:\n%s", want, log)
		}
	}
}
