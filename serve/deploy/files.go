package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/slurmtune/slurmtune/store/atomicfile"
)

// Paths are the files of one deployment, all next to the router's state
// file.
type Paths struct {
	State   string // routing state (serve.State)
	Record  string // Record
	History string // Event lines
	Stats   string // StatsFile
	Prompts string // the router's prompt log (serve.PromptEntry lines)
	Lock    string
}

// PathsFor returns the files of the deployment whose routing state file is
// state: "dir/router.json" gives "dir/router.deploy.json",
// "dir/router.history.jsonl", "dir/router.stats.json",
// "dir/router.prompts.jsonl" and "dir/router.lock".
func PathsFor(state string) Paths {
	base := strings.TrimSuffix(state, ".json")
	return Paths{
		State:   state,
		Record:  base + ".deploy.json",
		History: base + ".history.jsonl",
		Stats:   base + ".stats.json",
		Prompts: base + ".prompts.jsonl",
		Lock:    base + ".lock",
	}
}

// Member is one model server of a deployment.
type Member struct {
	// Backend is its name in the routing state.
	Backend string `json:"backend"`
	Run     string `json:"run"`
	JobID   string `json:"job_id"`
	URL     string `json:"url"`
	Weight  int    `json:"weight"`
	// Model is the model name and Version the checkpoint's sha256 (the
	// first 12 hex digits): the model version.
	Model   string `json:"model,omitempty"`
	Version string `json:"version,omitempty"`
	// RunDir is the run directory (the server's prompt log is
	// serve/prompts.jsonl there); Data is the training split the model was
	// trained on (the baseline of data drift checks).
	RunDir string `json:"run_dir,omitempty"`
	Data   string `json:"data,omitempty"`
}

// PromptLog is where a member's server logs the prompts it gets.
func (m *Member) PromptLog() string {
	if m == nil || m.RunDir == "" {
		return ""
	}
	return m.RunDir + "/serve/prompts.jsonl"
}

func (m *Member) String() string {
	if m == nil {
		return "none"
	}
	s := m.Run
	if m.Version != "" {
		s += " (" + m.Model + "@" + m.Version + ")"
	}
	return s
}

// Record is the deployment as the controller left it. Stable serves the
// traffic (all of it, or 100-percent during a canary); Candidate is a canary
// in progress; Previous is the server Stable replaced, kept at weight 0 for
// an instant rollback until RetireAt.
type Record struct {
	Name      string    `json:"name"`
	Strategy  string    `json:"strategy"`
	Stable    *Member   `json:"stable"`
	Candidate *Member   `json:"candidate"`
	Previous  *Member   `json:"previous"`
	RetireAt  time.Time `json:"retire_at,omitzero"`
	// Draining are servers taken out of service: still in the routing
	// state at weight 0 until the router has no request in flight on them,
	// then removed and their jobs cancelled.
	Draining []*Member `json:"draining,omitempty"`
	// CanaryUntil is when the canary in progress ends.
	CanaryUntil time.Time `json:"canary_until,omitzero"`
	// StateVersion is the version of the routing state last written.
	StateVersion int64     `json:"state_version"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Members returns the servers of the record that are in the routing state.
func (r *Record) Members() []*Member {
	var out []*Member
	for _, m := range []*Member{r.Stable, r.Candidate, r.Previous} {
		if m != nil {
			out = append(out, m)
		}
	}
	return append(out, r.Draining...)
}

// Event actions.
const (
	ActionDeploy      = "deploy"       // first model of a deployment
	ActionSmokeFailed = "smoke_failed" // a new server failed its smoke tests and got no traffic
	ActionCanary      = "canary"       // a canary got its share of traffic
	ActionPromote     = "promote"      // a new model took all the traffic
	ActionRollback    = "rollback"     // traffic went back to the older model
	ActionRetire      = "retire"       // an old server was removed and its job cancelled
	ActionFailed      = "failed"       // the deploy failed before any switch (server never came up...)
)

// Event is one line of the history file: a switch (or a refusal to
// switch), with its time, reason and the two model versions involved.
type Event struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Name     string    `json:"name"`
	Action   string    `json:"action"`
	Reason   string    `json:"reason"`
	Strategy string    `json:"strategy,omitempty"`
	From     *Member   `json:"from"`
	To       *Member   `json:"to"`
}

// NewEventID returns a random event id.
func NewEventID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ReadRecord reads the deployment record; a missing file is an empty record
// (ok false).
func ReadRecord(path string) (rec Record, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("read deployment record: %w", err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, false, fmt.Errorf("read deployment record %s: %w", path, err)
	}
	return rec, true, nil
}

// WriteRecord writes the deployment record atomically.
func WriteRecord(path string, rec Record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(data, '\n'))
}

// AppendEvent appends one event to the history file (one write of one
// line, so concurrent appenders on one host never interleave).
func AppendEvent(path string, ev Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// ReadHistory reads every event of the history file, oldest first. A
// missing file has no events; a torn last line (a writer that died) is
// skipped.
func ReadHistory(path string) ([]Event, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	var out []Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil || ev.ID == "" {
			continue
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

// lock takes an exclusive flock(2) on path, waiting at most until ctx ends
// or a minute has passed.
func lock(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: still held by another slurmtune after a minute", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// writeAtomic replaces path with data (atomicfile), creating its directory.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o644)
}
