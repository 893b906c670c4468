package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"
)

// StageConfig is one deploy stage: a new model to put behind the router.
type StageConfig struct {
	Controller *Controller
	Strategy   string
	// Candidate describes the new model; Backend, JobID and URL are filled
	// in by RunStage.
	Candidate Member
	// SubmitServer submits the serving job and returns its id.
	SubmitServer func(ctx context.Context) (string, error)
	// JobEnded reports whether the serving job has ended (and how).
	JobEnded func(ctx context.Context, jobID string) (ended bool, state string, err error)
	// AddressFile is where the serving job writes host:port.
	AddressFile    string
	StartupTimeout time.Duration
	Smoke          SmokeConfig
	CanaryPercent  int
	Canary         CanaryConfig
	RollbackWindow time.Duration
	HTTP           *http.Client
}

// StageResult says what a deploy stage did.
type StageResult struct {
	Action    string // ActionDeploy, ActionPromote or ActionCanary
	Candidate Member
	Smoke     SmokeReport
	Outcome   Outcome
}

// ErrSmokeFailed is wrapped by RunStage's error when the smoke tests fail.
var ErrSmokeFailed = errors.New("smoke tests failed")

// RunStage runs a blue-green or canary deploy stage: start the serving job,
// wait for it, smoke-test it, admit it behind the router, and see the
// canary and the rollback window through. Any failure before the switch
// cancels the new serving job and leaves the router as it was.
func RunStage(ctx context.Context, cfg StageConfig) (StageResult, error) {
	c := cfg.Controller
	cand := cfg.Candidate
	res := StageResult{Candidate: cand}
	if cfg.AddressFile != "" {
		_ = os.Remove(cfg.AddressFile) // a previous attempt's
	}
	id, err := cfg.SubmitServer(ctx)
	if err != nil {
		return res, fmt.Errorf("submit the serving job: %w", err)
	}
	cand.JobID = id
	c.log().Info("serving job submitted", "job", id)
	reject := func(action, reason string, err error) (StageResult, error) {
		res.Candidate = cand
		rerr := c.Reject(context.WithoutCancel(ctx), cand, action, reason)
		return res, errors.Join(err, rerr)
	}

	addr, err := waitAddress(ctx, cfg, id)
	if err != nil {
		return reject(ActionFailed, err.Error(), err)
	}
	cand.URL = "http://" + addr
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = WaitHealthy(hctx, cfg.HTTP, cand.URL, time.Second)
	cancel()
	if err != nil {
		err = fmt.Errorf("serving job %s is up at %s but unreachable from here: %w", id, addr, err)
		return reject(ActionFailed, err.Error(), err)
	}
	c.log().Info("serving job up", "job", id, "url", cand.URL)

	res.Smoke = Smoke(ctx, cfg.HTTP, cand.URL, cfg.Smoke)
	if !res.Smoke.Passed {
		err := fmt.Errorf("%w: %s", ErrSmokeFailed, res.Smoke.Summary())
		return reject(ActionSmokeFailed, res.Smoke.Summary(), err)
	}
	c.log().Info("smoke tests passed", "summary", res.Smoke.Summary())

	rec, err := c.Record()
	if err != nil {
		return reject(ActionFailed, err.Error(), err)
	}
	cand.Backend = cand.Run
	for _, m := range rec.Members() {
		if m.Backend == cand.Backend {
			cand.Backend = cand.Run + "-" + id
		}
	}
	res.Candidate = cand
	action, err := c.Admit(ctx, cand, cfg.Strategy, cfg.CanaryPercent, cfg.Canary.Duration, cfg.RollbackWindow)
	switch {
	case errors.Is(err, ErrBusy):
		return reject(ActionFailed, err.Error(), err)
	case errors.Is(err, ErrRemovedByHand):
		rec, rerr := c.Record()
		if rerr != nil {
			return res, rerr
		}
		res.Outcome = c.handOutcome(rec, cand)
		if !res.Outcome.Promoted {
			return res, fmt.Errorf("run %s was %s", cand.Run, res.Outcome.Reason)
		}
		action = ActionPromote
	case err != nil:
		return res, err
	}
	res.Action = action
	if action == ActionDeploy {
		res.Outcome = Outcome{Promoted: true, Reason: "first model"}
		return res, nil
	}
	if action == ActionCanary {
		cc := cfg.Canary
		cc.RollbackWindow = cfg.RollbackWindow
		out, err := c.RunCanary(ctx, cand, cc)
		res.Outcome = out
		if err != nil {
			return res, err
		}
		if !out.Promoted {
			return res, fmt.Errorf("canary rolled back: %s", out.Reason)
		}
	}
	out, err := c.WaitRetire(ctx, cand)
	if err != nil {
		return res, err
	}
	if !out.Promoted {
		res.Outcome = out
		return res, fmt.Errorf("run %s was %s", cand.Run, out.Reason)
	}
	if res.Outcome.Reason == "" {
		res.Outcome = Outcome{Promoted: true, Reason: "blue-green"}
	}
	return res, nil
}

// waitAddress waits for the serving job's address file, giving up when the
// job ends first or the startup timeout passes.
func waitAddress(ctx context.Context, cfg StageConfig, id string) (string, error) {
	timeout := cfg.StartupTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		data, err := os.ReadFile(cfg.AddressFile)
		if err == nil && strings.HasSuffix(string(data), "\n") {
			return strings.TrimSpace(string(data)), nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("read the serving job's address: %w", err)
		}
		if i%5 == 4 && cfg.JobEnded != nil {
			ended, state, err := cfg.JobEnded(ctx, id)
			if err == nil && ended {
				return "", fmt.Errorf("serving job %s ended (%s) before it was up", id, state)
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("serving job %s not up within %s", id, timeout)
		}
		if !sleep(ctx, time.Second) {
			return "", fmt.Errorf("interrupted while waiting for serving job %s: %w", id, ctx.Err())
		}
	}
}
