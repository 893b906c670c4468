package cmdline

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/slurm"
)

// SqueueFormat is the --Format slurmtune asks squeue for: job id, state,
// reason, node list, elapsed, start, restart count, exit code, job name and
// comment (last, so it may hold the separator). Size 0 means unpadded.
const SqueueFormat = "JobID:0|,State:0|,Reason:0|,NodeList:0|,TimeUsed:0|,StartTime:0|,RestartCnt:0|,exit_code:0|,Name:0|,Comment:0"

// SqueueArrayFormat is SqueueFormat for array tasks: with squeue --array,
// JobArrayID is ARRAY_TASK for each task (a plain job's own id otherwise).
const SqueueArrayFormat = "JobArrayID:0|,State:0|,Reason:0|,NodeList:0|,TimeUsed:0|,StartTime:0|,RestartCnt:0|,exit_code:0|,Name:0|,Comment:0"

// SacctArrayFormat is SacctFormat for array tasks: JobID is ARRAY_TASK
// where JobIDRaw is the task's own job id.
const SacctArrayFormat = "JobID,State,ExitCode,Reason,NodeList,ElapsedRaw,Start,End,JobName,Comment"

// SacctFormat is the --format slurmtune asks sacct for (with --parsable2).
const SacctFormat = "JobIDRaw,State,ExitCode,Reason,NodeList,ElapsedRaw,Start,End,JobName,Comment"

// ParseSbatchParsable reads "ID" or "ID;CLUSTER" as sbatch --parsable prints it.
func ParseSbatchParsable(out []byte) (string, error) {
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if _, err := strconv.ParseUint(s, 10, 64); err != nil {
		return "", fmt.Errorf("unexpected sbatch output %q", truncate(string(out), 80))
	}
	return s, nil
}

// ParseSqueue parses squeue --noheader --format=SqueueFormat output.
func ParseSqueue(out []byte) ([]slurm.Job, error) {
	var jobs []slurm.Job
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", 10)
		if len(f) != 10 {
			return nil, fmt.Errorf("squeue output line %d: want 10 fields, got %d", n, len(f))
		}
		j := slurm.Job{
			ID:      strings.TrimSpace(f[0]),
			State:   slurm.ParseState(f[1]),
			Reason:  cleanReason(f[2]),
			Nodes:   cleanNodes(f[3]),
			Name:    f[8],
			Comment: cleanNull(f[9]),
			Source:  "squeue",
		}
		if j.ID == "" {
			return nil, fmt.Errorf("squeue output line %d: empty job id", n)
		}
		if d, err := ParseDuration(f[4]); err == nil {
			j.Elapsed = d
		}
		j.Start = parseTime(f[5])
		j.Restarts, _ = strconv.Atoi(strings.TrimSpace(f[6]))
		if j.State.Terminal() {
			j.ExitCode, j.Signal = parseSqueueExitCode(f[7])
		}
		jobs = append(jobs, j)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read squeue output: %w", err)
	}
	return jobs, nil
}

// ParseSacct parses sacct --noheader --parsable2 --duplicates
// --format=SacctFormat output. A requeued job appears once per start; the
// last record is the current one and the number of earlier records is its
// restart count.
func ParseSacct(out []byte) ([]slurm.Job, error) {
	byID := map[string]int{}
	var jobs []slurm.Job
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", 10)
		if len(f) != 10 {
			return nil, fmt.Errorf("sacct output line %d: want 10 fields, got %d", n, len(f))
		}
		id := strings.TrimSpace(f[0])
		if id == "" || strings.ContainsAny(id, ".+") {
			continue // steps and het components are not tracked
		}
		code, sig := parseExitCode(f[2])
		j := slurm.Job{
			ID:       id,
			State:    slurm.ParseState(f[1]),
			ExitCode: code,
			Signal:   sig,
			Reason:   cleanReason(f[3]),
			Nodes:    cleanNodes(f[4]),
			Start:    parseTime(f[6]),
			End:      parseTime(f[7]),
			Name:     f[8],
			Comment:  cleanNull(f[9]),
			Source:   "sacct",
		}
		if s, err := strconv.ParseInt(strings.TrimSpace(f[5]), 10, 64); err == nil {
			j.Elapsed = time.Duration(s) * time.Second
		}
		if i, ok := byID[id]; ok {
			j.Restarts = jobs[i].Restarts + 1
			jobs[i] = j
			continue
		}
		byID[id] = len(jobs)
		jobs = append(jobs, j)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read sacct output: %w", err)
	}
	return jobs, nil
}

