package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/serve"
	"github.com/slurmtune/slurmtune/serve/deploy"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

func deployCommand() *cli.Command {
	nameArgs := func(c *cli.Context) (string, error) {
		if c.NArg() != 1 {
			return "", usagef("deploy %s: want exactly one deployment NAME (the pipeline's name), got %d arguments", c.Command.Name, c.NArg())
		}
		return c.Args().First(), nil
	}
	stateFlag := &cli.StringFlag{Name: "state", Usage: "the router state `FILE` of the deployment (default: deploy.router.state of the newest serving run named NAME)"}
	return &cli.Command{
		Name:  "deploy",
		Usage: "deploy stage commands, and the state of blue-green and canary deployments",
		Subcommands: []*cli.Command{
			{
				Name:  "record",
				Usage: "record the model a run would serve (the deploy stage runs this on the cluster)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "run-dir", Required: true, Usage: "the run directory"},
					&cli.StringFlag{Name: "strategy", Value: "record", Usage: "the deploy strategy named in the pipeline"},
				},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					_, err = deployRecord(e, c.String("run-dir"), c.String("strategy"), "")
					return err
				},
			},
			{
				Name:  "run",
				Usage: "run a blue-green or canary deploy of a run's model (the deploy stage runs this on the cluster)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "run-dir", Required: true, Usage: "the run directory"},
				},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					return deployRun(contextOf(c), e, c.String("run-dir"))
				},
			},
			{
				Name:      "serve",
				Usage:     "run a model server for the router (the serving job runs this)",
				ArgsUsage: "-- COMMAND [ARG]...",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "run-dir", Required: true, Usage: "the run directory"},
					&cli.StringFlag{Name: "model", Required: true, Usage: "the checkpoint directory ({model})"},
					&cli.StringFlag{Name: "name", Usage: "the served model name ({name})"},
					&cli.IntFlag{Name: "port", Usage: "port to serve on ({port}); 0 picks a free one"},
					&cli.DurationFlag{Name: "startup-timeout", Value: 10 * time.Minute, Usage: "how long the server may take to answer /health"},
				},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					if c.NArg() == 0 {
						return usagef("deploy serve: no server command (give it after --)")
					}
					dir := c.String("run-dir")
					return deploy.RunServer(contextOf(c), deploy.ServerOptions{
						Command: c.Args().Slice(), Model: c.String("model"), Name: c.String("name"), Port: c.Int("port"),
						AddressFile: filepath.Join(dir, "serve", "address"), PromptLog: filepath.Join(dir, "serve", "prompts.jsonl"),
						StartupTimeout: c.Duration("startup-timeout"), Stdout: e.stdout, Stderr: e.stderr, Log: e.log,
					})
				},
			},
			{
				Name:      "status",
				Usage:     "show a deployment: the stable model, the candidate, and every switch",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{stateFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					name, err := nameArgs(c)
					if err != nil {
						return err
					}
					return deployStatus(contextOf(c), e, name, c.String("state"), c.Bool("json"))
				},
			},
			{
				Name:      "promote",
				Usage:     "give a deployment's candidate all the traffic now",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{stateFlag, &cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
					&cli.StringFlag{Name: "reason", Value: "promoted by hand", Usage: "why (recorded in the history)"}},
				Action: func(c *cli.Context) error {
					return deploySwitch(c, nameArgs, true)
				},
			},
			{
				Name:      "rollback",
				Usage:     "take a deployment's candidate out of service, or go back to the previous model within its rollback window",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{stateFlag, &cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
					&cli.StringFlag{Name: "reason", Value: "rolled back by hand", Usage: "why (recorded in the history)"}},
				Action: func(c *cli.Context) error {
					return deploySwitch(c, nameArgs, false)
				},
			},
		},
	}
}

