package rest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/rest/v0040"
)

// api0040 speaks openapi/v0.0.40 and its slurmdb half (see adapter.go).
type api0040 struct{ c *Client }

func (a *api0040) version() string { return V0040 }

func errs0040(op string, status int, list *[]v0040.V0040OpenapiError) *APIError {
	if (list == nil || len(*list) == 0) && status < 400 {
		return nil
	}
	e := &APIError{Op: op, Status: status}
	if list != nil {
		for _, x := range *list {
			e.Errors = append(e.Errors, apiErr{Num: int(deref(x.ErrorNumber)), Error: deref(x.Error),
				Description: deref(x.Description), Source: deref(x.Source)})
		}
	}
	return e
}

// noChange reports the warning slurmrestd gives instead of job data when
// nothing changed since update_time.
func noChange0040(list *[]v0040.V0040OpenapiWarning) bool {
	if list == nil {
		return false
	}
	for _, w := range *list {
		if strings.Contains(deref(w.Description), "No job changes") {
			return true
		}
	}
	return false
}

func (a *api0040) probe(ctx context.Context) (int, error) {
	r, err := a.c.send(ctx, "ping", read, func() (*http.Request, error) {
		return v0040.NewSlurmV0040GetPingRequest(a.c.base)
	})
	if err != nil {
		return 0, err
	}
	return r.status, nil
}

func (a *api0040) ping(ctx context.Context) error {
	const op = "ping"
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0040.NewSlurmV0040GetPingRequest(a.c.base)
	})
	if err != nil {
		return err
	}
	var out v0040.V0040OpenapiPingArrayResp
	if err := decode(op, r, &out); err != nil {
		return classifyErr(err)
	}
	if e := errs0040(op, r.status, out.Errors); e != nil {
		return classify(e)
	}
	return nil
}

// desc0040 is the job description for s.
func desc0040(s *jobSpec) (v0040.V0040JobDescMsg, error) {
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	num := func(v int) *int64 {
		if v <= 0 {
			return nil
		}
		n := int64(v)
		return &n
	}
	env := s.envList()
	p := v0040.V0040JobDescMsg{
		Script:                  ptr(s.Script),
		Environment:             &env,
		Name:                    ptr(s.Name),
		CurrentWorkingDirectory: ptr(s.WorkDir),
		Comment:                 str(s.Comment),
		StandardOutput:          str(s.Output),
		StandardError:           str(s.Error),
		StandardInput:           str(s.Input),
		Partition:               str(s.Partition),
		Account:                 str(s.Account),
		Qos:                     str(s.QOS),
		Reservation:             str(s.Reservation),
		MailType:                newMailTypes[v0040.V0040JobDescMsgMailType](s),
		MailUser:                str(s.MailUser),
		Dependency:              str(s.Dependency),
		Array:                   str(s.Array),
		Tasks:                   num(s.Tasks),
		TasksPerNode:            num(s.TasksPerNode),
		CpusPerTask:             num(s.CPUsPerTask),
		Constraints:             str(s.Constraints),
		TresPerNode:             str(gresToTRES(s.Gres)),
		Requeue:                 s.Requeue,
	}
	switch s.OpenMode {
	case "append":
		p.OpenMode = &[]v0040.V0040JobDescMsgOpenMode{v0040.APPEND}
	case "truncate":
		p.OpenMode = &[]v0040.V0040JobDescMsgOpenMode{v0040.TRUNCATE}
	}
	if s.KillOnInvalidDep != nil {
		f := v0040.V0040JobDescMsgFlagsKILLINVALIDDEPENDENCY
		if !*s.KillOnInvalidDep {
			f = v0040.V0040JobDescMsgFlagsNOKILLINVALIDDEPENDENCY
		}
		p.Flags = &[]v0040.V0040JobDescMsgFlags{f}
	}
	if s.MinNodes > 0 {
		p.MinimumNodes = num(s.MinNodes)
		p.MaximumNodes = num(s.MaxNodes)
	}
	if s.MemPerNode != nil {
		setNoVal(&p.MemoryPerNode, noValue{Set: ptr(true), Number: ptr(*s.MemPerNode)})
	}
	if s.MemPerCPU != nil {
		setNoVal(&p.MemoryPerCpu, noValue{Set: ptr(true), Number: ptr(*s.MemPerCPU)})
	}
	switch {
	case s.TimeLimit < 0:
		setNoVal(&p.TimeLimit, noValue{Infinite: ptr(true)})
	case s.TimeLimit > 0:
		setNoVal(&p.TimeLimit, noValue{Set: ptr(true), Number: ptr(int64(s.TimeLimit))})
	}
	if s.Nodelist != "" {
		p.RequiredNodes = &[]string{s.Nodelist}
	}
	if s.Exclude != "" {
		p.ExcludedNodes = &[]string{s.Exclude}
	}
	if s.Exclusive {
		p.Shared = &[]v0040.V0040JobDescMsgShared{v0040.V0040JobDescMsgSharedNone}
	}
	if s.Hold {
		p.Hold = ptr(true)
	}
	if s.BatchSignal != "" {
		// --signal=B:SIG@T as sbatch sends it: to the batch shell only.
		p.KillWarningFlags = &[]v0040.V0040JobDescMsgKillWarningFlags{v0040.V0040JobDescMsgKillWarningFlagsBATCHJOB}
		p.KillWarningSignal = ptr(s.BatchSignal)
		setNoVal(&p.KillWarningDelay, noValue{Set: ptr(true), Number: ptr(int64(s.BatchSignalDelay))})
	}
	return p, nil
}

