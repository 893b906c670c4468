// Package conformance is one suite of tests that every slurm.Client transport
// (local commands, SSH, slurmrestd) must pass against a real cluster: the
// same jobs, the same questions, the same answers. A transport's test wires
// it up with Run; see conformance_test.go for the dev cluster's three.
//
// The suite writes its scripts and log directories through the transport's
// slurm.FileSystem under a fresh directory of $SLURMTUNE_CONFORMANCE_DIR
// (default: the local temporary directory, which the dev cluster's nodes
// share). Every job it submits is short or held, and is cancelled at the end.
package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

// Run runs the suite against the client and filesystem newClient returns.
// newClient is called once, with the parent test (it registers its own
// cleanup, and skips or fails when its transport is missing); the subtests
// run in parallel on it.
func Run(t *testing.T, newClient func(t *testing.T) (slurm.Client, slurm.FileSystem), opts ...Option) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c, fsys := newClient(t)
	s := &suite{c: c, fs: fsys, tag: "slurmtune-conformance:" + randHex(4) + ":"}
	root := os.Getenv("SLURMTUNE_CONFORMANCE_DIR")
	if root == "" {
		root = os.TempDir()
	}
	s.base = path.Join(root, "slurmtune-conformance-"+randHex(4))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := fsys.MkdirAll(ctx, s.base, 0o755); err != nil {
		t.Fatalf("create the suite's directory through the FileSystem: %v", err)
	}
	t.Cleanup(func() {
		// Cleanups run after the parallel subtests: cancel whatever is left
		// (ended jobs are not an error) and remove the directory when it is
		// on this host.
		s.mu.Lock()
		ids := append([]string(nil), s.ids...)
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Cancel(ctx, ids); err != nil {
			t.Errorf("cancel the suite's jobs %v: %v", ids, err)
		}
		if _, err := os.Stat(s.base); err == nil {
			os.RemoveAll(s.base)
		}
	})
	t.Run("SubmitCompletes", s.submitCompletes)
	t.Run("FollowLog", s.followLog)
	t.Run("DependencyOnHeldJobCancelled", s.dependencyCancel)
	t.Run("FailingJob", s.failingJob)
	t.Run("JobsByComment", s.jobsByComment)
	t.Run("UnknownIDsAbsent", s.unknownIDs)
	t.Run("MultiNodeAllocation", s.multiNodeAllocation)
	if !o.noArrayTasks {
		t.Run("ArrayCorrelatedAndAnyDependencies", s.arrayDependencies)
	}
}

// Option changes what the suite asks of a transport.
type Option func(*options)

type options struct{ noArrayTasks bool }

// WithoutArrayTasks leaves out the job array case, for a transport that
// submits arrays but cannot yet ask about their tasks by ARRAY_TASK id.
func WithoutArrayTasks() Option { return func(o *options) { o.noArrayTasks = true } }

