package cmdline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm"
)

// fakeRunner records every command and answers with handle.
type fakeRunner struct {
	calls  []Command
	handle func(cmd Command) ([]byte, error)
}

func (f *fakeRunner) Run(_ context.Context, cmd Command) ([]byte, error) {
	f.calls = append(f.calls, cmd)
	if f.handle == nil {
		return nil, nil
	}
	return f.handle(cmd)
}

// count is how many commands ran the program name.
func (f *fakeRunner) count(name string) int {
	n := 0
	for _, c := range f.calls {
		if c.Argv[0] == name {
			n++
		}
	}
	return n
}

func (f *fakeRunner) programs() []string {
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Argv[0])
	}
	return out
}

// jobsArg returns the ids of a --jobs= argument.
func jobsArg(argv []string) []string {
	for _, a := range argv {
		if v, ok := strings.CutPrefix(a, "--jobs="); ok {
			return strings.Split(v, ",")
		}
	}
	return nil
}

// cluster is a fake Slurm: squeue lines of the jobs the controller holds and
// sacct lines of the jobs accounting knows, by id.
type cluster struct {
	squeue, sacct map[string]string
	// errors by program name
	errs map[string]error
	// scontrol is the whole "scontrol --oneliner show job" output.
	scontrol string
}

func (c *cluster) handle(cmd Command) ([]byte, error) {
	if err := c.errs[cmd.Argv[0]]; err != nil {
		return nil, err
	}
	var src map[string]string
	switch cmd.Argv[0] {
	case "squeue":
		src = c.squeue
	case "sacct":
		src = c.sacct
	case "scontrol":
		return []byte(c.scontrol), nil
	default:
		return nil, fmt.Errorf("unexpected command %q", cmd.Argv)
	}
	ids := jobsArg(cmd.Argv)
	if ids == nil {
		for id := range src {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	var b strings.Builder
	for _, id := range ids {
		if l, ok := src[id]; ok {
			b.WriteString(l + "\n")
		}
	}
	return []byte(b.String()), nil
}

func squeueLine(id, state, comment string) string {
	return id + "|" + state + "|None|st-node1|0:06|2026-11-26T23:16:31|0|0|st-tiny-train|" + comment
}

func sacctLine(id, state, exit, comment string) string {
	return id + "|" + state + "|" + exit + "|None|st-node1|7|2026-11-26T23:16:31|2026-11-26T23:16:38|st-tiny-train|" + comment
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(1000 + i)
	}
	return out
}

func TestJobsRoundTrips(t *testing.T) {
	tests := []struct {
		name       string
		n          int
		live, gone func(i int) bool // which of the n ids squeue / sacct know
		wantSacct  int
	}{
		{name: "one live", n: 1, live: func(int) bool { return true }, gone: func(int) bool { return false }, wantSacct: 0},
		{name: "one gone", n: 1, live: func(int) bool { return false }, gone: func(int) bool { return true }, wantSacct: 1},
		{name: "50 all live", n: 50, live: func(int) bool { return true }, gone: func(int) bool { return false }, wantSacct: 0},
		{name: "50 half gone", n: 50, live: func(i int) bool { return i%2 == 0 }, gone: func(i int) bool { return i%2 == 1 }, wantSacct: 1},
		{name: "500 mostly gone, some unknown", n: 500, live: func(i int) bool { return i < 10 }, gone: func(i int) bool { return i >= 10 && i < 450 }, wantSacct: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &cluster{squeue: map[string]string{}, sacct: map[string]string{}}
			all := ids(tt.n)
			var wantIDs, wantGone []string
			for i, id := range all {
				if tt.live(i) {
					c.squeue[id] = squeueLine(id, "RUNNING", "slurmtune:r:train")
					wantIDs = append(wantIDs, id)
				} else {
					wantGone = append(wantGone, id)
				}
				if tt.gone(i) {
					c.sacct[id] = sacctLine(id, "COMPLETED", "0:0", "slurmtune:r:train")
					wantIDs = append(wantIDs, id)
				}
			}
			// Jobs outside the request must not leak in.
			c.squeue["1"] = squeueLine("1", "RUNNING", "other")
			r := &fakeRunner{handle: c.handle}
			got, err := New(r).Jobs(context.Background(), all)
			if err != nil {
				t.Fatal(err)
			}
			if r.count("squeue") != 1 || r.count("sacct") != tt.wantSacct || len(r.calls) != 1+tt.wantSacct {
				t.Fatalf("commands %v, want one squeue and %d sacct", r.programs(), tt.wantSacct)
			}
			if q := jobsArg(r.calls[0].Argv); !reflect.DeepEqual(q, all) {
				t.Errorf("squeue --jobs = %d ids, want all %d", len(q), len(all))
			}
			if tt.wantSacct == 1 {
				if a := jobsArg(r.calls[1].Argv); !reflect.DeepEqual(a, wantGone) {
					t.Errorf("sacct --jobs = %v, want only the %d jobs squeue did not know", a, len(wantGone))
				}
			}
			sort.Strings(wantIDs)
			var gotIDs []string
			for _, j := range got {
				gotIDs = append(gotIDs, j.ID)
				wantSource := "sacct"
				if _, ok := c.squeue[j.ID]; ok {
					wantSource = "squeue"
				}
				if j.Source != wantSource {
					t.Errorf("job %s from %s, want %s", j.ID, j.Source, wantSource)
				}
			}
			if !reflect.DeepEqual(gotIDs, wantIDs) {
				t.Errorf("got ids %v, want %v (sorted, unknown ones absent)", gotIDs, wantIDs)
			}
		})
	}
}

