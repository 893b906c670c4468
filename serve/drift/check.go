package drift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/notify"
	"github.com/slurmtune/slurmtune/store"
)

// Source gives the target of a check: serve/deploy's Deployment (it
// refreshes the deployment first).
type Source interface {
	DriftTarget(ctx context.Context) (Target, error)
}

// Target is the stable model of a deployment as a drift check reads it.
type Target struct {
	// Deployment is the deployment's name; Pipeline its newest serving
	// run's pipeline (nil when it was found by state file alone: the
	// monitor defaults apply).
	Deployment string
	Pipeline   *jobs.Pipeline
	// The stable model: its run, model and version, its backend in the
	// routing state, the training split its deploy recorded, and where its
	// own server logs prompts ("" when unknown).
	Run, Model, Version, Backend string
	Data, ServerPromptLog        string
	// RouterPromptLog is where the router logs the prompts it forwards
	// (with one rotated file, RouterPromptLog.1).
	RouterPromptLog string
}

// Store is what Check needs of the database: the router counters sampled
// into it, and the notification outbox.
type Store interface {
	DeploySamples(ctx context.Context, name, runID string) ([]store.DeploySample, error)
	notify.Outbox
}

// Check is one drift check of a deployment's stable model.
type Check struct {
	Store Store
	Log   *slog.Logger
	// Post posts an alert to monitor.webhook and queues the drift event
	// of notify.webhook when a check alerts.
	Post bool
	// UserAgent is the User-Agent of the monitor.webhook request.
	UserAgent string
	// Deliver delivers the notifications that are due (after a drift
	// event was queued).
	Deliver func(ctx context.Context)
	// HTTP posts to monitor.webhook (default http.DefaultClient).
	HTTP *http.Client
}

// Alert is what `slurmtune drift --json` prints and what monitor.webhook
// gets.
type Alert struct {
	Type       string       `json:"type"` // "slurmtune.drift"
	Name       string       `json:"name"`
	Run        string       `json:"run"`
	Model      string       `json:"model"`
	Version    string       `json:"version"`
	Time       time.Time    `json:"time"`
	Drifted    bool         `json:"drifted"`
	Level      Level        `json:"level"`
	Reasons    []string     `json:"reasons"`
	Findings   []Finding    `json:"findings"`
	Notes      []string     `json:"notes"`
	Baseline   PromptSample `json:"baseline"`
	Production PromptSample `json:"production"`
	Perf       *PerfWindows `json:"perf,omitempty"`
	Webhook    string       `json:"webhook,omitempty"` // "sent", or why not
}

// PromptSample says where a prompt sample came from and how big it is.
type PromptSample struct {
	Path    string `json:"path"`
	Prompts int    `json:"prompts"`
}

// PerfWindows are the two performance windows compared.
type PerfWindows struct {
	Baseline Window `json:"baseline"`
	Current  Window `json:"current"`
}

// monitorConfig turns a monitor section (with its defaults) into drift
// settings.
func monitorConfig(m jobs.Monitor) Config {
	cfg := DefaultConfig()
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
	return cfg
}

