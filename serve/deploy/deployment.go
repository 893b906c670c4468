package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/serve"
	"github.com/slurmtune/slurmtune/serve/drift"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// Slurm is what deployments need of Slurm: the deploy stage submits and
// watches the serving job, and every switch cancels the serving jobs it
// takes out of service (a slurm.Client has all three).
type Slurm interface {
	Submit(ctx context.Context, req slurm.SubmitRequest) (string, error)
	Jobs(ctx context.Context, ids []string) ([]slurm.Job, error)
	Cancel(ctx context.Context, ids []string) error
}

// Store is what the login-side deployment commands need of the database:
// the runs that name a deployment, the imported switch history and the
// sampled router counters.
type Store interface {
	RunsByName(ctx context.Context, name string, limit int) ([]*store.Run, error)
	DeployingNames(ctx context.Context) ([]string, error)
	ImportDeployEvents(ctx context.Context, events []store.DeployEvent) (int, error)
	DeployEvents(ctx context.Context, name string) ([]store.DeployEvent, error)
	AddDeploySamples(ctx context.Context, samples []store.DeploySample) error
}

// Deps are what deployments work with.
type Deps struct {
	// Store is the database (nil in the deploy stage, which only drives
	// the controller).
	Store Store
	// Slurm submits and watches the serving jobs and cancels the ones
	// taken out of service.
	Slurm Slurm
	Log   *slog.Logger
}

// Deployment is a blue-green or canary deployment as the login side finds
// it: by name, through the newest run of that name that deploys with a
// serving strategy (its pipeline snapshot), or through its state file.
type Deployment struct {
	Deps
	Name     string
	Pipeline *jobs.Pipeline // nil when found by state file alone
	Paths    Paths
	Router   Router
}

// PipelinePaths are a pipeline's deployment files: next to
// deploy.router.state, or, with only an admin URL, under
// WORKDIR/.deploy/NAME/.
func PipelinePaths(p *jobs.Pipeline) Paths {
	state := p.Deploy.Router.State
	if state == "" {
		state = filepath.Join(p.Workdir, ".deploy", templates.JobName(p.Name, "deploy"), "router.json")
	}
	return PathsFor(state)
}

// Of is the deployment of pipeline p (deployed with a serving strategy).
func Of(p *jobs.Pipeline, deps Deps) (*Deployment, error) {
	paths := PipelinePaths(p)
	d := &Deployment{Deps: deps, Name: p.Name, Pipeline: p, Paths: paths,
		Router: FileRouter{StatePath: paths.State, StatsPath: paths.Stats}}
	if r := p.Deploy.Router; r.AdminURL != "" {
		tok, err := serve.ReadAdminToken(r.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("router %w", err)
		}
		d.Router = AdminRouter{URL: r.AdminURL, Token: tok}
	}
	return d, nil
}

// Find finds the deployment called name: through the newest of the last
// 50 runs of that name whose snapshot deploys with blue-green or canary
// (and, with statePath, whose state file it is), else through statePath
// alone.
func Find(ctx context.Context, deps Deps, name, statePath string) (*Deployment, error) {
	runs, err := deps.Store.RunsByName(ctx, name, 50)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		p, err := jobs.Load(templates.LayoutOf(r.RunDir).Pipeline, jobs.LoadOptions{})
		if err != nil || p.Deploy.Strategy == "record" || !p.Deploy.On() {
			continue
		}
		if statePath != "" && statePath != PipelinePaths(p).State {
			continue
		}
		return Of(p, deps)
	}
	if statePath != "" {
		paths := PathsFor(statePath)
		return &Deployment{Deps: deps, Name: name, Paths: paths,
			Router: FileRouter{StatePath: paths.State, StatsPath: paths.Stats}}, nil
	}
	return nil, fmt.Errorf("no deployment %q: no run named %q deploys with blue-green or canary (or give --state FILE)", name, name)
}

// ForPipeline is the deployment of pipeline p: its own when it deploys with
// blue-green or canary, else the one Find finds by its name.
func ForPipeline(ctx context.Context, deps Deps, p *jobs.Pipeline) (*Deployment, error) {
	if p.Deploy.On() && p.Deploy.Strategy != "record" {
		return Of(p, deps)
	}
	return Find(ctx, deps, p.Name, "")
}

// RollbackWindow is how long a promote keeps the previous model for an
// instant rollback: deploy.rollback_window.
func (d *Deployment) RollbackWindow() time.Duration {
	if d.Pipeline != nil && d.Pipeline.Deploy.RollbackWindow.Duration > 0 {
		return d.Pipeline.Deploy.RollbackWindow.Duration
	}
	return jobs.DefaultRollbackWindow
}

// Controller drives the deployment from this host (the login side, or the
// deploy stage's node).
func (d *Deployment) Controller() *Controller {
	return &Controller{
		Name: d.Name, Paths: d.Paths, Router: d.Router, Log: d.Log,
		Cancel: func(ctx context.Context, id string) error { return d.Slurm.Cancel(ctx, []string{id}) },
	}
}

