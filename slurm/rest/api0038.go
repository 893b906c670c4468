package rest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/rest/v0038"
)

// api0038 speaks openapi/v0.0.38 and dbv0.0.38 (Slurm 22.05 to 23.02).
type api0038 struct{ c *Client }

func (a *api0038) version() string { return V0038 }

func errs0038(op string, status int, list *[]*v0038.V0038Error) error {
	if list == nil || len(*list) == 0 {
		if status >= 400 {
			return classify(&APIError{Op: op, Status: status})
		}
		return nil
	}
	e := &APIError{Op: op, Status: status}
	for _, x := range *list {
		if x == nil {
			continue
		}
		n := deref(x.ErrorNumber)
		if n == 0 {
			n = deref(x.ErrorCode)
		}
		e.Errors = append(e.Errors, apiErr{Num: n, Error: deref(x.Error), Description: deref(x.Description), Source: deref(x.Source)})
	}
	return classify(e)
}

func dbErrs0038(op string, status int, list *[]*v0038.Dbv0038Error) *APIError {
	if (list == nil || len(*list) == 0) && status < 400 {
		return nil
	}
	e := &APIError{Op: op, Status: status}
	if list != nil {
		for _, x := range *list {
			if x != nil {
				e.Errors = append(e.Errors, apiErr{Num: deref(x.ErrorNumber), Error: deref(x.Error), Source: deref(x.Source)})
			}
		}
	}
	return e
}

func (a *api0038) probe(ctx context.Context) (int, error) {
	r, err := a.c.send(ctx, "ping", read, func() (*http.Request, error) {
		return v0038.NewSlurmV0038PingRequest(a.c.base)
	})
	if err != nil {
		return 0, err
	}
	return r.status, nil
}

func (a *api0038) ping(ctx context.Context) error {
	const op = "ping"
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0038.NewSlurmV0038PingRequest(a.c.base)
	})
	if err != nil {
		return err
	}
	var out v0038.V0038Pings
	if err := decode(op, r, &out); err != nil {
		return classifyErr(err)
	}
	return errs0038(op, r.status, out.Errors)
}

func (a *api0038) submit(ctx context.Context, s *jobSpec) (string, error) {
	const op = "submit"
	// v0.0.38 has no batch-only warning signal (its "signal" would go to
	// every step, and slurmrestd 22.05 refuses "B:SIG@T"): the job is told
	// through SelfSignalEnv and signals itself.
	env := make(map[string]interface{}, len(s.Env)+1)
	for k, v := range s.selfSignalEnv() {
		env[k] = v
	}
	p := v0038.V0038JobProperties{
		Environment:             &env,
		Name:                    ptr(s.Name),
		CurrentWorkingDirectory: ptr(s.WorkDir),
	}
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	num := func(v int) *int {
		if v <= 0 {
			return nil
		}
		return &v
	}
	p.Comment = str(s.Comment)
	p.StandardOutput = str(s.Output)
	p.StandardError = str(s.Error)
	p.StandardInput = str(s.Input)
	if s.OpenMode != "" {
		p.OpenMode = ptr(v0038.V0038JobPropertiesOpenMode(s.OpenMode))
	}
	p.Partition = str(s.Partition)
	p.Account = str(s.Account)
	p.Qos = str(s.QOS)
	p.Reservation = str(s.Reservation)
	if len(s.MailTypes) > 0 {
		p.MailType = ptr(strings.Join(s.MailTypes, ","))
	}
	p.MailUser = str(s.MailUser)
	p.Dependency = str(s.Dependency)
	p.Array = str(s.Array)
	p.KillOnInvalidDependency = s.KillOnInvalidDep
	if s.MinNodes > 0 {
		// sbatch's own form: slurmrestd 22.05 ignores the array form.
		n := strconv.Itoa(s.MinNodes)
		if s.MaxNodes > s.MinNodes {
			n += "-" + strconv.Itoa(s.MaxNodes)
		}
		p.Nodes = &n
	}
	p.Tasks = num(s.Tasks)
	p.TasksPerNode = num(s.TasksPerNode)
	p.CpusPerTask = num(s.CPUsPerTask)
	if s.MemPerNode != nil {
		p.MemoryPerNode = ptr(int(*s.MemPerNode))
	}
	if s.MemPerCPU != nil {
		p.MemoryPerCpu = ptr(int(*s.MemPerCPU))
	}
	p.TimeLimit = num(s.TimeLimit)
	p.Gres = str(s.Gres)
	p.Constraints = str(s.Constraints)
	if s.Exclusive {
		p.Exclusive = ptr(v0038.Exclusive)
	}
	if s.Hold {
		p.Hold = ptr(true)
	}
	p.Requeue = s.Requeue
	if s.Nodelist != "" || s.Exclude != "" {
		return "", fmt.Errorf("submit: --nodelist and --exclude are not supported with API %s", V0038)
	}
	body := v0038.V0038JobSubmission{Script: ptr(s.Script), Job: &p}
	r, err := a.c.send(ctx, op, write, func() (*http.Request, error) {
		return v0038.NewSlurmV0038SubmitJobRequest(a.c.base, body)
	})
	if err != nil {
		return "", err
	}
	var out v0038.V0038JobSubmissionResponse
	if err := decode(op, r, &out); err != nil {
		return "", submitDecodeErr(r, err)
	}
	// A job id means the job is queued; errors beside it are notes (2042:
	// submitted held).
	if id := deref(out.JobId); id > 0 {
		return strconv.Itoa(id), nil
	}
	if err := errs0038(op, r.status, out.Errors); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: %w: slurmrestd answered HTTP %d without a job id", op, slurm.ErrSubmitUncertain, r.status)
}