func (a *api0040) submit(ctx context.Context, s *jobSpec) (string, error) {
	const op = "submit"
	desc, err := desc0040(s)
	if err != nil {
		return "", err
	}
	body := v0040.V0040JobSubmitReq{Job: &desc}
	r, err := a.c.send(ctx, op, write, func() (*http.Request, error) {
		return v0040.NewSlurmV0040PostJobSubmitRequest(a.c.base, body)
	})
	if err != nil {
		return "", err
	}
	var out v0040.V0040OpenapiJobSubmitResponse
	if err := decode(op, r, &out); err != nil {
		return "", submitDecodeErr(r, err)
	}
	if id := deref(out.JobId); id > 0 {
		return strconv.Itoa(int(id)), nil
	}
	if e := errs0040(op, r.status, out.Errors); e != nil {
		return "", classify(e)
	}
	return "", fmt.Errorf("%s: %w: slurmrestd answered HTTP %d without a job id", op, slurm.ErrSubmitUncertain, r.status)
}

func (a *api0040) list(ctx context.Context, since int64) (*listing, bool, error) {
	const op = "list jobs"
	params := &v0040.SlurmV0040GetJobsParams{}
	if since > 0 {
		params.UpdateTime = ptr(strconv.FormatInt(since, 10))
	}
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0040.NewSlurmV0040GetJobsRequest(a.c.base, params)
	})
	if err != nil {
		return nil, false, err
	}
	if r.status == http.StatusNotModified {
		return nil, true, nil
	}
	var out v0040.V0040OpenapiJobInfoResp
	if err := decode(op, r, &out); err != nil {
		return nil, false, classifyErr(err)
	}
	if e := errs0040(op, r.status, out.Errors); e != nil {
		return nil, false, classify(e)
	}
	if since > 0 && len(out.Jobs) == 0 && noChange0040(out.Warnings) {
		return nil, true, nil
	}
	now := a.c.now()
	l := &listing{}
	if out.LastUpdate.Set == nil || *out.LastUpdate.Set {
		l.next = deref(out.LastUpdate.Number)
	}
	for i := range out.Jobs {
		l.jobs = append(l.jobs, job0040(&out.Jobs[i], now))
	}
	return l, false, nil
}