func TestJobsArgv(t *testing.T) {
	c := &cluster{squeue: map[string]string{}, sacct: map[string]string{"7": sacctLine("7", "FAILED", "1:0", "c")}}
	r := &fakeRunner{handle: c.handle}
	if _, err := New(r).Jobs(context.Background(), []string{"7", "8"}); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"squeue", "--noheader", "--states=all", "--Format=" + SqueueFormat, "--jobs=7,8"},
		{"sacct", "--noheader", "--parsable2", "--allocations", "--duplicates", "--format=" + SacctFormat, "--jobs=7,8"},
	}
	if len(r.calls) != len(want) {
		t.Fatalf("commands %v", r.programs())
	}
	for i, w := range want {
		if !reflect.DeepEqual(r.calls[i].Argv, w) {
			t.Errorf("command %d = %q, want %q", i, r.calls[i].Argv, w)
		}
	}
}

func TestJobsNone(t *testing.T) {
	r := &fakeRunner{}
	got, err := New(r).Jobs(context.Background(), nil)
	if err != nil || got != nil || len(r.calls) != 0 {
		t.Errorf("Jobs(nil) = %v, %v after %d commands; want nothing and no command", got, err, len(r.calls))
	}
}

// For a job the controller still holds, squeue is what counts, even when
// accounting lags behind.
func TestJobsSqueueAuthoritative(t *testing.T) {
	c := &cluster{
		squeue: map[string]string{"5": "5|CANCELLED|None|st-node1|0:06|2026-11-26T23:16:31|1|15|st-tiny-train|slurmtune:r:train"},
		sacct:  map[string]string{"5": sacctLine("5", "PENDING", "0:0", "slurmtune:r:train")},
	}
	r := &fakeRunner{handle: c.handle}
	got, err := New(r).Jobs(context.Background(), []string{"5"})
	if err != nil {
		t.Fatal(err)
	}
	if r.count("sacct") != 0 {
		t.Errorf("sacct asked about a job squeue holds: %v", r.programs())
	}
	if len(got) != 1 || got[0].State != slurm.StateCancelled || got[0].Signal != 15 || got[0].Restarts != 1 {
		t.Errorf("got %+v, want squeue's CANCELLED with signal 15 and 1 restart", got)
	}
}

