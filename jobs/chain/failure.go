package chain

import (
	"context"
	"regexp"
	"strings"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// logTail is how much of a failed job's log is read for its error line.
const logTail = 16 << 10

var (
	// errorLineRe matches what a payload or slurmtune says when it fails:
	// "train_hf: error: ...", "slurmtune: FAILED: ...", a Python
	// exception's last line ("ValueError: ..."), "error: ..." anywhere.
	errorLineRe = regexp.MustCompile(`(?i)(\berror\b:|\bFAILED:|^[A-Za-z_.]*(Error|Exception): )`)
	// slurmNoiseRe are Slurm's own lines about a failed step: taken only
	// when the payload said nothing.
	slurmNoiseRe = regexp.MustCompile(`^(srun|slurmstepd|sbatch)(-[^:\s]*)?: `)
)

// FailureLine is the line a failed job's log says why with: the last line
// of the payload's own that reads like an error, else Slurm's last error
// line, else "". Long lines are cut to 300 bytes.
func FailureLine(log string) string {
	lines := strings.Split(log, "\n")
	fallback := ""
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || !errorLineRe.MatchString(l) {
			continue
		}
		if slurmNoiseRe.MatchString(l) {
			if fallback == "" {
				fallback = l
			}
			continue
		}
		return cut(l)
	}
	return cut(fallback)
}

func cut(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// failed reports whether a job ended in a way its log can explain.
func failed(j slurm.Job) bool {
	switch j.State {
	case slurm.StateFailed, slurm.StateTimeout, slurm.StateNodeFail, slurm.StateOutOfMemory:
		return true
	}
	return false
}

// recordFailure reads the end of a failed stage's log (where the transport
// can look into files) and records its error line. A log that cannot be
// read leaves Slurm's reason alone.
func (s *Service) recordFailure(ctx context.Context, t store.TrackedJob) {
	st, ok := s.FS.(Stater)
	if !ok {
		return
	}
	r, err := s.Store.GetRun(ctx, t.RunID)
	if err != nil {
		return
	}
	path := templates.LayoutOf(r.RunDir).StageLogPath(t.Stage)
	fi, err := st.Stat(ctx, path)
	if err != nil {
		return
	}
	off := max(fi.Size()-logTail, 0)
	b, err := s.FS.ReadAt(ctx, path, off, logTail)
	if err != nil {
		return
	}
	if msg := FailureLine(string(b)); msg != "" {
		if err := s.Store.SetStageError(ctx, t.RunID, t.Stage, t.JobID, msg); err != nil {
			s.Log.Warn("record the stage's error line", "run", t.RunID, "stage", t.Stage, "err", err)
		}
	}
}