// deployRecord checks that the run produced a complete final checkpoint
// (or that deploy.checkpoint names one), hashes it, and writes deploy.json
// in the run directory. With strategy record that is all the deploy stage
// does. It returns the checkpoint's sha256.
func deployRecord(e *env, runDir, strategy, checkpoint string) (string, error) {
	l := templates.LayoutOf(runDir)
	p, err := jobs.Load(l.Pipeline, jobs.LoadOptions{})
	if err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	final := checkpoint
	if final == "" {
		final = filepath.Join(l.Checkpoints, "final")
	}
	if _, err := os.Stat(filepath.Join(final, "COMPLETE")); err != nil {
		return "", fmt.Errorf("deploy: no complete final checkpoint in %s: %w", final, err)
	}
	sum, err := hashDir(final)
	if err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	host, _ := os.Hostname()
	rec := map[string]any{
		"run_id":      os.Getenv("SLURMTUNE_RUN_ID"),
		"job_id":      os.Getenv("SLURM_JOB_ID"),
		"model":       p.Model.Name,
		"checkpoint":  final,
		"sha256":      sum,
		"strategy":    strategy,
		"host":        host,
		"recorded_at": time.Now().UTC().Format(time.RFC3339),
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(runDir, "deploy.json")
	if err := local.WriteFileAtomic(path, append(b, '\n'), p.Modes().File); err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	fmt.Fprintf(e.stdout, "recorded model %s (sha256 %s) in %s\n", p.Model.Name, sum, path)
	return sum, nil
}

// hashDir hashes the names and contents of the regular files under dir, in
// name order.
func hashDir(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00", rel)
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// deployment is a blue-green or canary deployment as the login side finds
// it: by name, through the newest run of that name that deploys with a
// serving strategy (its pipeline snapshot), or through --state.
type deployment struct {
	name     string
	pipeline *jobs.Pipeline // nil with --state and no serving run
	paths    deploy.Paths
	router   deploy.Router
}

// deployPaths are a pipeline's deployment files: next to deploy.router.state,
// or, with only an admin URL, under WORKDIR/.deploy/NAME/.
func deployPaths(p *jobs.Pipeline) deploy.Paths {
	state := p.Deploy.Router.State
	if state == "" {
		state = filepath.Join(p.Workdir, ".deploy", templates.JobName(p.Name, "deploy"), "router.json")
	}
	return deploy.PathsFor(state)
}

// routerFor is how a pipeline's deploy reaches its router.
func routerFor(p *jobs.Pipeline, paths deploy.Paths) (deploy.Router, error) {
	r := p.Deploy.Router
	if r.AdminURL == "" {
		return deploy.FileRouter{StatePath: paths.State, StatsPath: paths.Stats}, nil
	}
	tok, err := serve.ReadAdminToken(r.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("router %w", err)
	}
	return deploy.AdminRouter{URL: r.AdminURL, Token: tok}, nil
}

// findDeployment finds the deployment called name.
func findDeployment(ctx context.Context, st *store.Store, name, statePath string) (*deployment, error) {
	runs, err := st.RunsByName(ctx, name, 50)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		p, err := jobs.Load(templates.LayoutOf(r.RunDir).Pipeline, jobs.LoadOptions{})
		if err != nil || p.Deploy.Strategy == "record" || !p.Deploy.On() {
			continue
		}
		paths := deployPaths(p)
		if statePath != "" && statePath != paths.State {
			continue
		}
		rt, err := routerFor(p, paths)
		if err != nil {
			return nil, err
		}
		return &deployment{name: name, pipeline: p, paths: paths, router: rt}, nil
	}
	if statePath != "" {
		paths := deploy.PathsFor(statePath)
		return &deployment{name: name, paths: paths, router: deploy.FileRouter{StatePath: paths.State, StatsPath: paths.Stats}}, nil
	}
	return nil, exitError{code: exitFailure, msg: fmt.Sprintf("slurmtune: no deployment %q: no run named %q deploys with blue-green or canary (or give --state FILE)", name, name)}
}

func (d *deployment) rollbackWindow() time.Duration {
	if d.pipeline != nil && d.pipeline.Deploy.RollbackWindow.Duration > 0 {
		return d.pipeline.Deploy.RollbackWindow.Duration
	}
	return 5 * time.Minute
}

// controller drives the deployment from this host (the login side, or the
// deploy stage's node): serving jobs are cancelled with scancel.
func (d *deployment) controller(e *env) *deploy.Controller {
	client := local.NewClient()
	return &deploy.Controller{
		Name: d.name, Paths: d.paths, Router: d.router, Log: e.log,
		Cancel: func(ctx context.Context, id string) error { return client.Cancel(ctx, []string{id}) },
	}
}

// importHistory copies the deployment's history file into the database.
func (d *deployment) importHistory(ctx context.Context, st *store.Store) error {
	evs, err := deploy.ReadHistory(d.paths.History)
	if err != nil {
		return err
	}
	rows := make([]store.DeployEvent, 0, len(evs))
	for _, ev := range evs {
		detail, _ := json.Marshal(ev)
		row := store.DeployEvent{ID: ev.ID, Name: d.name, At: ev.Time, Action: ev.Action, Reason: ev.Reason, Strategy: ev.Strategy, Detail: string(detail)}
		if ev.From != nil {
			row.FromRun, row.FromModel = ev.From.Run, ev.From.Model+"@"+ev.From.Version
		}
		if ev.To != nil {
			row.ToRun, row.ToModel = ev.To.Run, ev.To.Model+"@"+ev.To.Version
		}
		rows = append(rows, row)
	}
	_, err = st.ImportDeployEvents(ctx, rows)
	return err
}

// sample records the router's view of the deployment's backends in the
// database (best effort: a router that publishes no stats is skipped).
func (d *deployment) sample(ctx context.Context, e *env, st *store.Store, rec deploy.Record) {
	snap, err := d.router.Stats(ctx)
	if err != nil {
		e.log.Debug("no router stats to sample", "err", err)
		return
	}
	var rows []store.DeploySample
	for _, m := range rec.Members() {
		b, ok := snap.Backends[m.Backend]
		if !ok {
			continue
		}
		rows = append(rows, store.DeploySample{Name: d.name, Backend: m.Backend, RunID: m.Run, At: snap.Time,
			Requests: int64(b.Requests), Errors: int64(b.Errors), P95: b.P95, Healthy: b.Healthy})
	}
	if err := st.AddDeploySamples(ctx, rows); err != nil {
		e.log.Warn("record router stats", "err", err)
	}
}

// refresh is what every login-side deployment command does first: retire a
// previous model whose rollback window is over, import the history and
// sample the router.
func (d *deployment) refresh(ctx context.Context, e *env, st *store.Store) (deploy.Record, error) {
	ctl := d.controller(e)
	if _, err := ctl.RetireDue(ctx); err != nil {
		e.log.Warn("retire the previous model", "err", err)
	}
	if err := ctl.FinishDrains(ctx); err != nil {
		e.log.Warn("finish draining servers taken out of service", "err", err)
	}
	if err := d.importHistory(ctx, st); err != nil {
		return deploy.Record{}, err
	}
	rec, err := ctl.Record()
	if err != nil {
		return rec, err
	}
	d.sample(ctx, e, st, rec)
	return rec, nil
}

type statusMember struct {
	Run     string `json:"run"`
	JobID   string `json:"job_id"`
	URL     string `json:"url"`
	Weight  int    `json:"weight"`
	Model   string `json:"model,omitempty"`
	Version string `json:"version,omitempty"`
}

type statusEvent struct {
	Time   time.Time     `json:"time"`
	Action string        `json:"action"`
	Reason string        `json:"reason"`
	From   *statusMember `json:"from"`
	To     *statusMember `json:"to"`
}

type deployStatusJSON struct {
	Name      string        `json:"name"`
	Strategy  string        `json:"strategy"`
	Stable    *statusMember `json:"stable"`
	Candidate *statusMember `json:"candidate"`
	Previous  *statusMember `json:"previous,omitempty"`
	History   []statusEvent `json:"history"`
}

func toStatusMember(m *deploy.Member) *statusMember {
	if m == nil {
		return nil
	}
	return &statusMember{Run: m.Run, JobID: m.JobID, URL: m.URL, Weight: m.Weight, Model: m.Model, Version: m.Version}
}

func deployStatus(ctx context.Context, e *env, name, statePath string, asJSON bool) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := findDeployment(ctx, st, name, statePath)
	if err != nil {
		return err
	}
	rec, err := d.refresh(ctx, e, st)
	if err != nil {
		return err
	}
	return printDeployStatus(ctx, e, st, d, rec, asJSON)
}

