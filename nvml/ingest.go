package nvml

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
)

// Reading a run's samples files: what was appended since the last load,
// by byte offset, each line attributed to a stage.

// loadSamples reads what was appended to the run's samples files since the
// last load and saves it with the new offsets. Once the run has ended and
// settled, and its files were read to the end, they are not read again.
func loadSamples(ctx context.Context, st *store.Store, cl Cluster, r *store.Run, g *State) (*State, error) {
	if samplesRead(r, g) {
		return g, nil
	}
	dir := filepath.Join(r.RunDir, SamplesDirName)
	files, err := listSampleFiles(ctx, cl, dir)
	if err != nil {
		return g, err
	}
	jobs, err := st.RunJobs(ctx, r.ID)
	if err != nil {
		return g, err
	}
	attr := newAttributor(r, jobs)
	complete := true
	for _, path := range files {
		done, err := readSamplesFile(ctx, cl.Files(), path, g, attr)
		if err != nil {
			return g, err
		}
		complete = complete && done
	}
	saved, err := g.Save(ctx, st)
	if err != nil {
		return g, err
	}
	if !saved {
		// Another slurmtune read the same lines first: take its result.
		return LoadState(ctx, st, r.ID)
	}
	if complete && r.Ended() && !r.EndedAt.IsZero() && time.Since(r.EndedAt) > Telemetrytle {
		if err := st.MarkGPUDone(ctx, r.ID, r.EndedAt); err != nil {
			return g, err
		}
		g.DoneEndedAt = r.EndedAt.UnixMilli()
	}
	return g, nil
}

// samplesRead reports whether there is nothing to read for the run: no job
// was ever submitted, or its files were read to the end after it ended.
func samplesRead(r *store.Run, g *State) bool {
	if !r.EndedAt.IsZero() && g.DoneEndedAt == r.EndedAt.UnixMilli() {
		return true
	}
	for _, s := range r.Stages {
		if s.JobID != "" {
			return false
		}
	}
	return true
}

// listSampleFiles lists dir/samples-*.jsonl on the cluster.
func listSampleFiles(ctx context.Context, cl Cluster, dir string) ([]string, error) {
	names, err := cl.ListFiles(ctx, dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "samples-") && strings.HasSuffix(n, ".jsonl") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// readSamplesFile reads complete lines of path from its recorded offset on
// into g. done reports whether it reached the end of the file (rather than
// the read budget).
func readSamplesFile(ctx context.Context, fsys slurm.FileSystem, path string, g *State, attr *attributor) (done bool, err error) {
	bad := 0
	off, skipped, done, err := ReadNewLines(ctx, fsys, path, g.Offset(path), gpuReadBudget, func(_ int64, line []byte) {
		var s Sample
		if err := json.Unmarshal(line, &s); err != nil {
			bad++
			return
		}
		g.Add(attr.stage(s), s)
	})
	if err != nil {
		return false, err
	}
	g.Advance(path, off, bad+skipped)
	return done, nil
}

// ReadNewLines calls line for every complete, non-blank line of path from
// offset off on (with the line's own offset), reading through the cluster's
// filesystem in chunks, at most about budget bytes. It returns the offset
// after the last complete line, how many lines longer than maxSampleLine it
// skipped, and whether it reached the end of the file; a missing file is at
// its end.
func ReadNewLines(ctx context.Context, fsys slurm.FileSystem, path string, off, budget int64, line func(off int64, b []byte)) (next int64, skipped int, done bool, err error) {
	start := off
	var pending []byte
	for off-start < budget {
		b, err := fsys.ReadAt(ctx, path, off+int64(len(pending)), gpuChunk)
		if errors.Is(err, fs.ErrNotExist) {
			return off, skipped, true, nil
		}
		if err != nil {
			return off, skipped, false, fmt.Errorf("read %s: %w", path, err)
		}
		if len(b) == 0 {
			break
		}
		pending = append(pending, b...)
		last := bytes.LastIndexByte(pending, '\n')
		if last < 0 {
			if len(pending) > maxSampleLine {
				off += int64(len(pending)) // an absurd line: skip it
				pending, skipped = nil, skipped+1
			}
			continue
		}
		pos := off
		for l := range bytes.SplitSeq(pending[:last], []byte{'\n'}) {
			if len(bytes.TrimSpace(l)) > 0 {
				line(pos, l)
			}
			pos += int64(len(l)) + 1
		}
		off += int64(last + 1)
		pending = slices.Clone(pending[last+1:])
	}
	return off, skipped, off-start < budget, nil
}

// attributor finds the stage a sample line belongs to.
type attributor struct {
	jobStage map[string]string
	stages   []store.Stage
}

func newAttributor(r *store.Run, jobs []store.JobRecord) *attributor {
	a := &attributor{jobStage: map[string]string{}, stages: r.Stages}
	for _, j := range jobs {
		a.jobStage[j.JobID] = j.Stage
	}
	return a
}

// stage is the stage of the sample's Slurm job; else the stage that was
// running at the sample's time (the latest started); else the run's only
// stage, or its train stage.
func (a *attributor) stage(s Sample) string {
	for j := range strings.SplitSeq(s.Job, ",") {
		if st, ok := a.jobStage[j]; ok {
			return st
		}
	}
	best, bestStart := "", time.Time{}
	for _, st := range a.stages {
		if st.StartedAt.IsZero() || st.StartedAt.After(s.Time.Add(5*time.Second)) {
			continue
		}
		if !st.EndedAt.IsZero() && s.Time.After(st.EndedAt.Add(Telemetrytle)) {
			continue
		}
		if st.StartedAt.After(bestStart) {
			best, bestStart = st.Name, st.StartedAt
		}
	}
	if best != "" {
		return best
	}
	if len(a.stages) == 1 {
		return a.stages[0].Name
	}
	for _, st := range a.stages {
		if st.Name == "train" {
			return st.Name
		}
	}
	return gpuUnattributed
}