func TestJobsAccountingDisabled(t *testing.T) {
	for _, stderr := range []string{
		"sacct: error: Slurm accounting storage is disabled\n",
		"sacct: error: Problem talking to the database: Connection refused\n",
		"sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection to host:slurmdbd:6819: Connection refused\n",
	} {
		t.Run(stderr, func(t *testing.T) {
			c := &cluster{
				squeue: map[string]string{"21": squeueLine("21", "RUNNING", "c")},
				errs:   map[string]error{"sacct": &ExitError{Argv: []string{"sacct"}, Code: 1, Stderr: stderr}},
				// scontrol lists every job the controller holds: only the asked ones count.
				scontrol: scontrolCompleted + "\n" + scontrolFailed + "\n" +
					"JobId=99 JobName=other JobState=RUNNING Reason=None ExitCode=0:0 Comment=x\n",
			}
			r := &fakeRunner{handle: c.handle}
			got, err := New(r).Jobs(context.Background(), []string{"3", "21", "23", "40"})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"squeue", "sacct", "scontrol"}; !reflect.DeepEqual(r.programs(), want) {
				t.Fatalf("commands %v, want %v", r.programs(), want)
			}
			if want := []string{"scontrol", "--oneliner", "show", "job"}; !reflect.DeepEqual(r.calls[2].Argv, want) {
				t.Errorf("scontrol argv %q, want %q", r.calls[2].Argv, want)
			}
			var summary []string
			for _, j := range got {
				summary = append(summary, j.ID+":"+string(j.State)+":"+j.Source)
			}
			if want := []string{"3:COMPLETED:scontrol", "21:RUNNING:squeue", "23:FAILED:scontrol"}; !reflect.DeepEqual(summary, want) {
				t.Errorf("got %v, want %v", summary, want)
			}
		})
	}
}

func TestJobsInvalidJobID(t *testing.T) {
	c := &cluster{
		sacct: map[string]string{"3": sacctLine("3", "COMPLETED", "0:0", "slurmtune:r1:train")},
		errs:  map[string]error{"squeue": &ExitError{Argv: []string{"squeue"}, Code: 1, Stderr: "slurm_load_jobs error: Invalid job id specified\n"}},
	}
	r := &fakeRunner{handle: c.handle}
	got, err := New(r).Jobs(context.Background(), []string{"3"})
	if err != nil {
		t.Fatalf("an id the controller purged is not an error: %v", err)
	}
	if len(got) != 1 || got[0].State != slurm.StateCompleted || got[0].Source != "sacct" {
		t.Errorf("got %+v, want accounting's COMPLETED", got)
	}
	if want := []string{"squeue", "sacct"}; !reflect.DeepEqual(r.programs(), want) {
		t.Errorf("commands %v, want %v", r.programs(), want)
	}
}

func TestJobsErrors(t *testing.T) {
	exit := func(prog, stderr string) error {
		return &ExitError{Argv: []string{prog}, Code: 1, Stderr: stderr}
	}
	tests := []struct {
		name        string
		errs        map[string]error
		unavailable bool
		wantErr     string
		wantProgs   []string
	}{
		{name: "controller down", errs: map[string]error{"squeue": exit("squeue", "squeue: error: Unable to contact slurm controller (connect failure)\n")},
			unavailable: true, wantErr: "squeue: slurm controller unavailable: squeue: squeue: error: Unable to contact slurm controller (connect failure)", wantProgs: []string{"squeue"}},
		{name: "socket timeout", errs: map[string]error{"squeue": exit("squeue", "slurm_load_jobs error: Socket timed out on send/recv operation")},
			unavailable: true, wantProgs: []string{"squeue"}},
		{name: "squeue fails otherwise", errs: map[string]error{"squeue": exit("squeue", "squeue: error: Invalid user: nobody")},
			wantErr: "squeue: squeue: squeue: error: Invalid user: nobody", wantProgs: []string{"squeue"}},
		{name: "sacct fails otherwise: no fallback", errs: map[string]error{"sacct": exit("sacct", "sacct: error: Unknown arguments")},
			wantErr: "sacct: sacct: sacct: error: Unknown arguments", wantProgs: []string{"squeue", "sacct"}},
		{name: "scontrol fallback fails", errs: map[string]error{
			"sacct":    exit("sacct", "sacct: error: Slurm accounting storage is disabled"),
			"scontrol": exit("scontrol", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"),
		}, unavailable: true, wantProgs: []string{"squeue", "sacct", "scontrol"}},
		{name: "runner cannot run at all", errs: map[string]error{"squeue": errors.New("ssh: connect to host login1: no route to host")},
			wantErr: "squeue: ssh: connect to host login1: no route to host", wantProgs: []string{"squeue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &cluster{squeue: map[string]string{}, sacct: map[string]string{}, errs: tt.errs}
			r := &fakeRunner{handle: c.handle}
			_, err := New(r).Jobs(context.Background(), []string{"1", "2"})
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, slurm.ErrUnavailable) != tt.unavailable {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, !tt.unavailable, tt.unavailable)
			}
			if tt.wantErr != "" && err.Error() != tt.wantErr {
				t.Errorf("err = %q, want %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(r.programs(), tt.wantProgs) {
				t.Errorf("commands %v, want %v", r.programs(), tt.wantProgs)
			}
		})
	}
}

