package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/notify"
	"github.com/slurmtune/slurmtune/serve/drift"
	"github.com/slurmtune/slurmtune/store"
)

// exitDrift is the exit code of `slurmtune drift` when a drift check
// crossed its alert threshold.
const exitDrift = 4

func driftCommand() *cli.Command {
	return &cli.Command{
		Name:      "drift",
		Usage:     "check a deployment's stable model for data and performance drift",
		ArgsUsage: "NAME",
		Description: "Compares the prompts the stable model's server logged with its training data (prompt length\n" +
			"and word frequency PSI) and its recent error rate and p95 latency with its first window after\n" +
			"the switch (router stats sampled into the database by this command and by deploy status).\n" +
			"Exits 4 when a check crosses its alert threshold, after posting a JSON alert to monitor.webhook.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "the router state `FILE` of the deployment (default: deploy.router.state of the newest serving run named NAME)"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.BoolFlag{Name: "no-webhook", Usage: "do not post an alert to monitor.webhook"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("drift: want exactly one deployment NAME, got %d arguments", c.NArg())
			}
			ctx := contextOf(c)
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			d, err := findDeployment(ctx, st, c.Args().First(), c.String("state"))
			if err != nil {
				return err
			}
			rep, err := checkDrift(ctx, e, st, d, !c.Bool("no-webhook"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printDrift(e, rep)
			}
			if rep.Drifted {
				return exitError{code: exitDrift}
			}
			return nil
		},
	}
}

// driftReport is what `slurmtune drift --json` prints and what the webhook
// gets.
type driftReport struct {
	Type       string          `json:"type"` // "slurmtune.drift"
	Name       string          `json:"name"`
	Run        string          `json:"run"`
	Model      string          `json:"model"`
	Version    string          `json:"version"`
	Time       time.Time       `json:"time"`
	Drifted    bool            `json:"drifted"`
	Level      drift.Level     `json:"level"`
	Reasons    []string        `json:"reasons"`
	Findings   []drift.Finding `json:"findings"`
	Notes      []string        `json:"notes"`
	Baseline   promptSample    `json:"baseline"`
	Production promptSample    `json:"production"`
	Perf       *perfWindows    `json:"perf,omitempty"`
	Webhook    string          `json:"webhook,omitempty"` // "sent", or why not
}

type promptSample struct {
	Path    string `json:"path"`
	Prompts int    `json:"prompts"`
}

type perfWindows struct {
	Baseline drift.Window `json:"baseline"`
	Current  drift.Window `json:"current"`
}

// monitorConfig turns the monitor section into drift settings.
func monitorConfig(p *jobs.Pipeline) (drift.Config, jobs.Monitor) {
	cfg := drift.DefaultConfig()
	var m jobs.Monitor
	if p != nil {
		m = p.Monitor
	}
	if m.PSI.Warn > 0 {
		cfg.PSI.Warn = m.PSI.Warn
	}
	if m.PSI.Alert > 0 {
		cfg.PSI.Alert = m.PSI.Alert
	}
	if m.MinPrompts > 0 {
		cfg.MinPrompts = m.MinPrompts
	}
	if m.MinRequests > 0 {
		cfg.Perf.MinRequests = m.MinRequests
	}
	if m.ErrorRateMargin != nil {
		cfg.Perf.ErrorRateMargin = *m.ErrorRateMargin
	}
	if m.LatencyMargin != nil {
		cfg.Perf.LatencyMargin = *m.LatencyMargin
	}
	if m.MaxPrompts <= 0 {
		m.MaxPrompts = 10000
	}
	if m.BaselineWindow.Duration <= 0 {
		m.BaselineWindow.Duration = time.Hour
	}
	if m.Window.Duration <= 0 {
		m.Window.Duration = 15 * time.Minute
	}
	return cfg, m
}