func printDeployStatus(ctx context.Context, e *env, st *store.Store, d *deployment, rec deploy.Record, asJSON bool) error {
	evs, err := st.DeployEvents(ctx, d.name)
	if err != nil {
		return err
	}
	out := deployStatusJSON{Name: d.name, Strategy: rec.Strategy, Stable: toStatusMember(rec.Stable),
		Candidate: toStatusMember(rec.Candidate), Previous: toStatusMember(rec.Previous), History: []statusEvent{}}
	if out.Strategy == "" && d.pipeline != nil {
		out.Strategy = d.pipeline.Deploy.Strategy
	}
	for _, ev := range evs {
		se := statusEvent{Time: ev.At.UTC(), Action: ev.Action, Reason: ev.Reason}
		var full deploy.Event
		if json.Unmarshal([]byte(ev.Detail), &full) == nil {
			se.From, se.To = toStatusMember(full.From), toStatusMember(full.To)
		}
		out.History = append(out.History, se)
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := e.stdout
	fmt.Fprintf(w, "deployment %s (%s)\n", out.Name, out.Strategy)
	line := func(role string, m *statusMember) {
		if m == nil {
			fmt.Fprintf(w, "  %-9s -\n", role)
			return
		}
		fmt.Fprintf(w, "  %-9s run %s  job %s  %s  weight %d  %s@%s\n", role, m.Run, m.JobID, m.URL, m.Weight, m.Model, m.Version)
	}
	line("stable", out.Stable)
	line("candidate", out.Candidate)
	if out.Previous != nil {
		line("previous", out.Previous)
		fmt.Fprintf(w, "            (kept for rollback until %s)\n", rec.RetireAt.Local().Format(time.DateTime))
	}
	fmt.Fprintln(w, "history:")
	for _, h := range out.History {
		from, to := "-", "-"
		if h.From != nil {
			from = h.From.Run
		}
		if h.To != nil {
			to = h.To.Run
		}
		fmt.Fprintf(w, "  %s  %-12s %s -> %s: %s\n", h.Time.Local().Format(time.DateTime), h.Action, from, to, h.Reason)
	}
	return nil
}

// deploySwitch is deploy promote (promote true) and deploy rollback.
func deploySwitch(c *cli.Context, nameArgs func(*cli.Context) (string, error), promote bool) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	name, err := nameArgs(c)
	if err != nil {
		return err
	}
	ctx := contextOf(c)
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := findDeployment(ctx, st, name, c.String("state"))
	if err != nil {
		return err
	}
	if _, err := d.refresh(ctx, e, st); err != nil {
		return err
	}
	who := os.Getenv("USER")
	if u, err := user.Current(); who == "" && err == nil {
		who = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		who += "@" + h
	}
	reason := c.String("reason") + " (" + who + ")"
	ctl := d.controller(e)
	var rec deploy.Record
	if promote {
		rec, err = ctl.Promote(ctx, reason, d.rollbackWindow())
	} else {
		rec, err = ctl.Rollback(ctx, reason)
	}
	if errors.Is(err, deploy.ErrNoCandidate) || errors.Is(err, deploy.ErrNothingToRollBack) {
		return exitError{code: exitFailure, msg: fmt.Sprintf("slurmtune: deployment %s: %v", name, err)}
	}
	if err != nil {
		return err
	}
	if err := d.importHistory(ctx, st); err != nil {
		return err
	}
	return printDeployStatus(ctx, e, st, d, rec, c.Bool("json"))
}