// ParseScontrolJobs parses scontrol --oneliner show job output.
func ParseScontrolJobs(out []byte) ([]slurm.Job, error) {
	var jobs []slurm.Job
	for n, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "No jobs in the system") {
			continue
		}
		kv := ParseKeyValues(line)
		id, ok := kv["JobId"]
		if !ok {
			return nil, fmt.Errorf("scontrol output line %d: no JobId", n+1)
		}
		code, sig := parseExitCode(kv["ExitCode"])
		j := slurm.Job{
			ID:       id,
			Name:     kv["JobName"],
			State:    slurm.ParseState(kv["JobState"]),
			Reason:   cleanReason(kv["Reason"]),
			ExitCode: code,
			Signal:   sig,
			Nodes:    cleanNodes(kv["NodeList"]),
			Comment:  cleanNull(kv["Comment"]),
			Start:    parseTime(kv["StartTime"]),
			Source:   "scontrol",
		}
		if j.State.Terminal() {
			// A live job's EndTime is only when its time limit would end it.
			j.End = parseTime(kv["EndTime"])
		}
		j.Restarts, _ = strconv.Atoi(kv["Restarts"])
		if d, err := ParseDuration(kv["RunTime"]); err == nil {
			j.Elapsed = d
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// ParsePartitions parses scontrol --oneliner show partition output.
func ParsePartitions(out []byte) ([]slurm.Partition, error) {
	var parts []slurm.Partition
	for n, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		kv := ParseKeyValues(line)
		name, ok := kv["PartitionName"]
		if !ok {
			return nil, fmt.Errorf("scontrol partition line %d: no PartitionName", n+1)
		}
		p := slurm.Partition{Name: name, State: kv["State"], Default: kv["Default"] == "YES"}
		p.TotalNodes, _ = strconv.Atoi(kv["TotalNodes"])
		if mt := kv["MaxTime"]; mt != "" && mt != "UNLIMITED" && mt != "INFINITE" {
			d, err := ParseDuration(mt)
			if err != nil {
				return nil, fmt.Errorf("partition %s: MaxTime: %w", name, err)
			}
			p.MaxTime = d
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// ParseKeyValues splits scontrol's "Key=Value Key=Value" lines. A token
// without '=' belongs to the value before it (values may hold spaces).
func ParseKeyValues(line string) map[string]string {
	kv := map[string]string{}
	last := ""
	for _, tok := range strings.Fields(line) {
		i := strings.IndexByte(tok, '=')
		if i <= 0 || !isKey(tok[:i]) {
			if last != "" {
				kv[last] += " " + tok
			}
			continue
		}
		last = tok[:i]
		kv[last] = tok[i+1:]
	}
	return kv
}

func isKey(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == ':', c == '_', c == '/':
		default:
			return false
		}
	}
	return s[0] >= 'A' && s[0] <= 'Z'
}

// ParseDuration reads Slurm's [DD-[HH:]]MM:SS / HH:MM:SS / MM duration forms.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "INVALID" || s == "N/A" {
		return 0, fmt.Errorf("no duration in %q", s)
	}
	var days int
	hasDays := false
	if i := strings.IndexByte(s, '-'); i >= 0 {
		d, err := strconv.Atoi(s[:i])
		if err != nil || d < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		days, hasDays = d, true
		s = s[i+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	nums := make([]int, len(parts))
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		nums[i] = v
	}
	var h, m, sec int
	switch {
	case hasDays && len(nums) == 1:
		h = nums[0]
	case hasDays && len(nums) == 2:
		h, m = nums[0], nums[1]
	case len(nums) == 3:
		h, m, sec = nums[0], nums[1], nums[2]
	case len(nums) == 2:
		m, sec = nums[0], nums[1]
	default:
		m = nums[0]
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour +
		time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, nil
}

// parseSqueueExitCode reads squeue's exit_code: Slurm 22.05 prints the raw
// wait status (768 is exit code 3; 9 is killed by signal 9); "CODE:SIGNAL"
// is read as sacct prints it.
func parseSqueueExitCode(s string) (code, sig int) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, ":") {
		return parseExitCode(s)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, 0
	}
	return v >> 8 & 0xff, v & 0x7f
}

func parseExitCode(s string) (code, sig int) {
	s = strings.TrimSpace(s)
	c, g, _ := strings.Cut(s, ":")
	code, _ = strconv.Atoi(c)
	sig, _ = strconv.Atoi(g)
	return code, sig
}

func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	switch s {
	case "", "Unknown", "None", "N/A":
		return time.Time{}
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
	if err != nil {
		return time.Time{}
	}
	return t
}

func cleanReason(s string) string {
	s = strings.TrimSpace(s)
	if s == "None" || s == "(null)" {
		return ""
	}
	return s
}

func cleanNodes(s string) string {
	s = strings.TrimSpace(s)
	if s == "None assigned" || s == "(null)" {
		return ""
	}
	return s
}

func cleanNull(s string) string {
	if s == "(null)" {
		return ""
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ParseMaxArraySize reads MaxArraySize from scontrol show config output.
func ParseMaxArraySize(out []byte) (int, error) {
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != "MaxArraySize" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("scontrol show config: MaxArraySize %q is not a number", strings.TrimSpace(v))
		}
		return n, nil
	}
	return 0, fmt.Errorf("scontrol show config: no MaxArraySize line")
}