type suite struct {
	c    slurm.Client
	fs   slurm.FileSystem
	base string
	tag  string // unique to this run of the suite

	mu  sync.Mutex
	ids []string
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// job is one batch job's files, written through the FileSystem.
type job struct {
	dir, script, log, workdir string
	body                      []byte
}

// prepare writes a batch script (with a few #SBATCH lines, as slurmtune's
// templates have) under its own directory, with a log directory and a
// working directory beside it.
func (s *suite) prepare(t *testing.T, name, body string) job {
	t.Helper()
	return s.prepareWith(t, name, []string{"--time=2", "--mem=50M"}, body)
}

// prepareWith is prepare with the script's resource directives given.
func (s *suite) prepareWith(t *testing.T, name string, directives []string, body string) job {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	dir := path.Join(s.base, name)
	j := job{dir: dir, script: path.Join(dir, name+".sbatch"), log: path.Join(dir, "logs", name+".log"), workdir: path.Join(dir, "work")}
	for _, d := range []string{path.Join(dir, "logs"), j.workdir} {
		if err := s.fs.MkdirAll(ctx, d, 0o755); err != nil {
			t.Fatalf("MkdirAll %s: %v", d, err)
		}
	}
	var script strings.Builder
	script.WriteString("#!/bin/bash\n#SBATCH --job-name=st-conf-" + name + "\n")
	for _, d := range directives {
		script.WriteString("#SBATCH " + d + "\n")
	}
	script.WriteString("\n" + body + "\n")
	j.body = []byte(script.String())
	if err := s.fs.WriteFile(ctx, j.script, j.body, 0o755); err != nil {
		t.Fatalf("WriteFile %s: %v", j.script, err)
	}
	got, err := s.fs.ReadFile(ctx, j.script)
	if err != nil || string(got) != string(j.body) {
		t.Fatalf("ReadFile %s after WriteFile: %v, %q", j.script, err, got)
	}
	return j
}

// submit submits j as slurmtune does (script path and content, working
// directory, comment, --output) and remembers the id for the cleanup.
func (s *suite) submit(t *testing.T, j job, comment string, afterOK []string, extra ...string) string {
	t.Helper()
	req := slurm.SubmitRequest{
		Script:     j.body,
		ScriptPath: j.script,
		WorkDir:    j.workdir,
		AfterOK:    afterOK,
		Comment:    comment,
		ExtraArgs:  append([]string{"--output=" + j.log}, extra...),
	}
	id, err := s.c.Submit(ctxFor(t, time.Minute), req)
	if err != nil {
		t.Fatalf("Submit %s: %v", j.script, err)
	}
	if id == "" || strings.Trim(id, "0123456789") != "" {
		t.Fatalf("Submit %s returned job id %q", j.script, id)
	}
	s.mu.Lock()
	s.ids = append(s.ids, id)
	s.mu.Unlock()
	return id
}

// jobs asks about ids and returns the answer by id.
func (s *suite) jobs(t *testing.T, ids ...string) map[string]slurm.Job {
	t.Helper()
	js, err := s.c.Jobs(ctxFor(t, time.Minute), ids)
	if err != nil {
		t.Fatalf("Jobs %v: %v", ids, err)
	}
	out := map[string]slurm.Job{}
	for _, j := range js {
		if _, dup := out[j.ID]; dup {
			t.Errorf("Jobs %v: job %s answered twice", ids, j.ID)
		}
		out[j.ID] = j
	}
	return out
}

// waitJob polls Jobs for id until cond holds, returning the states it saw
// (consecutive repeats folded) and the last answer.
func (s *suite) waitJob(t *testing.T, id string, limit time.Duration, cond func(slurm.Job) bool) ([]slurm.State, slurm.Job) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var seen []slurm.State
	for {
		j, ok := s.jobs(t, id)[id]
		if ok && (len(seen) == 0 || seen[len(seen)-1] != j.State) {
			seen = append(seen, j.State)
		}
		if ok && cond(j) {
			return seen, j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met within %s; states seen %v, last %+v (known: %v)", id, limit, seen, j, ok)
		}
		time.Sleep(time.Second)
	}
}

func terminal(j slurm.Job) bool { return j.State.Terminal() }

// rank orders the states a job that runs to completion goes through.
var rank = map[slurm.State]int{
	slurm.StatePending: 0, slurm.StateConfiguring: 1, slurm.StateRunning: 2,
	slurm.StateCompleting: 3, slurm.StateCompleted: 4,
}