func TestJobsByComment(t *testing.T) {
	c := &cluster{
		squeue: map[string]string{
			"10": squeueLine("10", "RUNNING", "slurmtune:r1:train"),
			"11": squeueLine("11", "PENDING", "slurmtune:r2:train"),
		},
		sacct: map[string]string{
			"9":  sacctLine("9", "COMPLETED", "0:0", "slurmtune:r1:prep"),
			"10": sacctLine("10", "PENDING", "0:0", "slurmtune:r1:train"), // lags behind squeue
			"12": sacctLine("12", "FAILED", "1:0", "slurmtune:r10:prep"),
			"13": sacctLine("13", "FAILED", "1:0", "(null)"),
		},
	}
	r := &fakeRunner{handle: c.handle}
	got, err := New(r).JobsByComment(context.Background(), "slurmtune:r1:")
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, j := range got {
		summary = append(summary, j.ID+":"+string(j.State)+":"+j.Source)
	}
	if want := []string{"9:COMPLETED:sacct", "10:RUNNING:squeue"}; !reflect.DeepEqual(summary, want) {
		t.Errorf("got %v, want %v", summary, want)
	}
	if want := []string{"squeue", "--noheader", "--states=all", "--Format=" + SqueueFormat}; !reflect.DeepEqual(r.calls[0].Argv, want) {
		t.Errorf("squeue argv %q, want %q", r.calls[0].Argv, want)
	}
	if want := []string{"sacct", "--noheader", "--parsable2", "--allocations", "--allusers", "--starttime=now-30days", "--format=" + SacctFormat}; !reflect.DeepEqual(r.calls[1].Argv, want) {
		t.Errorf("sacct argv %q, want %q", r.calls[1].Argv, want)
	}

	// Without accounting, the controller's jobs are all there is.
	c.errs = map[string]error{"sacct": &ExitError{Argv: []string{"sacct"}, Code: 1, Stderr: "sacct: error: Slurm accounting storage is disabled"}}
	r = &fakeRunner{handle: c.handle}
	got, err = New(r).JobsByComment(context.Background(), "slurmtune:r1:")
	if err != nil || len(got) != 1 || got[0].ID != "10" {
		t.Errorf("accounting disabled: %+v, %v; want job 10 only", got, err)
	}
	c.errs = map[string]error{"sacct": &ExitError{Argv: []string{"sacct"}, Code: 1, Stderr: "sacct: error: Unable to contact slurm controller"}}
	if _, err := New(&fakeRunner{handle: c.handle}).JobsByComment(context.Background(), "x"); !errors.Is(err, slurm.ErrUnavailable) {
		t.Errorf("sacct failure: err = %v, want ErrUnavailable", err)
	}
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name    string
		stderr  string // "" : scancel succeeds
		wantErr bool
	}{
		{name: "ok"},
		{name: "already completed", stderr: "scancel: error: Kill job error on job id 5: Job/step already completing or completed\n"},
		{name: "several already done", stderr: "scancel: error: Kill job error on job id 5: Job/step already completing or completed\n" +
			"scancel: error: Kill job error on job id 6: Invalid job id specified\n"},
		{name: "one real failure among them", stderr: "scancel: error: Kill job error on job id 5: Job/step already completing or completed\n" +
			"scancel: error: Kill job error on job id 6: Access/permission denied\n", wantErr: true},
		{name: "permission denied", stderr: "scancel: error: Kill job error on job id 6: Access/permission denied\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{handle: func(cmd Command) ([]byte, error) {
				if tt.stderr != "" {
					return nil, &ExitError{Argv: cmd.Argv, Code: 1, Stderr: tt.stderr}
				}
				return nil, nil
			}}
			err := New(r).Cancel(context.Background(), []string{"5", "6"})
			if (err != nil) != tt.wantErr {
				t.Errorf("Cancel: %v, want error %v", err, tt.wantErr)
			}
			if len(r.calls) != 1 || !reflect.DeepEqual(r.calls[0].Argv, []string{"scancel", "5", "6"}) {
				t.Errorf("commands %+v, want one scancel 5 6", r.calls)
			}
		})
	}
	r := &fakeRunner{}
	if err := New(r).Cancel(context.Background(), nil); err != nil || len(r.calls) != 0 {
		t.Errorf("Cancel(nil) = %v after %d commands", err, len(r.calls))
	}
}

