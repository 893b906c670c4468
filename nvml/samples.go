package nvml

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Sample is one line of the --samples JSON-lines file: one GPU (or MIG
// device) at one collection. Absent metrics (not supported, or a missing
// driver symbol) are omitted, never written as zero.
//
// A status line instead has NVML set and no GPU fields:
// {"time":...,"host":...,"nvml":"unavailable","error":"..."} when NVML could
// not be initialised, or "nvml":"no_devices" when it found no GPU.
type Sample struct {
	Time  time.Time `json:"time"`
	Host  string    `json:"host"`
	NVML  string    `json:"nvml,omitempty"`
	Error string    `json:"error,omitempty"`

	GPU   int    `json:"gpu"`
	UUID  string `json:"uuid,omitempty"`
	Model string `json:"model,omitempty"`
	MIG   string `json:"mig,omitempty"`
	Lost  bool   `json:"lost,omitempty"`

	UtilPct       *float64 `json:"util_pct,omitempty"`
	MemUtilPct    *float64 `json:"mem_util_pct,omitempty"`
	MemUsedBytes  *uint64  `json:"mem_used_bytes,omitempty"`
	MemTotalBytes *uint64  `json:"mem_total_bytes,omitempty"`
	PowerW        *float64 `json:"power_w,omitempty"`
	EnergyJ       *float64 `json:"energy_j,omitempty"`
	TempC         *float64 `json:"temp_c,omitempty"`
	SMClockMHz    *float64 `json:"sm_clock_mhz,omitempty"`
	// Throttle lists the active clock event reasons; [] when none is active,
	// absent when NVML cannot tell.
	Throttle []string `json:"throttle,omitempty"`
	XID      *uint64  `json:"xid,omitempty"` // XID events since the exporter started
	Job      string   `json:"job,omitempty"`
	PIDs     []uint32 `json:"pids,omitempty"`
}

// NVML status values of status lines.
const (
	NVMLUnavailable = "unavailable"
	NVMLNoDevices   = "no_devices"
)

// IsStatus reports whether s is a status line rather than GPU telemetry.
func (s Sample) IsStatus() bool { return s.NVML != "" }

// statusLine is what a status Sample marshals to: exactly these keys.
type statusLine struct {
	Time  time.Time `json:"time"`
	Host  string    `json:"host"`
	NVML  string    `json:"nvml"`
	Error string    `json:"error,omitempty"`
}

// samplesFromSnapshot converts a snapshot to sample lines.
func samplesFromSnapshot(host string, s *snapshot) []Sample {
	out := make([]Sample, 0, len(s.Devices))
	for i := range s.Devices {
		d := &s.Devices[i]
		smp := Sample{
			Time: s.Time.UTC(), Host: host, GPU: d.Index, UUID: d.UUID, Model: d.Model,
			MIG: d.MIG, Lost: d.Lost, Job: d.JobLabel,
		}
		if d.UtilGPU.OK {
			smp.UtilPct = ptr(float64(d.UtilGPU.V))
		}
		if d.UtilMem.OK {
			smp.MemUtilPct = ptr(float64(d.UtilMem.V))
		}
		if d.MemUsed.OK {
			smp.MemUsedBytes = ptr(d.MemUsed.V)
		}
		if d.MemTotal.OK {
			smp.MemTotalBytes = ptr(d.MemTotal.V)
		}
		if d.PowerMW.OK {
			smp.PowerW = ptr(float64(d.PowerMW.V) / 1000)
		}
		if d.EnergyMJ.OK {
			smp.EnergyJ = ptr(float64(d.EnergyMJ.V) / 1000)
		}
		if d.TempC.OK {
			smp.TempC = ptr(float64(d.TempC.V))
		}
		if d.SMClockMHz.OK {
			smp.SMClockMHz = ptr(float64(d.SMClockMHz.V))
		}
		if d.ClockReasons.OK {
			smp.Throttle = ClockReasonNames(d.ClockReasons.V)
			if smp.Throttle == nil {
				smp.Throttle = []string{}
			}
		}
		if d.XID.OK {
			smp.XID = ptr(d.XID.V)
		}
		for _, p := range d.Procs {
			smp.PIDs = append(smp.PIDs, p.PID)
		}
		out = append(out, smp)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// MarshalJSON writes status lines with only their own keys.
func (s Sample) MarshalJSON() ([]byte, error) {
	if s.IsStatus() {
		return json.Marshal(statusLine{Time: s.Time, Host: s.Host, NVML: s.NVML, Error: s.Error})
	}
	type plain Sample // no MarshalJSON: avoids recursion
	p := plain(s)
	if p.Throttle != nil && len(p.Throttle) == 0 {
		// omitempty would drop an empty list; keep "[]" to mean "none active".
		return json.Marshal(struct {
			plain
			Throttle []string `json:"throttle"`
		}{p, p.Throttle})
	}
	return json.Marshal(p)
}

// sampleWriter appends JSON lines to a file, buffered, flushed after every
// collection and on Close.
type sampleWriter struct {
	f   *os.File
	w   *bufio.Writer
	enc *json.Encoder
}

func openSampleWriter(path string) (*sampleWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open samples file: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	return &sampleWriter{f: f, w: w, enc: json.NewEncoder(w)}, nil
}

// Write appends the samples and flushes them to the file.
func (sw *sampleWriter) Write(samples []Sample) error {
	for i := range samples {
		if err := sw.enc.Encode(samples[i]); err != nil {
			return fmt.Errorf("write sample: %w", err)
		}
	}
	if err := sw.w.Flush(); err != nil {
		return fmt.Errorf("flush samples: %w", err)
	}
	return nil
}

// Close flushes, syncs and closes the file.
func (sw *sampleWriter) Close() error {
	return errors.Join(sw.w.Flush(), sw.f.Sync(), sw.f.Close())
}

// LoadSamples reads a JSON-lines samples file. Blank lines are skipped. A
// malformed last line (an exporter killed mid-write) is ignored; a malformed
// line followed by valid ones is an error.
func LoadSamples(r io.Reader) ([]Sample, error) {
	var (
		out     []Sample
		pending error
		lineNo  int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if pending != nil {
			return nil, pending
		}
		var s Sample
		if err := json.Unmarshal(line, &s); err != nil {
			pending = fmt.Errorf("samples line %d: %w", lineNo, err)
			continue
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	return out, nil
}
