package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

// decode reads slurmrestd's JSON answer into out (a generated type). A body
// that is not JSON (slurmrestd answers some failures in plain text, e.g.
// "Unable to parse query.") becomes an APIError with that text.
func decode(op string, r *response, out any) error {
	body := bytes.TrimSpace(r.body)
	if len(body) == 0 || body[0] != '{' {
		return &APIError{Op: op, Status: r.status, Errors: []apiErr{{Error: fmt.Sprintf("HTTP %d: %s", r.status, oneLine(body, 200))}}}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: cannot read slurmrestd's answer (HTTP %d): %w", op, r.status, err)
	}
	return nil
}

// Job.Source values of this transport.
const (
	sourceController = "slurmrestd"
	sourceAccounting = "slurmdbd"
)

// classifyErr classifies an APIError made from a non-JSON answer.
func classifyErr(err error) error {
	if ae, ok := err.(*APIError); ok {
		return classify(ae)
	}
	return err
}

// submitDecodeErr explains a submit answer that could not be read: a
// failure status is a refusal; a 2xx whose body is unreadable may hide a
// queued job.
func submitDecodeErr(r *response, err error) error {
	if r.status >= 300 {
		return classifyErr(err)
	}
	return fmt.Errorf("%w: %w", slurm.ErrSubmitUncertain, err)
}

func isInvalidJob(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Has(errInvalidJobID)
}

func isAlreadyDone(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Has(errAlreadyDone)
}

func secs(s int64) time.Duration { return time.Duration(s) * time.Second }

// deref returns *p, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var z T
		return z
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

// waitStatus splits a wait(2) status as v0.0.38 reports exit_code:
// the exit code, or the signal that ended the job.
func waitStatus(st int) (code, sig int) {
	if s := st & 0x7f; s != 0 && s != 0x7f {
		return 0, s
	}
	return (st >> 8) & 0xff, 0
}

// finishJob fills what every version computes the same way.
func finishJob(j *slurm.Job, now time.Time) {
	j.Reason = cleanReason(j.Reason)
	if !j.State.Terminal() {
		j.End = time.Time{}
	}
	if j.State == slurm.StatePending {
		j.Nodes = ""
	}
	j.Elapsed = elapsed(j.State, j.Start, j.End, now)
}

// newest returns, per job id, the accounting record submitted last (ids
// are reused after a controller's state is wiped; requeues also leave
// several records).
func newest(recs []slurm.Job, submitted []int64) []slurm.Job {
	best := map[string]int{}
	for i, j := range recs {
		k, ok := best[j.ID]
		if !ok || submitted[i] >= submitted[k] {
			best[j.ID] = i
		}
	}
	out := make([]slurm.Job, 0, len(best))
	for i, j := range recs {
		if best[j.ID] == i {
			out = append(out, j)
		}
	}
	return out
}

// flagOrder is the order in which Slurm's job_state_string lets a state
// flag stand for the whole state (as squeue and v0.0.38 print it).
var flagOrder = []string{"COMPLETING", "STAGE_OUT", "CONFIGURING", "RESIZING", "REQUEUED", "REQUEUE_FED",
	"REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED", "REVOKED", "RESV_DEL_HOLD", "SIGNALING"}

var baseStates = map[string]bool{"PENDING": true, "RUNNING": true, "SUSPENDED": true, "COMPLETED": true,
	"CANCELLED": true, "FAILED": true, "TIMEOUT": true, "NODE_FAIL": true, "PREEMPTED": true,
	"BOOT_FAIL": true, "DEADLINE": true, "OUT_OF_MEMORY": true}

// stateOf reduces v0.0.40+'s job state list (base state plus flags) to the
// one name squeue would print.
func stateOf[S ~string](states []S) slurm.State {
	have := map[string]bool{}
	base := ""
	for _, s := range states {
		u := strings.ToUpper(string(s))
		have[u] = true
		if baseStates[u] && base == "" {
			base = u
		}
	}
	for _, f := range flagOrder {
		if have[f] {
			return slurm.ParseState(f)
		}
	}
	if base == "" && len(states) > 0 {
		base = string(states[0])
	}
	return slurm.ParseState(base)
}

// dbSince formats a time the way slurmdb's start_time filter reads it.
func dbSince(t time.Time) string { return t.Format("2006-01-02T15:04:05") }

// idList joins ids for slurmdb's step filter (the generated client escapes
// the commas, which 22.05's slurmrestd requires).
func idList(ids []string) (string, error) {
	for _, id := range ids {
		if _, err := jobID(id); err != nil {
			return "", err
		}
	}
	return strings.Join(ids, ","), nil
}