func TestSbatchArgs(t *testing.T) {
	tests := []struct {
		name string
		req  slurm.SubmitRequest
		want []string
	}{
		{"stdin script", slurm.SubmitRequest{Script: []byte("#!/bin/bash\n")}, []string{"sbatch", "--parsable"}},
		{"everything", slurm.SubmitRequest{
			ScriptPath: "/scratch/runs/r1/train.sbatch", WorkDir: "/scratch/runs/r1", AfterOK: []string{"41", "42"},
			Comment: "slurmtune:r1:train", ExtraArgs: []string{"--output=/scratch/runs/r1/logs/train.log", "--hold"},
		}, []string{"sbatch", "--parsable", "--dependency=afterok:41:42", "--kill-on-invalid-dep=yes", "--comment=slurmtune:r1:train",
			"--chdir=/scratch/runs/r1", "--output=/scratch/runs/r1/logs/train.log", "--hold", "/scratch/runs/r1/train.sbatch"}},
		{"array after an array task by task, and after any", slurm.SubmitRequest{ScriptPath: "/r/eval.sbatch", Array: "0-5%2",
			AfterCorr: []string{"50"}, AfterAny: []string{"49"}},
			[]string{"sbatch", "--parsable", "--dependency=aftercorr:50,afterany:49", "--kill-on-invalid-dep=yes", "--array=0-5%2", "/r/eval.sbatch"}},
		{"afterany alone does not cancel", slurm.SubmitRequest{ScriptPath: "/r/select.sbatch", AfterAny: []string{"51"}},
			[]string{"sbatch", "--parsable", "--dependency=afterany:51", "/r/select.sbatch"}},
		{"one dependency, spaces stay one argument", slurm.SubmitRequest{ScriptPath: "/my runs/x.sbatch", WorkDir: "/my runs", AfterOK: []string{"7"}},
			[]string{"sbatch", "--parsable", "--dependency=afterok:7", "--kill-on-invalid-dep=yes", "--chdir=/my runs", "/my runs/x.sbatch"}},
	}
	for _, tt := range tests {
		if got := SbatchArgs(tt.req); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: SbatchArgs = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSubmit(t *testing.T) {
	script := []byte("#!/bin/bash\necho hi\n")
	tests := []struct {
		name        string
		req         slurm.SubmitRequest
		out         string
		err         error
		wantID      string
		wantStdin   bool
		unavailable bool
	}{
		{name: "script on stdin", req: slurm.SubmitRequest{Script: script, Env: map[string]string{"A": "1"}}, out: "42\n", wantID: "42", wantStdin: true},
		{name: "script path", req: slurm.SubmitRequest{Script: script, ScriptPath: "/r/x.sbatch"}, out: "43;cluster\n", wantID: "43"},
		{name: "garbage output", req: slurm.SubmitRequest{ScriptPath: "/r/x.sbatch"}, out: "sbatch: error: oops\n"},
		{name: "controller down", req: slurm.SubmitRequest{ScriptPath: "/r/x.sbatch"},
			err: &ExitError{Argv: []string{"sbatch"}, Code: 1, Stderr: "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"}, unavailable: true},
		{name: "rejected", req: slurm.SubmitRequest{ScriptPath: "/r/x.sbatch"},
			err: &ExitError{Argv: []string{"sbatch"}, Code: 1, Stderr: "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{handle: func(Command) ([]byte, error) { return []byte(tt.out), tt.err }}
			id, err := New(r).Submit(context.Background(), tt.req)
			if tt.wantID == "" {
				if err == nil {
					t.Fatalf("Submit = %q, want an error", id)
				}
				if errors.Is(err, slurm.ErrUnavailable) != tt.unavailable {
					t.Errorf("err %v: ErrUnavailable %v, want %v", err, !tt.unavailable, tt.unavailable)
				}
				return
			}
			if err != nil || id != tt.wantID {
				t.Fatalf("Submit = %q, %v; want %q", id, err, tt.wantID)
			}
			cmd := r.calls[0]
			if !reflect.DeepEqual(cmd.Argv, SbatchArgs(tt.req)) || !reflect.DeepEqual(cmd.Env, tt.req.Env) {
				t.Errorf("command %+v", cmd)
			}
			if (cmd.Stdin != nil) != tt.wantStdin || tt.wantStdin && string(cmd.Stdin) != string(script) {
				t.Errorf("stdin %q, want the script: %v", cmd.Stdin, tt.wantStdin)
			}
		})
	}
}

func TestVersionAndPartitions(t *testing.T) {
	r := &fakeRunner{handle: func(cmd Command) ([]byte, error) {
		switch cmd.Argv[0] {
		case "sinfo":
			return []byte("slurm 23.11.4\n"), nil
		case "scontrol":
			return []byte("PartitionName=debug Default=YES MaxTime=UNLIMITED State=UP TotalNodes=2\n"), nil
		}
		return nil, errors.New("unexpected")
	}}
	c := New(r)
	if v, err := c.Version(context.Background()); err != nil || v != "23.11.4" {
		t.Errorf("Version = %q, %v", v, err)
	}
	ps, err := c.Partitions(context.Background())
	if err != nil || len(ps) != 1 || ps[0].Name != "debug" || !ps[0].Default {
		t.Errorf("Partitions = %+v, %v", ps, err)
	}
	if want := []string{"scontrol", "--oneliner", "show", "partition"}; !reflect.DeepEqual(r.calls[1].Argv, want) {
		t.Errorf("argv %q, want %q", r.calls[1].Argv, want)
	}
}

func TestExitError(t *testing.T) {
	tests := []struct {
		e    ExitError
		want string
	}{
		{ExitError{Argv: []string{"sacct", "-X"}, Code: 1, Stderr: "sacct: error: first\nsecond\n"}, "sacct: sacct: error: first"},
		{ExitError{Argv: []string{"squeue"}, Code: 2, Stderr: "  \n"}, "squeue: exit status 2"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestArrayFormats(t *testing.T) {
	// The array forms differ from the plain ones only in the id field.
	if SqueueArrayFormat != "JobArrayID"+strings.TrimPrefix(SqueueFormat, "JobID") {
		t.Errorf("SqueueArrayFormat %q is not SqueueFormat %q with JobArrayID", SqueueArrayFormat, SqueueFormat)
	}
	if SacctArrayFormat != "JobID"+strings.TrimPrefix(SacctFormat, "JobIDRaw") {
		t.Errorf("SacctArrayFormat %q is not SacctFormat %q with JobID", SacctArrayFormat, SacctFormat)
	}
}