// submitCompletes: a job written and submitted through the transport runs in
// its working directory with its comment, logs to its --output path, moves
// forward through PENDING/RUNNING to COMPLETED with exit code 0, and
// cancelling it afterwards is not an error.
func (s *suite) submitCompletes(t *testing.T) {
	t.Parallel()
	j := s.prepare(t, "complete", `echo "cwd=$(pwd)"; echo "job=$SLURM_JOB_ID"; echo done`)
	comment := s.tag + "complete"
	id := s.submit(t, j, comment, nil)
	seen, last := s.waitJob(t, id, 2*time.Minute, terminal)
	prev := -1
	for _, st := range seen {
		r, ok := rank[st]
		if !ok || r < prev {
			t.Errorf("job %s went through %v: not a forward progression to COMPLETED", id, seen)
			break
		}
		prev = r
	}
	if last.State != slurm.StateCompleted || last.ExitCode != 0 || last.Signal != 0 {
		t.Fatalf("job %s ended %s exit %d signal %d (states %v), want COMPLETED 0", id, last.State, last.ExitCode, last.Signal, seen)
	}
	if last.Comment != comment {
		t.Errorf("job %s comment %q, want %q", id, last.Comment, comment)
	}
	if last.Name != "st-conf-complete" {
		t.Errorf("job %s name %q, want st-conf-complete (from the #SBATCH line)", id, last.Name)
	}
	t.Logf("job %s: states %v, source %s", id, seen, last.Source)

	ctx := ctxFor(t, time.Minute)
	want := fmt.Sprintf("cwd=%s\njob=%s\ndone\n", j.workdir, id)
	var log []byte
	// The log is complete once the job is; give a shared filesystem a moment.
	for i := 0; i < 20; i++ {
		b, err := s.fs.ReadAt(ctx, j.log, 0, 1<<16)
		if err == nil && string(b) == want {
			log = b
			break
		}
		log = b
		time.Sleep(250 * time.Millisecond)
	}
	if string(log) != want {
		t.Errorf("log %s through ReadAt: %q, want %q", j.log, log, want)
	}
	// ReadAt: a window, and past the end.
	if b, err := s.fs.ReadAt(ctx, j.log, 4, 3); err != nil || string(b) != want[4:7] {
		t.Errorf("ReadAt(offset 4, max 3) = %q, %v; want %q", b, err, want[4:7])
	}
	if b, err := s.fs.ReadAt(ctx, j.log, int64(len(want)+10), 100); err != nil || len(b) != 0 {
		t.Errorf("ReadAt past the end = %q, %v; want no bytes, no error", b, err)
	}

	if err := s.c.Cancel(ctx, []string{id}); err != nil {
		t.Errorf("Cancel of the finished job %s: %v, want no error", id, err)
	}
}