func job0040(j *v0040.V0040JobInfo, now time.Time) slurm.Job {
	job := slurm.Job{
		ID:       strconv.Itoa(int(deref(j.JobId))),
		Name:     deref(j.Name),
		State:    stateOf(deref(j.JobState)),
		Reason:   deref(j.StateReason),
		Restarts: int(deref(j.RestartCnt)),
		Nodes:    deref(j.Nodes),
		Comment:  deref(j.Comment),
		Start:    unixTime(noVal(j.StartTime)),
		End:      unixTime(noVal(j.EndTime)),
		Source:   sourceController,
	}
	if ec := j.ExitCode; ec != nil {
		job.ExitCode = int(noVal(ec.ReturnCode))
		if ec.Signal != nil {
			job.Signal = int(noVal(ec.Signal.Id))
		}
	}
	finishJob(&job, now)
	return job
}

func (a *api0040) job(ctx context.Context, id string) (*slurm.Job, error) {
	const op = "get job"
	if _, err := jobID(id); err != nil {
		return nil, err
	}
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0040.NewSlurmV0040GetJobRequest(a.c.base, id, nil)
	})
	if err != nil {
		return nil, err
	}
	var out v0040.V0040OpenapiJobInfoResp
	if err := decode(op, r, &out); err != nil {
		return nil, classifyErr(err)
	}
	if e := errs0040(op, r.status, out.Errors); e != nil {
		if e.Has(errInvalidJobID) {
			return nil, nil
		}
		return nil, classify(e)
	}
	for i := range out.Jobs {
		if strconv.Itoa(int(deref(out.Jobs[i].JobId))) == id {
			job := job0040(&out.Jobs[i], a.c.now())
			return &job, nil
		}
	}
	return nil, nil
}

func (a *api0040) db(ctx context.Context, q dbQuery) ([]slurm.Job, error) {
	const op = "list accounting jobs"
	params := &v0040.SlurmdbV0040GetJobsParams{SkipSteps: ptr("true")}
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
		return v0040.NewSlurmdbV0040GetJobsRequest(a.c.base, params)
	})
	if err != nil {
		return nil, err
	}
	var out v0040.V0040OpenapiSlurmdbdJobsResp
	if err := decode(op, r, &out); err != nil {
		if ae, ok := err.(*APIError); ok && dbUnavailable(r.status, ae) {
			return nil, errNoDB
		}
		return nil, classifyErr(err)
	}
	if e := errs0040(op, r.status, out.Errors); e != nil {
		if dbUnavailable(r.status, e) {
			return nil, errNoDB
		}
		return nil, classify(e)
	}
	now := a.c.now()
	var recs []slurm.Job
	var submitted []int64
	for i := range out.Jobs {
		j := &out.Jobs[i]
		job := slurm.Job{
			ID:     strconv.Itoa(int(deref(j.JobId))),
			Name:   deref(j.Name),
			Nodes:  deref(j.Nodes),
			Source: sourceAccounting,
		}
		if j.State != nil {
			job.State = stateOf(deref(j.State.Current))
			job.Reason = deref(j.State.Reason)
		}
		if j.Comment != nil {
			job.Comment = deref(j.Comment.Job)
		}
		if ec := j.ExitCode; ec != nil {
			job.ExitCode = int(noVal(ec.ReturnCode))
			if ec.Signal != nil {
				job.Signal = int(noVal(ec.Signal.Id))
			}
		}
		var sub int64
		if t := j.Time; t != nil {
			job.Start = unixTime(deref(t.Start))
			job.End = unixTime(deref(t.End))
			sub = deref(t.Submission)
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

func (a *api0040) cancel(ctx context.Context, id string) error {
	op := "cancel job " + id
	if _, err := jobID(id); err != nil {
		return err
	}
	r, err := a.c.send(ctx, op, read, func() (*http.Request, error) {
		return v0040.NewSlurmV0040DeleteJobRequest(a.c.base, id, nil)
	})
	if err != nil {
		return err
	}
	var out v0040.V0040OpenapiResp
	if err := decode(op, r, &out); err != nil {
		return classifyErr(err)
	}
	if e := errs0040(op, r.status, out.Errors); e != nil && !e.Has(errInvalidJobID) && !e.Has(errAlreadyDone) {
		return classify(e)
	}
	return nil
}
