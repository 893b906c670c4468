package dataprep

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Benchmarks on generated chat JSONL. The size is DATAPREP_BENCH_MB
// (default 64) megabytes; input and outputs go to a temporary directory in
// DATAPREP_BENCH_DIR (default: the system's). scripts/bench/prep.sh runs
// them. MB/s is wall-clock throughput, MB/cpu-s is bytes per second of
// process CPU time (throughput per core).

var bench struct {
	once    sync.Once
	dir     string
	path    string
	size    int64
	records int
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func benchData(b *testing.B) (string, int64, int) {
	bench.once.Do(func() {
		mb := 64
		if v, err := strconv.Atoi(os.Getenv("DATAPREP_BENCH_MB")); err == nil && v > 0 {
			mb = v
		}
		bench.dir, bench.err = os.MkdirTemp(os.Getenv("DATAPREP_BENCH_DIR"), "dataprep-bench-")
		if bench.err != nil {
			return
		}
		bench.path = filepath.Join(bench.dir, "chat.jsonl")
		bench.size, bench.records, bench.err = generateChat(bench.path, int64(mb)<<20)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.path, bench.size, bench.records
}

// generateChat writes synthetic chat records until size bytes: a Zipf-ish
// vocabulary of pseudo-words, 1-3 turns, ~2% exact and ~2% near duplicates,
// some malformed lines, emails and profanity.
func generateChat(path string, size int64) (int64, int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewSource(42))
	vocab := make([]string, 20000)
	for i := range vocab {
		n := 2 + r.Intn(8)
		var sb strings.Builder
		for range n {
			sb.WriteByte(byte('a' + r.Intn(26)))
		}
		vocab[i] = sb.String()
	}
	zipf := rand.NewZipf(r, 1.1, 2, uint64(len(vocab)-1))
	sentence := func(n int) string {
		words := make([]string, n)
		for i := range words {
			words[i] = vocab[zipf.Uint64()]
		}
		if r.Intn(50) == 0 {
			words[r.Intn(n)] = "damn"
		}
		if r.Intn(100) == 0 {
			words[r.Intn(n)] = "someone" + strconv.Itoa(r.Intn(1000)) + "@example.com"
		}
		s := strings.Join(words, " ")
		return strings.ToUpper(s[:1]) + s[1:] + "."
	}
	var written int64
	var prev []string
	records := 0
	for written < size {
		var line string
		switch k := r.Intn(100); {
		case k < 2 && len(prev) > 0:
			line = prev[r.Intn(len(prev))]
		case k < 4 && len(prev) > 0:
			ws := strings.Split(prev[r.Intn(len(prev))], " ")
			ws[len(ws)/2] = "changed"
			line = strings.Join(ws, " ")
		case k < 5:
			line = `{"messages":[{"role":"user","content":"truncated`
		default:
			var msgs []map[string]string
			if r.Intn(3) == 0 {
				msgs = append(msgs, map[string]string{"role": "system", "content": "You are a helpful assistant."})
			}
			for range 1 + r.Intn(2) {
				msgs = append(msgs,
					map[string]string{"role": "user", "content": sentence(10 + r.Intn(30))},
					map[string]string{"role": "assistant", "content": sentence(40+r.Intn(80)) + " " + sentence(20+r.Intn(40))})
			}
			line = chatLineMsgs(msgs)
			if len(prev) < 1000 {
				prev = append(prev, line)
			} else {
				prev[r.Intn(len(prev))] = line
			}
		}
		n, err := w.WriteString(line + "\n")
		if err != nil {
			return 0, 0, err
		}
		written += int64(n)
		records++
	}
	return written, records, w.Flush()
}

func chatLineMsgs(msgs []map[string]string) string {
	var sb strings.Builder
	sb.WriteString(`{"messages":[`)
	for i, m := range msgs {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"role":%s,"content":%s}`, appendJSONString(nil, []byte(m["role"])), appendJSONString(nil, []byte(m["content"])))
	}
	sb.WriteString(`]}`)
	return sb.String()
}

// peakSampler tracks the peak live heap (as of the last GC) while running.
type peakSampler struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

func startPeakSampler() *peakSampler {
	s := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			s.peak = max(s.peak, sample[0].Value.Uint64())
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *peakSampler) finish() uint64 {
	close(s.stop)
	<-s.done
	return s.peak
}

func BenchmarkPrep(b *testing.B) {
	for _, near := range []bool{false, true} {
		for _, workers := range []int{1, 2} {
			name := fmt.Sprintf("exact/workers=%d", workers)
			if near {
				name = fmt.Sprintf("near/workers=%d", workers)
			}
			b.Run(name, func(b *testing.B) {
				path, size, records := benchData(b)
				out := filepath.Join(bench.dir, "out")
				o := DefaultOptions()
				o.Inputs = []string{path}
				o.OutDir = out
				o.Workers = workers
				o.NearDup.Enabled = near
				o.Checks = CheckOptions{MaxRemovedRatio: -1, MaxMalformedRatio: -1}
				runtime.GC()
				resetPeakRSS()
				b.SetBytes(size)
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				sampler := startPeakSampler()
				var rep *Report
				for range b.N {
					var err error
					if rep, err = Run(context.Background(), o); err != nil {
						b.Fatal(err)
					}
				}
				peak := sampler.finish()
				cpu := cpuTime() - cpu0
				b.StopTimer()
				if cpu > 0 {
					b.ReportMetric(float64(size)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-live-heap-MiB")
				if rss := peakRSS(); rss > 0 {
					b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
				}
				b.ReportMetric(float64(records), "records")
				if rep.Kept == 0 || rep.Removed.ExactDuplicate == 0 || near && rep.Removed.NearDuplicate == 0 {
					b.Fatalf("unexpected report %+v", rep.Removed)
				}
			})
		}
	}
}