// checkDrift runs the drift checks of a deployment's stable model and,
// when one alerts and post is set, posts the report to monitor.webhook.
func checkDrift(ctx context.Context, e *env, st *store.Store, d *deployment, post bool) (*driftReport, error) {
	rec, err := d.refresh(ctx, e, st)
	if err != nil {
		return nil, err
	}
	if rec.Stable == nil {
		return nil, exitError{code: exitFailure, msg: fmt.Sprintf("slurmtune: deployment %s has no stable model yet", d.name)}
	}
	cfg, mon := monitorConfig(d.pipeline)
	now := time.Now()
	rep := &driftReport{Type: "slurmtune.drift", Name: d.name, Run: rec.Stable.Run, Model: rec.Stable.Model, Version: rec.Stable.Version,
		Time: now.UTC(), Reasons: []string{}, Findings: []drift.Finding{}, Notes: []string{}}
	var in drift.Input

	base := mon.Baseline
	if base == "" {
		base = rec.Stable.Data
	}
	rep.Baseline.Path = base
	if base == "" {
		rep.Notes = append(rep.Notes, "data drift not checked: no baseline (set monitor.baseline; the model's training split is unknown)")
	} else if in.BaselinePrompts, err = readPrompts(base, "", 0); err != nil {
		return nil, fmt.Errorf("drift baseline: %w", err)
	}
	// Production prompts: those the router logged for the stable model's
	// backend (any server), else those its server logged itself.
	rep.Production.Path = d.paths.Prompts
	in.ProductionPrompts, err = readPromptFiles([]string{d.paths.Prompts + ".1", d.paths.Prompts}, rec.Stable.Backend, mon.MaxPrompts)
	if err != nil {
		return nil, fmt.Errorf("production prompts: %w", err)
	}
	if len(in.ProductionPrompts) == 0 && rec.Stable.PromptLog() != "" {
		rep.Production.Path = rec.Stable.PromptLog()
		if in.ProductionPrompts, err = readPrompts(rep.Production.Path, "", mon.MaxPrompts); errors.Is(err, fs.ErrNotExist) {
			in.ProductionPrompts = nil
		} else if err != nil {
			return nil, fmt.Errorf("production prompts: %w", err)
		}
	}
	if len(in.ProductionPrompts) == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("data drift not checked: no prompts logged for %s (router prompt log %s; server prompt log %s)",
			rec.Stable.Backend, d.paths.Prompts, orNone(rec.Stable.PromptLog())))
		rep.Production.Path = d.paths.Prompts
		in.ProductionPrompts = nil
	}
	rep.Baseline.Prompts, rep.Production.Prompts = len(in.BaselinePrompts), len(in.ProductionPrompts)
	if in.BaselinePrompts == nil || in.ProductionPrompts == nil {
		in.BaselinePrompts, in.ProductionPrompts = nil, nil
	}

	samples, err := st.DeploySamples(ctx, d.name, rec.Stable.Run)
	if err != nil {
		return nil, err
	}
	if b, c, note := windowsFromSamples(samples, now, mon.BaselineWindow.Duration, mon.Window.Duration); note != "" {
		rep.Notes = append(rep.Notes, "performance drift not checked: "+note)
	} else {
		in.BaselinePerf, in.CurrentPerf = &b, &c
		rep.Perf = &perfWindows{Baseline: b, Current: c}
	}

	ar, err := drift.Analyze(in, cfg)
	if err != nil {
		return nil, err
	}
	rep.Drifted, rep.Level, rep.Reasons, rep.Findings = ar.Drifted, ar.Level, ar.Reasons, ar.Findings
	if rep.Drifted && post && d.pipeline != nil && d.pipeline.Monitor.Webhook != "" {
		if err := postWebhook(ctx, d.pipeline.Monitor.Webhook, rep); err != nil {
			rep.Webhook = "failed: " + err.Error()
			e.log.Error("drift alert webhook", "url", d.pipeline.Monitor.Webhook, "err", err)
		} else {
			rep.Webhook = "sent"
		}
	}
	if rep.Drifted && post && d.pipeline != nil && notify.Wants(d.pipeline.Notify, "drift") && rep.Run != "" {
		// One drift event per deployment and monitor window.
		window := d.pipeline.Monitor.Window.Duration
		if window <= 0 {
			window = 15 * time.Minute
		}
		k := notify.Keyed{Key: strings.Join([]string{rep.Run, "drift", d.name, rep.Time.Truncate(window).UTC().Format(time.RFC3339)}, ":"),
			Event: notify.Event{Type: "slurmtune.event", Event: "drift", Run: rep.Run, Name: d.name, State: string(rep.Level),
				Reason: strings.Join(rep.Reasons, "; "), Time: rep.Time.UTC(), Detail: rep}}
		if _, err := notify.QueueEvent(ctx, st, d.pipeline.Notify, k, time.Now()); err != nil {
			e.log.Warn("queue the drift notification", "err", err)
		}
		deliverNotifications(ctx, e, st)
	}
	return rep, nil
}

// windowsFromSamples derives the performance windows of one backend from
// its sampled router counters: the baseline is its first baselineWindow of
// samples, the current window its last window. note says why there is no
// verdict (too few samples, windows that overlap).
func windowsFromSamples(samples []store.DeploySample, now time.Time, baselineWindow, window time.Duration) (base, cur drift.Window, note string) {
	if len(samples) < 2 {
		return base, cur, fmt.Sprintf("%d router stats samples so far (each drift and deploy status run takes one)", len(samples))
	}
	first := samples[0]
	baseEnd := -1
	for i, s := range samples {
		if s.At.After(first.At.Add(baselineWindow)) {
			break
		}
		baseEnd = i
	}
	curStart := -1
	for i, s := range samples {
		if !s.At.Before(now.Add(-window)) {
			curStart = i
			break
		}
	}
	last := len(samples) - 1
	switch {
	case baseEnd < 1:
		return base, cur, "no two samples within the baseline window"
	case curStart < 0 || curStart >= last:
		return base, cur, "no two samples within the current window"
	case curStart < baseEnd:
		return base, cur, fmt.Sprintf("the current window overlaps the baseline window (the model has served for %s; baseline %s + window %s)",
			samples[last].At.Sub(first.At).Round(time.Second), baselineWindow, window)
	}
	delta := func(a, b store.DeploySample) drift.Window {
		return drift.CountersWindow(a.Requests, a.Errors, b.Requests, b.Errors, b.P95)
	}
	return delta(first, samples[baseEnd]), delta(samples[curStart], samples[last]), ""
}