// deployRun is the deploy stage of a blue-green or canary deploy (see
// package serve/deploy for the flow); with strategy record it only records
// the model.
func deployRun(ctx context.Context, e *env, runDir string) error {
	runDir, err := filepath.Abs(runDir)
	if err != nil {
		return err
	}
	l := templates.LayoutOf(runDir)
	p, err := jobs.Load(l.Pipeline, jobs.LoadOptions{})
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if p.Deploy.Strategy == "record" {
		_, err := deployRecord(e, runDir, "record", "")
		return err
	}
	ckpt := p.Deploy.Checkpoint
	if ckpt == "" {
		ckpt = filepath.Join(l.Checkpoints, "final")
	}
	sum, err := deployRecord(e, runDir, p.Deploy.Strategy, ckpt)
	if err != nil {
		return err
	}
	runID := os.Getenv("SLURMTUNE_RUN_ID")
	if runID == "" {
		runID = filepath.Base(runDir)
	}
	bin := os.Getenv("SLURMTUNE")
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	ts, err := templates.New()
	if err != nil {
		return err
	}
	sc, err := ts.RenderServe(p, templates.Run{ID: runID, Dir: runDir, Slurmtune: bin}, ckpt)
	if err != nil {
		return err
	}
	script := filepath.Join(runDir, "serve.sbatch")
	if err := local.WriteFileAtomic(script, sc.Body, p.Modes().Script); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	// sbatch inside a job would pass this job's SLURM_* settings on to the
	// serving job: submit it as from a login shell.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if (strings.HasPrefix(k, "SLURM_") || strings.HasPrefix(k, "SBATCH_")) && k != "SLURM_CONF" {
			os.Unsetenv(k)
		}
	}
	client := local.NewClient()
	name := p.Name
	paths := deployPaths(p)
	rt, err := routerFor(p, paths)
	if err != nil {
		return err
	}
	d := &deployment{name: name, pipeline: p, paths: paths, router: rt}
	ctl := d.controller(e)
	smoke := deploy.SmokeConfig{Model: p.Model.Name, Latency: p.Deploy.Smoke.Latency.Duration, MinSuccess: p.Deploy.Smoke.MinSuccess}
	for _, sp := range p.Deploy.Smoke.Prompts {
		x := deploy.SmokePrompt{Prompt: sp.Prompt, MaxTokens: sp.MaxTokens, Expect: sp.Expect}
		if sp.Regex != "" {
			x.Regex = regexp.MustCompile(sp.Regex) // validated when the pipeline was loaded
		}
		smoke.Prompts = append(smoke.Prompts, x)
	}
	cn := p.Deploy.Canary
	canary := deploy.CanaryConfig{Duration: cn.Duration.Duration, MinRequests: cn.MinRequests}
	if cn.ErrorRateMargin != nil {
		canary.ErrorRateMargin = *cn.ErrorRateMargin
	}
	if cn.LatencyMargin != nil {
		canary.LatencyMargin = *cn.LatencyMargin
	}
	data := l.Data + "/train.jsonl"
	if _, err := os.Stat(data); err != nil && p.Deploy.Checkpoint != "" {
		data = filepath.Join(filepath.Dir(filepath.Dir(ckpt)), "data", "train.jsonl")
	}
	if _, err := os.Stat(data); err != nil {
		data = ""
	}
	// The {env:} secrets came with this job's environment, under their
	// own names: the serving job gets them the same way.
	var secrets map[string]string
	for name, sec := range p.Environment.Secrets {
		if v, ok := os.LookupEnv(name); ok && sec.Env != "" {
			if secrets == nil {
				secrets = map[string]string{}
			}
			secrets[name] = v
		}
	}
	res, err := deploy.RunStage(ctx, deploy.StageConfig{
		Controller: ctl, Strategy: p.Deploy.Strategy,
		Candidate: deploy.Member{Run: runID, Model: p.Model.Name, Version: sum[:12], RunDir: runDir, Data: data},
		SubmitServer: func(ctx context.Context) (string, error) {
			return client.Submit(ctx, slurm.SubmitRequest{Script: sc.Body, ScriptPath: script, WorkDir: runDir,
				Comment: templates.Comment(runID, templates.ServeStage), ExtraArgs: []string{"--output=" + sc.Log}, Secrets: secrets})
		},
		JobEnded: func(ctx context.Context, id string) (bool, string, error) {
			jobs, err := client.Jobs(ctx, []string{id})
			if err != nil || len(jobs) == 0 {
				return false, "", err
			}
			return jobs[0].State.Terminal(), string(jobs[0].State), nil
		},
		AddressFile:    filepath.Join(runDir, "serve", "address"),
		StartupTimeout: p.Deploy.Serve.StartupTimeout.Duration,
		Smoke:          smoke, CanaryPercent: cn.Percent, Canary: canary,
		RollbackWindow: p.Deploy.RollbackWindow.Duration,
	})
	if res.Candidate.JobID != "" {
		fmt.Fprintf(e.stdout, "serving job %s at %s: %s\n", res.Candidate.JobID, res.Candidate.URL, res.Smoke.Summary())
	}
	if err != nil {
		return fmt.Errorf("deploy %s of run %s FAILED: %w", p.Deploy.Strategy, runID, err)
	}
	fmt.Fprintf(e.stdout, "deployed run %s (%s@%s) with %s: %s\n", runID, p.Model.Name, sum[:12], p.Deploy.Strategy, res.Outcome.Reason)
	return nil
}