// ImportHistory copies the deployment's history file into the database.
func (d *Deployment) ImportHistory(ctx context.Context) error {
	evs, err := ReadHistory(d.Paths.History)
	if err != nil {
		return err
	}
	rows := make([]store.DeployEvent, 0, len(evs))
	for _, ev := range evs {
		detail, _ := json.Marshal(ev)
		row := store.DeployEvent{ID: ev.ID, Name: d.Name, At: ev.Time, Action: ev.Action, Reason: ev.Reason, Strategy: ev.Strategy, Detail: string(detail)}
		if ev.From != nil {
			row.FromRun, row.FromModel = ev.From.Run, ev.From.Model+"@"+ev.From.Version
		}
		if ev.To != nil {
			row.ToRun, row.ToModel = ev.To.Run, ev.To.Model+"@"+ev.To.Version
		}
		rows = append(rows, row)
	}
	_, err = d.Store.ImportDeployEvents(ctx, rows)
	return err
}

// sample records the router's view of the deployment's backends in the
// database (best effort: a router that publishes no stats is skipped).
func (d *Deployment) sample(ctx context.Context, rec Record) {
	snap, err := d.Router.Stats(ctx)
	if err != nil {
		d.Log.Debug("no router stats to sample", "err", err)
		return
	}
	var rows []store.DeploySample
	for _, m := range rec.Members() {
		b, ok := snap.Backends[m.Backend]
		if !ok {
			continue
		}
		rows = append(rows, store.DeploySample{Name: d.Name, Backend: m.Backend, RunID: m.Run, At: snap.Time,
			Requests: int64(b.Requests), Errors: int64(b.Errors), P95: b.P95, Healthy: b.Healthy})
	}
	if err := d.Store.AddDeploySamples(ctx, rows); err != nil {
		d.Log.Warn("record router stats", "err", err)
	}
}

// Refresh is what every login-side deployment command does first: retire a
// previous model whose rollback window is over, import the history and
// sample the router.
func (d *Deployment) Refresh(ctx context.Context) (Record, error) {
	ctl := d.Controller()
	if _, err := ctl.RetireDue(ctx); err != nil {
		d.Log.Warn("retire the previous model", "err", err)
	}
	if err := ctl.FinishDrains(ctx); err != nil {
		d.Log.Warn("finish draining servers taken out of service", "err", err)
	}
	if err := d.ImportHistory(ctx); err != nil {
		return Record{}, err
	}
	rec, err := ctl.Record()
	if err != nil {
		return rec, err
	}
	d.sample(ctx, rec)
	return rec, nil
}

// RefreshAll does for every blue-green or canary deployment in the
// database what `deploy status` does first: it samples the router's
// per-backend counters into SQLite (the time series performance drift
// compares), imports the switch history and finishes due retirements. So a
// cron `sync` keeps the samples coming without anyone asking for a status.
// A deployment that fails is logged and skipped.
func RefreshAll(ctx context.Context, deps Deps) {
	names, err := deps.Store.DeployingNames(ctx)
	if err != nil {
		deps.Log.Warn("list deployments", "err", err)
		return
	}
	for _, name := range names {
		d, err := Find(ctx, deps, name, "")
		if err != nil {
			continue // deploys by record only, or no snapshot left
		}
		if _, err := os.Stat(d.Paths.Record); err != nil {
			continue // nothing deployed yet
		}
		if _, err := d.Refresh(ctx); err != nil {
			deps.Log.Warn("refresh deployment", "name", name, "err", err)
		}
	}
}

// Switch is deploy promote (promote true: the candidate gets all the
// traffic now) and deploy rollback by hand, recording reason and who
// (user@host) in the history; it returns the status after the switch.
func (d *Deployment) Switch(ctx context.Context, promote bool, reason string) (*Status, error) {
	reason += " (" + whoAmI() + ")"
	if _, err := d.Refresh(ctx); err != nil {
		return nil, err
	}
	ctl := d.Controller()
	var rec Record
	var err error
	if promote {
		rec, err = ctl.Promote(ctx, reason, d.RollbackWindow())
	} else {
		rec, err = ctl.Rollback(ctx, reason)
	}
	if errors.Is(err, ErrNoCandidate) || errors.Is(err, ErrNothingToRollBack) {
		return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
	}
	if err != nil {
		return nil, err
	}
	if err := d.ImportHistory(ctx); err != nil {
		return nil, err
	}
	return d.status(ctx, rec)
}

// whoAmI is user@host.
func whoAmI() string {
	who := os.Getenv("USER")
	if u, err := user.Current(); who == "" && err == nil {
		who = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		who += "@" + h
	}
	return who
}

// ErrNoStable is DriftTarget's error for a deployment with no stable
// model yet.
var ErrNoStable = errors.New("has no stable model yet")

// DriftTarget refreshes the deployment and returns its stable model as a
// drift check reads it.
func (d *Deployment) DriftTarget(ctx context.Context) (drift.Target, error) {
	rec, err := d.Refresh(ctx)
	if err != nil {
		return drift.Target{}, err
	}
	s := rec.Stable
	if s == nil {
		return drift.Target{}, fmt.Errorf("deployment %s %w", d.Name, ErrNoStable)
	}
	return drift.Target{Deployment: d.Name, Pipeline: d.Pipeline, Run: s.Run, Model: s.Model, Version: s.Version, Backend: s.Backend,
		Data: s.Data, ServerPromptLog: s.PromptLog(), RouterPromptLog: d.Paths.Prompts}, nil
}