// readPromptFiles reads the prompts of backend from prompt log files in
// order (missing ones are skipped), keeping the last max when max > 0.
func readPromptFiles(paths []string, backend string, max int) ([]string, error) {
	var out []string
	for _, p := range paths {
		got, err := readPrompts(p, backend, max)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	if max > 0 && len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// readPrompts reads prompts from a JSONL file: prompt logs ({"prompt"},
// with backend set only the lines of that backend) or training records
// ({"text"}, {"messages"}: the user turns, {"instruction", "input"}). With
// max > 0 only the last max are kept.
func readPrompts(path, backend string, max int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := []string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r struct {
			Backend     string  `json:"backend"`
			Prompt      *string `json:"prompt"`
			Text        *string `json:"text"`
			Instruction *string `json:"instruction"`
			Input       string  `json:"input"`
			Messages    []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		}
		if json.Unmarshal(line, &r) != nil || (backend != "" && r.Backend != backend) {
			continue
		}
		var p string
		switch {
		case r.Prompt != nil:
			p = *r.Prompt
		case r.Text != nil:
			p = *r.Text
		case r.Instruction != nil:
			p = strings.TrimSpace(*r.Instruction + "\n" + r.Input)
		case len(r.Messages) > 0:
			var parts []string
			for _, m := range r.Messages {
				if m.Role == "user" {
					parts = append(parts, m.Content)
				}
			}
			p = strings.Join(parts, "\n")
		default:
			continue
		}
		out = append(out, p)
		if max > 0 && len(out) > 2*max {
			out = append(out[:0], out[len(out)-max:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if max > 0 && len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}

// postWebhook POSTs the report as JSON.
func postWebhook(ctx context.Context, url string, rep *driftReport) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "slurmtune/"+version)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func printDrift(e *env, rep *driftReport) {
	w := e.stdout
	verdict := "no drift"
	if rep.Drifted {
		verdict = "DRIFT"
	}
	fmt.Fprintf(w, "deployment %s: %s (level %s), stable run %s (%s@%s)\n", rep.Name, verdict, rep.Level, rep.Run, rep.Model, rep.Version)
	fmt.Fprintf(w, "  prompts: %d production (%s) vs %d baseline (%s)\n", rep.Production.Prompts, rep.Production.Path, rep.Baseline.Prompts, rep.Baseline.Path)
	for _, f := range rep.Findings {
		state := string(f.Level)
		if f.Skipped {
			state = "skipped"
		}
		fmt.Fprintf(w, "  %-18s %-7s %s\n", f.Check, state, f.Reason)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if rep.Webhook != "" {
		fmt.Fprintf(w, "  webhook: %s\n", rep.Webhook)
	}
}

// driftGate is submit --if-drift: it reports whether the deployment named
// like the pipeline has drifted (and posts the alert like drift does).
func driftGate(ctx context.Context, e *env, p *jobs.Pipeline) (bool, *driftReport, error) {
	st, err := e.openStore(ctx)
	if err != nil {
		return false, nil, err
	}
	defer st.Close()
	var d *deployment
	if p.Deploy.On() && p.Deploy.Strategy != "record" {
		paths := deployPaths(p)
		rt, err := routerFor(p, paths)
		if err != nil {
			return false, nil, err
		}
		d = &deployment{name: p.Name, pipeline: p, paths: paths, router: rt}
	} else if d, err = findDeployment(ctx, st, p.Name, ""); err != nil {
		return false, nil, err
	}
	rep, err := checkDrift(ctx, e, st, d, true)
	if err != nil {
		return false, nil, err
	}
	return rep.Drifted, rep, nil
}

// skipWithoutDrift is submit --if-drift: true (after printing a line) when
// the pipeline's deployment has not drifted.
func skipWithoutDrift(c *cli.Context, e *env, p *jobs.Pipeline) (bool, error) {
	if !c.Bool("if-drift") {
		return false, nil
	}
	drifted, rep, err := driftGate(contextOf(c), e, p)
	if err != nil {
		return true, err
	}
	if !drifted {
		fmt.Fprintf(e.stdout, "no drift detected for deployment %s (level %s): not submitting\n", p.Name, rep.Level)
		return true, nil
	}
	e.log.Info("drift detected: submitting", "deployment", p.Name, "reasons", strings.Join(rep.Reasons, "; "))
	return false, nil
}