// Run runs the drift checks of the stable model of src and, when one
// alerts and c.Post is set, posts the alert to monitor.webhook and queues
// notify's drift event.
func (c Check) Run(ctx context.Context, src Source) (*Alert, error) {
	t, err := src.DriftTarget(ctx)
	if err != nil {
		return nil, err
	}
	var mon jobs.Monitor
	if t.Pipeline != nil {
		mon = t.Pipeline.Monitor
	}
	mon = mon.WithDefaults()
	cfg := monitorConfig(mon)
	now := time.Now()
	rep := &Alert{Type: "slurmtune.drift", Name: t.Deployment, Run: t.Run, Model: t.Model, Version: t.Version,
		Time: now.UTC(), Reasons: []string{}, Findings: []Finding{}, Notes: []string{}}
	var in Input

	base := mon.Baseline
	if base == "" {
		base = t.Data
	}
	rep.Baseline.Path = base
	if base == "" {
		rep.Notes = append(rep.Notes, "data drift not checked: no baseline (set monitor.baseline; the model's training split is unknown)")
	} else if in.BaselinePrompts, err = readPrompts(base, "", 0); err != nil {
		return nil, fmt.Errorf("drift baseline: %w", err)
	}
	// Production prompts: those the router logged for the stable model's
	// backend (any server), else those its server logged itself.
	rep.Production.Path = t.RouterPromptLog
	in.ProductionPrompts, err = readPromptFiles([]string{t.RouterPromptLog + ".1", t.RouterPromptLog}, t.Backend, mon.MaxPrompts)
	if err != nil {
		return nil, fmt.Errorf("production prompts: %w", err)
	}
	if len(in.ProductionPrompts) == 0 && t.ServerPromptLog != "" {
		rep.Production.Path = t.ServerPromptLog
		if in.ProductionPrompts, err = readPrompts(rep.Production.Path, "", mon.MaxPrompts); errors.Is(err, fs.ErrNotExist) {
			in.ProductionPrompts = nil
		} else if err != nil {
			return nil, fmt.Errorf("production prompts: %w", err)
		}
	}
	if len(in.ProductionPrompts) == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("data drift not checked: no prompts logged for %s (router prompt log %s; server prompt log %s)",
			t.Backend, t.RouterPromptLog, orNone(t.ServerPromptLog)))
		rep.Production.Path = t.RouterPromptLog
		in.ProductionPrompts = nil
	}
	rep.Baseline.Prompts, rep.Production.Prompts = len(in.BaselinePrompts), len(in.ProductionPrompts)
	if in.BaselinePrompts == nil || in.ProductionPrompts == nil {
		in.BaselinePrompts, in.ProductionPrompts = nil, nil
	}

	samples, err := c.Store.DeploySamples(ctx, t.Deployment, t.Run)
	if err != nil {
		return nil, err
	}
	if b, cur, note := windowsFromSamples(samples, now, mon.BaselineWindow.Duration, mon.Window.Duration); note != "" {
		rep.Notes = append(rep.Notes, "performance drift not checked: "+note)
	} else {
		in.BaselinePerf, in.CurrentPerf = &b, &cur
		rep.Perf = &PerfWindows{Baseline: b, Current: cur}
	}

	ar, err := Analyze(in, cfg)
	if err != nil {
		return nil, err
	}
	rep.Drifted, rep.Level, rep.Reasons, rep.Findings = ar.Drifted, ar.Level, ar.Reasons, ar.Findings
	if rep.Drifted && c.Post && t.Pipeline != nil {
		c.alert(ctx, t, mon, rep)
	}
	return rep, nil
}

// alert posts rep to monitor.webhook (at once, and once: rep.Webhook says
// how it went) and queues the drift event of notify.webhook (once per
// deployment and monitor window, delivered with retries).
func (c Check) alert(ctx context.Context, t Target, mon jobs.Monitor, rep *Alert) {
	if mon.Webhook != "" {
		if err := c.postWebhook(ctx, mon.Webhook, rep); err != nil {
			rep.Webhook = "failed: " + err.Error()
			c.Log.Error("drift alert webhook", "url", mon.Webhook, "err", err)
		} else {
			rep.Webhook = "sent"
		}
	}
	if !notify.Wants(t.Pipeline.Notify, "drift") || rep.Run == "" {
		return
	}
	k := notify.Keyed{Key: strings.Join([]string{rep.Run, "drift", t.Deployment, rep.Time.Truncate(mon.Window.Duration).UTC().Format(time.RFC3339)}, ":"),
		Event: notify.Event{Type: "slurmtune.event", Event: "drift", Run: rep.Run, Name: t.Deployment, State: string(rep.Level),
			Reason: strings.Join(rep.Reasons, "; "), Time: rep.Time.UTC(), Detail: rep}}
	if _, err := notify.QueueEvent(ctx, c.Store, t.Pipeline.Notify, k, time.Now()); err != nil {
		c.Log.Warn("queue the drift notification", "err", err)
	}
	if c.Deliver != nil {
		c.Deliver(ctx)
	}
}

// postWebhook POSTs the report as JSON, within 15 seconds.
func (c Check) postWebhook(ctx context.Context, url string, rep *Alert) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return notify.Post(ctx, hc, url, body, http.Header{"User-Agent": {c.UserAgent}})
}

// windowsFromSamples derives the performance windows of one backend from
// its sampled router counters: the baseline is its first baselineWindow of
// samples, the current window its last window. note says why there is no
// verdict (too few samples, windows that overlap).
func windowsFromSamples(samples []store.DeploySample, now time.Time, baselineWindow, window time.Duration) (base, cur Window, note string) {
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
	delta := func(a, b store.DeploySample) Window {
		return CountersWindow(a.Requests, a.Errors, b.Requests, b.Errors, b.P95)
	}
	return delta(first, samples[baseEnd]), delta(samples[curStart], samples[last]), ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// WriteText writes the alert as `slurmtune drift` prints it.
func (rep *Alert) WriteText(w io.Writer) {
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