func (a *api0038) list(ctx context.Context, since int64) (*listing, bool, error) {
	const op = "list jobs"
	params := &v0038.SlurmV0038GetJobsParams{}
	if since > 0 {
		params.UpdateTime = &since
	}
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0038.NewSlurmV0038GetJobsRequest(a.c.base, params)
	})
	if err != nil {
		return nil, false, err
	}
	if r.status == http.StatusNotModified {
		return nil, true, nil
	}
	var out v0038.V0038JobsResponse
	if err := decode(op, r, &out); err != nil {
		return nil, false, classifyErr(err)
	}
	if err := errs0038(op, r.status, out.Errors); err != nil {
		return nil, false, err
	}
	l := &listing{}
	now := a.c.now()
	for _, j := range deref(out.Jobs) {
		if j == nil {
			continue
		}
		job := a.job0038(j, now)
		l.jobs = append(l.jobs, job)
		// Only past controller times: never ask "since" a time the
		// controller has not reached.
		for _, t := range []int64{deref(j.SubmitTime), int64(deref(j.LastSchedEvaluation))} {
			if t > l.next {
				l.next = t
			}
		}
		if job.State != slurm.StatePending && deref(j.StartTime) > l.next {
			l.next = deref(j.StartTime)
		}
		if job.State.Terminal() && deref(j.EndTime) > l.next {
			l.next = deref(j.EndTime)
		}
	}
	if l.next > now.Unix() {
		l.next = now.Unix()
	}
	return l, false, nil
}

func (a *api0038) job0038(j *v0038.V0038JobResponseProperties, now time.Time) slurm.Job {
	code, sig := waitStatus(deref(j.ExitCode))
	job := slurm.Job{
		ID:       strconv.Itoa(deref(j.JobId)),
		Name:     deref(j.Name),
		State:    slurm.ParseState(deref(j.JobState)),
		Reason:   deref(j.StateReason),
		ExitCode: code,
		Signal:   sig,
		Restarts: deref(j.RestartCnt),
		Nodes:    deref(j.Nodes),
		Comment:  deref(j.Comment),
		Start:    unixTime(deref(j.StartTime)),
		End:      unixTime(deref(j.EndTime)),
		Source:   sourceController,
	}
	finishJob(&job, now)
	return job
}

