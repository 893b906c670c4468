package nvml

import (
	"cmp"
	"slices"
	"strconv"
	"time"
)

// jobAccounting integrates per-device telemetry into compact per-job
// aggregates: busy GPU-seconds, energy and peak memory. A device shared by n
// jobs contributes 1/n of its busy time and energy to each. Jobs not seen
// for the retention period are forgotten, bounding the series count.
type jobAccounting struct {
	retention time.Duration
	maxGap    time.Duration // longer gaps between polls are not integrated
	totals    map[string]*jobTotals
	prev      map[string]devicePrev
}

type jobTotals struct {
	jobStats
	lastSeen time.Time
}

type devicePrev struct {
	t        time.Time
	energyMJ optional[uint64]
}

func newJobAccounting(retention time.Duration) *jobAccounting {
	return &jobAccounting{
		retention: retention,
		maxGap:    30 * time.Second,
		totals:    make(map[string]*jobTotals),
		prev:      make(map[string]devicePrev),
	}
}

// update folds one poll's devices into the totals and returns the current
// per-job stats sorted by job id.
func (a *jobAccounting) update(now time.Time, devs []deviceStats) []jobStats {
	type pidKey struct {
		gpu int
		pid uint32
	}
	mem := make(map[string]uint64)
	counted := make(map[pidKey]struct{})
	for _, d := range devs {
		key := strconv.Itoa(d.Index) + "/" + d.MIG
		prev, hadPrev := a.prev[key]
		if d.Lost {
			delete(a.prev, key)
			continue
		}
		a.prev[key] = devicePrev{t: now, energyMJ: d.EnergyMJ}
		for _, j := range d.Jobs {
			t := a.totals[j]
			if t == nil {
				t = &jobTotals{jobStats: jobStats{Job: j}}
				a.totals[j] = t
			}
			t.lastSeen = now
		}
		// Memory: each (GPU, pid) once, even when it shows up on both a
		// MIG-enabled GPU and its MIG device.
		for _, pr := range d.Procs {
			k := pidKey{d.Index, pr.PID}
			if _, dup := counted[k]; dup || pr.Job == "" {
				continue
			}
			counted[k] = struct{}{}
			mem[pr.Job] += pr.UsedMemory
		}
		if d.OwnJob && d.MIG == "" && d.MemUsed.OK {
			mem[d.Jobs[0]] += d.MemUsed.V
		}
		if len(d.Jobs) == 0 || !hadPrev {
			continue
		}
		dt := now.Sub(prev.t)
		if dt <= 0 || dt > a.maxGap {
			continue
		}
		share := 1 / float64(len(d.Jobs))
		var busy, energy float64
		if d.UtilGPU.OK {
			busy = float64(d.UtilGPU.V) / 100 * dt.Seconds()
		}
		if d.MIG == "" {
			switch {
			case d.EnergyMJ.OK && prev.energyMJ.OK && d.EnergyMJ.V >= prev.energyMJ.V:
				energy = float64(d.EnergyMJ.V-prev.energyMJ.V) / 1000
			case d.PowerMW.OK:
				energy = float64(d.PowerMW.V) / 1000 * dt.Seconds()
			}
		}
		for _, j := range d.Jobs {
			t := a.totals[j]
			t.BusySeconds += busy * share
			t.EnergyJoules += energy * share
		}
	}
	for j, m := range mem {
		if t := a.totals[j]; t != nil && m > t.MemoryPeakBytes {
			t.MemoryPeakBytes = m
		}
	}
	out := make([]jobStats, 0, len(a.totals))
	for j, t := range a.totals {
		if now.Sub(t.lastSeen) > a.retention {
			delete(a.totals, j)
			continue
		}
		out = append(out, t.jobStats)
	}
	slices.SortFunc(out, func(x, y jobStats) int { return cmp.Compare(x.Job, y.Job) })
	return out
}
