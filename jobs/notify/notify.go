// Package notify sends a pipeline's webhook events (notify.webhook): a run
// that ended, a failed quality gate, a preempted (requeued) job, drift of a
// deployed model. Events are read from what the store records about runs,
// queued in the store's outbox once each (the event's key deduplicates, so
// repeated refreshes never send one twice), and delivered by Deliver with
// retries and exponential backoff, each attempt bounded in time and the
// whole delivery bounded by a budget, so a slow or failing receiver never
// holds up a refresh.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/store"
)

// Event is the JSON body a webhook gets.
type Event struct {
	Type    string    `json:"type"` // "slurmtune.event"
	Event   string    `json:"event"`
	Run     string    `json:"run"`
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Stage   string    `json:"stage,omitempty"`
	JobID   string    `json:"job_id,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Restart int       `json:"restart,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
	// Detail is the drift report for drift events.
	Detail any `json:"detail,omitempty"`
}

// Keyed is an event with the key that makes it happen once.
type Keyed struct {
	Key   string
	Event Event
}

// gateFailedExit is slurmtune gate's exit code for a failed gate.
const gateFailedExit = 3

// RunEvents are the events a run's record shows now (pure: it reads r
// only). A run that ends again after a retry has a new attempt, so a new
// key; a job requeued N times shows N preemptions.
func RunEvents(r *store.Run, now time.Time) []Keyed {
	var out []Keyed
	attempt := 0
	for _, st := range r.Stages {
		attempt = max(attempt, st.Attempt)
		if st.Name == jobs.StageEval && st.State == "FAILED" && st.ExitCode != nil && *st.ExitCode == gateFailedExit {
			out = append(out, Keyed{Key: key(r.ID, "gate_failed", st.Name, strconv.Itoa(st.Attempt)), Event: Event{
				Event: "gate_failed", Stage: st.Name, JobID: st.JobID, Attempt: st.Attempt, Reason: "a quality gate failed (see the eval report)"}})
		}
		for n := 1; n <= st.Restarts; n++ {
			out = append(out, Keyed{Key: key(r.ID, "preempted", st.Name, strconv.Itoa(st.Attempt), strconv.Itoa(n)), Event: Event{
				Event: "preempted", Stage: st.Name, JobID: st.JobID, Attempt: st.Attempt, Restart: n}})
		}
	}
	switch r.State {
	case store.RunSucceeded:
		out = append(out, Keyed{Key: key(r.ID, "succeeded", strconv.Itoa(attempt)), Event: Event{Event: "succeeded", Attempt: attempt}})
	case store.RunFailed:
		ev := Event{Event: "failed", Attempt: attempt, Reason: r.Reason}
		for _, st := range r.Stages {
			if st.Terminal() && st.State != "COMPLETED" {
				ev.Stage, ev.JobID = st.Name, st.JobID
				if ev.Reason == "" {
					ev.Reason = st.State
					if st.Reason != "" {
						ev.Reason += " (" + st.Reason + ")"
					}
				}
				break
			}
		}
		out = append(out, Keyed{Key: key(r.ID, "failed", strconv.Itoa(attempt)), Event: ev})
	}
	for i := range out {
		out[i].Event.Type, out[i].Event.Run, out[i].Event.Name, out[i].Event.State, out[i].Event.Time =
			"slurmtune.event", r.ID, r.Name, r.State, now.UTC()
	}
	return out
}

func key(parts ...string) string { return strings.Join(parts, ":") }

// Wants reports whether n asks for event (notify.on empty: every event).
func Wants(n jobs.Notify, event string) bool {
	return n.Webhook != "" && (len(n.On) == 0 || slices.Contains(n.On, event))
}

// Outbox is what notify needs of the store.
type Outbox interface {
	ChangedNotifyRuns(ctx context.Context) ([]store.NotifyRun, error)
	MarkNotifyScanned(ctx context.Context, runID string, t time.Time) error
	EnqueueNotification(ctx context.Context, n store.Notification) (bool, error)
	DueNotifications(ctx context.Context, now time.Time, limit int) ([]store.Notification, error)
	NotificationDelivered(ctx context.Context, key string, t time.Time) error
	NotificationFailed(ctx context.Context, key, errText string, next time.Time) error
}

// Config is a run's notify section as recorded at submit (JSON).
func Config(n jobs.Notify) (string, error) {
	b, err := json.Marshal(n)
	return string(b), err
}