// followLog: a job that prints a line a second is followed through ReadAt at
// increasing offsets while it runs; the pieces add up to the whole log.
func (s *suite) followLog(t *testing.T) {
	t.Parallel()
	const lines = 6
	j := s.prepare(t, "follow", fmt.Sprintf(`for i in $(seq 1 %d); do echo "line $i"; sleep 1; done`, lines))
	id := s.submit(t, j, s.tag+"follow", nil)
	ctx := ctxFor(t, 3*time.Minute)
	var got strings.Builder
	var off int64
	reads, whileRunning := 0, 0
	ended := false
	lastPoll := time.Time{}
	deadline := time.Now().Add(2 * time.Minute)
follow:
	for {
		b, err := s.fs.ReadAt(ctx, j.log, off, 4096)
		switch {
		case err != nil && off > 0:
			t.Fatalf("ReadAt %s at %d: %v", j.log, off, err)
		case err == nil && len(b) > 0:
			got.Write(b)
			off += int64(len(b))
			reads++
			if !ended {
				whileRunning++
			}
		case ended:
			// Nothing more after the job ended: done.
			break follow
		}
		if time.Since(lastPoll) >= time.Second {
			lastPoll = time.Now()
			if jj, ok := s.jobs(t, id)[id]; ok && jj.State.Terminal() {
				if jj.State != slurm.StateCompleted {
					t.Fatalf("job %s ended %s", id, jj.State)
				}
				ended = true
				// One more read after a pause picks up the tail.
				time.Sleep(500 * time.Millisecond)
				continue
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not end within 2m; log so far %q", id, got.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if got.String() != want.String() {
		t.Errorf("log followed through ReadAt: %q, want %q", got.String(), want.String())
	}
	if whileRunning < 3 {
		t.Errorf("only %d ReadAt calls returned new bytes while the job ran (%d in all): the growing log was not followed", whileRunning, reads)
	}
	t.Logf("followed %s in %d reads (%d while running)", j.log, reads, whileRunning)
}

// dependencyCancel: a job after (afterok) a held job is PENDING with reason
// Dependency; cancelled, it is CANCELLED, and so is the held job; cancelling
// them again is not an error.
func (s *suite) dependencyCancel(t *testing.T) {
	t.Parallel()
	held := s.prepare(t, "held", "echo held")
	dep := s.prepare(t, "dependent", "echo dependent")
	a := s.submit(t, held, s.tag+"held", nil, "--hold")
	b := s.submit(t, dep, s.tag+"dependent", []string{a})
	deadline := time.Now().Add(time.Minute)
	for {
		got := s.jobs(t, a, b)
		ja, jb := got[a], got[b]
		if ja.State == slurm.StatePending && jb.State == slurm.StatePending && jb.Reason == "Dependency" {
			if ja.Reason != "JobHeldUser" {
				t.Errorf("held job %s: reason %q, want JobHeldUser", a, ja.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held %s and dependent %s: %+v / %+v, want both PENDING, the dependent with reason Dependency", a, b, ja, jb)
		}
		time.Sleep(time.Second)
	}
	ctx := ctxFor(t, time.Minute)
	if err := s.c.Cancel(ctx, []string{b}); err != nil {
		t.Fatalf("Cancel %s: %v", b, err)
	}
	_, jb := s.waitJob(t, b, time.Minute, terminal)
	if jb.State != slurm.StateCancelled {
		t.Errorf("dependent job %s after cancel: %s, want CANCELLED", b, jb.State)
	}
	if err := s.c.Cancel(ctx, []string{a}); err != nil {
		t.Fatalf("Cancel %s: %v", a, err)
	}
	_, ja := s.waitJob(t, a, time.Minute, terminal)
	if ja.State != slurm.StateCancelled {
		t.Errorf("held job %s after cancel: %s, want CANCELLED", a, ja.State)
	}
	if err := s.c.Cancel(ctx, []string{a, b}); err != nil {
		t.Errorf("Cancel of already cancelled jobs %s %s: %v, want no error", a, b, err)
	}
}

// failingJob: a script that exits 3 is FAILED with exit code 3.
func (s *suite) failingJob(t *testing.T) {
	t.Parallel()
	j := s.prepare(t, "failing", "echo failing; exit 3")
	id := s.submit(t, j, s.tag+"failing", nil)
	seen, last := s.waitJob(t, id, 2*time.Minute, terminal)
	if last.State != slurm.StateFailed || last.ExitCode != 3 {
		t.Errorf("job %s ended %s exit %d (states %v), want FAILED with exit code 3", id, last.State, last.ExitCode, seen)
	}
	if err := s.c.Cancel(ctxFor(t, time.Minute), []string{id}); err != nil {
		t.Errorf("Cancel of the failed job %s: %v, want no error", id, err)
	}
}

// jobsByComment: a job is found by its exact tag; a job whose tag merely
// starts with it is told apart by the comment; an unused tag finds nothing.
func (s *suite) jobsByComment(t *testing.T) {
	t.Parallel()
	j := s.prepare(t, "bycomment", "echo tagged")
	tag := s.tag + "bycomment"
	id := s.submit(t, j, tag, nil, "--hold")
	other := s.submit(t, j, tag+"-other", nil, "--hold")
	ctx := ctxFor(t, time.Minute)
	js, err := s.c.JobsByComment(ctx, tag)
	if err != nil {
		t.Fatalf("JobsByComment %s: %v", tag, err)
	}
	var exact []string
	prefixed := map[string]bool{}
	for _, x := range js {
		if !strings.HasPrefix(x.Comment, tag) {
			t.Errorf("JobsByComment %q returned job %s with comment %q", tag, x.ID, x.Comment)
		}
		prefixed[x.ID] = true
		if x.Comment == tag {
			exact = append(exact, x.ID)
			if x.State != slurm.StatePending {
				t.Errorf("tagged held job %s: %s, want PENDING", x.ID, x.State)
			}
		}
	}
	if len(exact) != 1 || exact[0] != id {
		t.Errorf("JobsByComment %q: jobs with exactly that tag %v, want [%s] (all: %+v)", tag, exact, id, js)
	}
	if !prefixed[other] {
		t.Errorf("JobsByComment %q lacks job %s tagged %q (a prefix search)", tag, other, tag+"-other")
	}
	none, err := s.c.JobsByComment(ctx, s.tag+"no-such-tag")
	if err != nil || len(none) != 0 {
		t.Errorf("JobsByComment of an unused tag: %+v, %v; want none", none, err)
	}
	if err := s.c.Cancel(ctx, []string{id, other}); err != nil {
		t.Errorf("Cancel %s %s: %v", id, other, err)
	}
}

// unknownIDs: ids the cluster does not know (never existed, or purged) are
// absent from Jobs' answer, not an error, alone or beside a known job.
func (s *suite) unknownIDs(t *testing.T) {
	t.Parallel()
	j := s.prepare(t, "known", "echo known")
	id := s.submit(t, j, s.tag+"known", nil, "--hold")
	ctx := ctxFor(t, time.Minute)
	for _, ids := range [][]string{{id, "999999990"}, {"999999991"}, {"999999992", "999999993"}} {
		js, err := s.c.Jobs(ctx, ids)
		if err != nil {
			t.Errorf("Jobs(%v): %v; want the unknown ids simply absent", ids, err)
			continue
		}
		want := 0
		if ids[0] == id {
			want = 1
		}
		if len(js) != want || want == 1 && (js[0].ID != id || js[0].State != slurm.StatePending) {
			t.Errorf("Jobs(%v) = %+v; want only %s PENDING", ids, js, id)
		}
	}
	if err := s.c.Cancel(ctx, []string{id}); err != nil {
		t.Errorf("Cancel %s: %v", id, err)
	}
}

// multiNodeAllocation: a job asking for 2 nodes x 2 tasks, 2 CPUs a task,
// memory, 2 GPUs a node and a time limit gets exactly that, as the job
// itself sees it (Slurm's environment in the batch step and in each srun
// task, and the controller's record of the job). A
// transport that drops or misreads a directive fails here, however
// politely the submission was answered.
func (s *suite) multiNodeAllocation(t *testing.T) {
	t.Parallel()
	j := s.prepareWith(t, "alloc",
		[]string{"--time=3", "--nodes=2", "--ntasks-per-node=2", "--cpus-per-task=2", "--mem=200M", "--gres=gpu:2"},
		`echo "nodes=$SLURM_JOB_NUM_NODES"
echo "ntasks=$SLURM_NTASKS"
echo "cpus_per_node=$SLURM_JOB_CPUS_PER_NODE"
echo "mem_per_node=$SLURM_MEM_PER_NODE"
echo "time_limit=$(scontrol show job -o "$SLURM_JOB_ID" | grep -o 'TimeLimit=[^ ]*' | cut -d= -f2)"
srun --kill-on-bad-exit=1 bash -c 'echo "task=$SLURM_PROCID host=$(hostname) gpus=${CUDA_VISIBLE_DEVICES:-none}"'`)
	id := s.submit(t, j, s.tag+"alloc", nil)
	_, last := s.waitJob(t, id, 3*time.Minute, terminal)
	if last.State != slurm.StateCompleted || last.ExitCode != 0 {
		t.Fatalf("job %s ended %s exit %d (reason %q), want COMPLETED 0", id, last.State, last.ExitCode, last.Reason)
	}
	ctx := ctxFor(t, time.Minute)
	var log []byte
	for i := 0; i < 20; i++ {
		b, err := s.fs.ReadAt(ctx, j.log, 0, 1<<16)
		log = b
		if err == nil && strings.Count(string(b), "task=") == 4 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	want := map[string]string{"nodes": "2", "ntasks": "4", "cpus_per_node": "4(x2)", "mem_per_node": "200", "time_limit": "00:03:00"}
	tasksOn := map[string]int{}
	tasks := 0
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "task=") {
			if w, known := want[k]; known && v != w {
				t.Errorf("job %s: %s=%s, want %s (log %q)", id, k, v, w, log)
			}
			delete(want, k)
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !strings.HasPrefix(f[1], "host=") || !strings.HasPrefix(f[2], "gpus=") {
			t.Errorf("job %s: unexpected log line %q", id, line)
			continue
		}
		tasks++
		tasksOn[strings.TrimPrefix(f[1], "host=")]++
		if g := strings.TrimPrefix(f[2], "gpus="); len(strings.Split(g, ",")) != 2 || g == "none" {
			t.Errorf("job %s: task sees GPUs %q, want 2 (log %q)", id, g, log)
		}
	}
	for k := range want {
		t.Errorf("job %s: the log lacks %s= (log %q)", id, k, log)
	}
	if tasks != 4 || len(tasksOn) != 2 {
		t.Errorf("job %s: %d tasks on hosts %v, want 4 tasks on 2 hosts (log %q)", id, tasks, tasksOn, log)
	}
	for h, n := range tasksOn {
		if n != 2 {
			t.Errorf("job %s: %d tasks on %s, want 2 (log %q)", id, n, h, log)
		}
	}
	if last.Nodes == "" {
		t.Errorf("job %s: Slurm reported no nodes", id)
	}
	t.Logf("job %s ran on %s: %v", id, last.Nodes, tasksOn)
}

// arrayDependencies: an array (--array=0-2%2) whose task 1 fails; a second
// array whose task N waits for task N of the first (aftercorr) runs tasks 0
// and 2 and never runs task 1; a job after the second array (afterany) runs
// once all its tasks ended. Each task is asked about as ARRAY_TASK, logs to
// its own %a file, and Slurm's record of the dependencies is what was asked.
func (s *suite) arrayDependencies(t *testing.T) {
	t.Parallel()
	body := `echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID"; if [ "$SLURM_ARRAY_TASK_ID" = 1 ]; then exit 3; fi`
	first := s.prepare(t, "array-first", body)
	second := s.prepare(t, "array-second", `echo "second $SLURM_ARRAY_TASK_ID"`)
	last := s.prepare(t, "array-last", "echo last")
	sub := func(j job, comment string, req slurm.SubmitRequest) string {
		t.Helper()
		req.Script, req.ScriptPath, req.WorkDir, req.Comment = j.body, j.script, j.workdir, comment
		req.ExtraArgs = []string{"--output=" + strings.Replace(j.log, ".log", "-%a.log", 1)}
		id, err := s.c.Submit(ctxFor(t, time.Minute), req)
		if err != nil {
			t.Fatalf("Submit %s: %v", j.script, err)
		}
		s.mu.Lock()
		s.ids = append(s.ids, id)
		s.mu.Unlock()
		return id
	}
	a := sub(first, s.tag+"array-first", slurm.SubmitRequest{Array: "0-2%2"})
	b := sub(second, s.tag+"array-second", slurm.SubmitRequest{Array: "0-2", AfterCorr: []string{a}})
	c := sub(last, s.tag+"array-last", slurm.SubmitRequest{AfterAny: []string{b}})
	task := func(id string, k int) string { return fmt.Sprintf("%s_%d", id, k) }
	ids := []string{task(a, 0), task(a, 1), task(a, 2), task(b, 0), task(b, 1), task(b, 2), c}
	deadline := time.Now().Add(3 * time.Minute)
	var got map[string]slurm.Job
	for {
		got = s.jobs(t, ids...)
		done := len(got) == len(ids)
		for _, j := range got {
			done = done && j.State.Terminal()
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("array jobs not all ended within 3 minutes: %+v", got)
		}
		time.Sleep(time.Second)
	}
	want := map[string]slurm.State{
		task(a, 0): slurm.StateCompleted, task(a, 1): slurm.StateFailed, task(a, 2): slurm.StateCompleted,
		task(b, 0): slurm.StateCompleted, task(b, 1): slurm.StateCancelled, task(b, 2): slurm.StateCompleted,
		c: slurm.StateCompleted,
	}
	for id, st := range want {
		if got[id].State != st {
			t.Errorf("%s: %s (reason %q), want %s", id, got[id].State, got[id].Reason, st)
		}
	}
	if got[task(a, 1)].ExitCode != 3 {
		t.Errorf("%s exit code %d, want 3", task(a, 1), got[task(a, 1)].ExitCode)
	}
	if !got[c].Start.IsZero() && got[c].Start.Before(got[task(b, 2)].End) {
		t.Errorf("afterany job %s started %v, before the array's last task ended %v", c, got[c].Start, got[task(b, 2)].End)
	}
	for k := 0; k < 3; k++ {
		logPath := strings.Replace(first.log, ".log", fmt.Sprintf("-%d.log", k), 1)
		out, err := s.fs.ReadFile(ctxFor(t, time.Minute), logPath)
		if want := fmt.Sprintf("task %d of %s", k, a); err != nil || !strings.Contains(string(out), want) {
			t.Errorf("task %d's log %s: %v %q, want %q", k, logPath, err, out, want)
		}
	}
}