func (a *api0038) job(ctx context.Context, id string) (*slurm.Job, error) {
	const op = "get job"
	if _, err := jobID(id); err != nil {
		return nil, err
	}
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0038.NewSlurmV0038GetJobRequest(a.c.base, id)
	})
	if err != nil {
		return nil, err
	}
	var out v0038.V0038JobsResponse
	if err := decode(op, r, &out); err != nil {
		return nil, classifyErr(err)
	}
	if err := errs0038(op, r.status, out.Errors); err != nil {
		if isInvalidJob(err) {
			return nil, nil
		}
		return nil, err
	}
	for _, j := range deref(out.Jobs) {
		if j != nil && strconv.Itoa(deref(j.JobId)) == id {
			job := a.job0038(j, a.c.now())
			return &job, nil
		}
	}
	return nil, nil
}

func (a *api0038) db(ctx context.Context, q dbQuery) ([]slurm.Job, error) {
	const op = "list accounting jobs"
	params := &v0038.SlurmdbV0038GetJobsParams{SkipSteps: ptr(true)}
	if len(q.ids) > 0 {
		ids, err := idList(q.ids)
		if err != nil {
			return nil, err
		}
		params.Step = &ids
	} else {
		params.StartTime = ptr(dbSince(q.since))
	}
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0038.NewSlurmdbV0038GetJobsRequest(a.c.base, params)
	})
	if err != nil {
		return nil, err
	}
	var out v0038.Dbv0038JobInfo
	if err := decode(op, r, &out); err != nil {
		if ae, ok := err.(*APIError); ok && dbUnavailable(r.status, ae) {
			return nil, errNoDB
		}
		return nil, classifyErr(err)
	}
	if e := dbErrs0038(op, r.status, out.Errors); e != nil {
		if e.Has(9003) && len(deref(out.Jobs)) == 0 {
			// 22.05 answers "Nothing found with query" when accounting has
			// none of the ids: that is an empty result, not a failure.
			return nil, nil
		}
		if dbUnavailable(r.status, e) {
			return nil, errNoDB
		}
		return nil, classify(e)
	}
	now := a.c.now()
	var recs []slurm.Job
	var submitted []int64
	for _, j := range deref(out.Jobs) {
		if j == nil {
			continue
		}
		job := slurm.Job{
			ID:     strconv.Itoa(deref(j.JobId)),
			Name:   deref(j.Name),
			Nodes:  deref(j.Nodes),
			Source: sourceAccounting,
		}
		if j.State != nil {
			job.State = slurm.ParseState(deref(j.State.Current))
			job.Reason = deref(j.State.Reason)
		}
		if j.Comment != nil {
			job.Comment = deref(j.Comment.Job)
		}
		if ec := j.ExitCode; ec != nil {
			job.ExitCode = deref(ec.ReturnCode)
			if ec.Signal != nil {
				job.Signal = deref(ec.Signal.SignalId)
			}
		}
		var sub int64
		if t := j.Time; t != nil {
			job.Start = unixTime(int64(deref(t.Start)))
			job.End = unixTime(int64(deref(t.End)))
			sub = int64(deref(t.Submission))
		}
		finishJob(&job, now)
		if j.Time != nil && j.Time.Elapsed != nil && job.State.Terminal() {
			job.Elapsed = secs(int64(*j.Time.Elapsed))
		}
		recs = append(recs, job)
		submitted = append(submitted, sub)
	}
	return newest(recs, submitted), nil
}

func (a *api0038) cancel(ctx context.Context, id string) error {
	op := "cancel job " + id
	if _, err := jobID(id); err != nil {
		return err
	}
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0038.NewSlurmV0038CancelJobRequest(a.c.base, id, nil)
	})
	if err != nil {
		return err
	}
	var out v0038.V0038JobsResponse // meta and errors only
	if err := decode(op, r, &out); err != nil {
		return classifyErr(err)
	}
	if err := errs0038(op, r.status, out.Errors); err != nil && !isInvalidJob(err) && !isAlreadyDone(err) {
		return err
	}
	return nil
}