// Queue looks at every run with a notify section that changed since it was
// last looked at and queues the events it asks for. It returns how many
// were new.
func Queue(ctx context.Context, ob Outbox, now time.Time) (int, error) {
	runs, err := ob.ChangedNotifyRuns(ctx)
	if err != nil {
		return 0, err
	}
	added := 0
	for _, nr := range runs {
		var n jobs.Notify
		if err := json.Unmarshal([]byte(nr.Config), &n); err != nil {
			return added, fmt.Errorf("notify of run %s: %w", nr.Run.ID, err)
		}
		for _, k := range RunEvents(nr.Run, now) {
			if !Wants(n, k.Event.Event) {
				continue
			}
			ok, err := enqueue(ctx, ob, n.Webhook, k, now)
			if err != nil {
				return added, err
			}
			if ok {
				added++
			}
		}
		// Seen up to this version of the run: looked at again once it changes.
		if err := ob.MarkNotifyScanned(ctx, nr.Run.ID, nr.Run.UpdatedAt.Add(time.Millisecond)); err != nil {
			return added, err
		}
	}
	return added, nil
}

// QueueEvent queues one event (drift) for a run, once per key.
func QueueEvent(ctx context.Context, ob Outbox, n jobs.Notify, k Keyed, now time.Time) (bool, error) {
	if !Wants(n, k.Event.Event) {
		return false, nil
	}
	return enqueue(ctx, ob, n.Webhook, k, now)
}

func enqueue(ctx context.Context, ob Outbox, url string, k Keyed, now time.Time) (bool, error) {
	body, err := json.Marshal(k.Event)
	if err != nil {
		return false, err
	}
	return ob.EnqueueNotification(ctx, store.Notification{Key: k.Key, RunID: k.Event.Run, Event: k.Event.Event, URL: url,
		Payload: body, NextAt: now, CreatedAt: now})
}

// Delivery says how Deliver tries.
type Delivery struct {
	Client *http.Client
	// Timeout bounds one attempt; Budget the whole delivery (what is left
	// waits for the next call).
	Timeout, Budget time.Duration
	// Backoff is the wait after the first failed attempt; it doubles per
	// attempt up to MaxBackoff. After MaxAttempts the event is given up.
	Backoff, MaxBackoff time.Duration
	MaxAttempts         int
	Now                 func() time.Time
}

// DefaultDelivery: 5 s an attempt, 15 s in all, retried after 2 s, 4 s, ...
// up to 30 min, 20 attempts (about 8 hours of trying).
func DefaultDelivery() Delivery {
	return Delivery{Client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Timeout: 5 * time.Second, Budget: 15 * time.Second, Backoff: 2 * time.Second, MaxBackoff: 30 * time.Minute,
		MaxAttempts: 20, Now: time.Now}
}

// Result counts what Deliver did.
type Result struct{ Sent, Failed, GaveUp int }

// Deliver posts the notifications that are due, oldest first.
func (d Delivery) Deliver(ctx context.Context, ob Outbox) (Result, error) {
	var res Result
	start := d.Now()
	due, err := ob.DueNotifications(ctx, start, 100)
	if err != nil {
		return res, err
	}
	for _, n := range due {
		if d.Now().Sub(start) >= d.Budget {
			break
		}
		if err := d.post(ctx, n); err != nil {
			res.Failed++
			next := time.Time{}
			if n.Attempts+1 < d.MaxAttempts {
				wait := d.Backoff << min(n.Attempts, 20)
				next = d.Now().Add(min(wait, d.MaxBackoff))
			} else {
				res.GaveUp++
			}
			if err := ob.NotificationFailed(ctx, n.Key, err.Error(), next); err != nil {
				return res, err
			}
			continue
		}
		res.Sent++
		if err := ob.NotificationDelivered(ctx, n.Key, d.Now()); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (d Delivery) post(ctx context.Context, n store.Notification) error {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	// Receivers that see a retry of an answer that was lost can drop it
	// (X-Slurmtune-Delivery).
	return Post(ctx, d.Client, n.URL, n.Payload, http.Header{"User-Agent": {"slurmtune"},
		"X-Slurmtune-Event": {n.Event}, "X-Slurmtune-Delivery": {n.Key}})
}

// Post POSTs body as JSON to url with the headers h, and fails unless the
// answer is a 2xx. It is how every webhook (notify.webhook, and
// monitor.webhook's drift alerts) is sent.
func Post(ctx context.Context, c *http.Client, url string, body []byte, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Drained so the connection can be reused; the status is what counts.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
