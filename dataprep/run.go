package dataprep

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Run reads, checks, de-duplicates, filters and splits the inputs and writes
// the outputs into opts.OutDir (see the package documentation).
//
// It returns the report and nil on success. When a data quality threshold
// fails it writes every output and returns the report and a
// *CheckFailedError. Any other error (bad options, unreadable input, a line
// longer than MaxLineBytes, a failing classifier, a cancelled ctx) returns
// a nil report and leaves no new output files.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	files, err := expandInputs(opts.Inputs)
	if err != nil {
		return nil, fmt.Errorf("dataprep: %w", err)
	}
	p := &pipeline{opts: opts, files: files}
	if opts.Toxicity.Enabled {
		if p.tox, err = NewToxicityScorer(opts.Toxicity); err != nil {
			return nil, fmt.Errorf("dataprep: %w", err)
		}
	}
	if opts.NearDup.Enabled {
		p.mh = newMinHasher(opts.NearDup)
	}
	out, err := createOutputs(opts.OutDir)
	if err != nil {
		return nil, fmt.Errorf("dataprep: %w", err)
	}
	defer out.abort() // no-op once committed
	p.out = out

	if err := p.run(ctx); err != nil {
		return nil, fmt.Errorf("dataprep: %w", err)
	}
	rep, err := p.finishReport()
	if err != nil {
		return nil, fmt.Errorf("dataprep: %w", err)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("dataprep: encode report: %w", err)
	}
	if _, err := out.report.w.Write(append(data, '\n')); err != nil {
		return nil, fmt.Errorf("dataprep: write %s: %w", ReportFile, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dataprep: %w", err)
	}
	if err := out.commit(); err != nil {
		return nil, fmt.Errorf("dataprep: %w", err)
	}
	if !rep.Passed {
		var failed []CheckResult
		for _, c := range rep.Checks {
			if !c.Passed {
				failed = append(failed, c)
			}
		}
		return rep, &CheckFailedError{Failed: failed}
	}
	return rep, nil
}

// expandInputs resolves files, directories and globs into an ordered list
// of distinct files.
func expandInputs(inputs []string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	add := func(path string) {
		key := filepath.Clean(path)
		if !seen[key] {
			seen[key] = true
			files = append(files, path)
		}
	}
	for _, in := range inputs {
		if strings.ContainsAny(in, "*?[") {
			matches, err := filepath.Glob(in)
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", in, err)
			}
			sort.Strings(matches)
			n := 0
			for _, m := range matches {
				if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
					add(m)
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("input %q: no files match", in)
			}
			continue
		}
		st, err := os.Stat(in)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", in, err)
		}
		if !st.IsDir() {
			// A FIFO or device would block the read: regular files only.
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("input %s: not a regular file (%s)", in, st.Mode().Type())
			}
			add(in)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(in, "*.jsonl"))
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", in, err)
		}
		sort.Strings(matches)
		if len(matches) == 0 {
			return nil, fmt.Errorf("input %q: no *.jsonl files in directory", in)
		}
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
				add(m)
			}
		}
	}
	return files, nil
}

const (
	batchBytes    = 1 << 20
	batchMaxLines = 4096
	readBufSize   = 1 << 20
)

type lineRef struct {
	off, n int
	line   int    // 1-based line number in its file
	id     uint32 // global line ordinal across all inputs
}

// recResult is what a worker computes for one record.
type recResult struct {
	reason   reason // malformed, or the first of toxic/too_short/too_long/pii
	train    bool
	hasBands bool
	outAlt   bool // the output line is the redacted copy in batch.alt
	early    bool // rejected by the character limit before any other check
	kind     string
	detail   string
	exact    uint64
	outOff   int
	outLen   int
	pii      [numPIIKinds]int32
	chars    int
	words    int
	score    float64
	textOff  int // classifier text in the worker's buffer
	textLen  int
}

// batch is a run of lines of one file, processed by one worker.
type batch struct {
	file      int
	fileStart uint32 // global id of line 1 of the file
	fileLines int    // lines of the file read so far
	blank     int
	data      []byte
	lines     []lineRef
	recs      []recResult
	bands     []uint64
	alt       []byte
	err       error
	done      chan struct{}
}

type pipeline struct {
	opts  Options
	files []string
	tox   *ToxicityScorer
	mh    *minHasher
	out   *outputs

	work  chan *batch
	order chan *batch
	free  chan *batch

	// Sequencer state.
	rep        Report
	exact      *idTable
	lsh        *idTable
	fileStarts []uint32
	fileJSON   [][]byte
	qbuf       []byte
}

func (p *pipeline) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nb := 2*p.opts.Workers + 4
	p.work = make(chan *batch, nb)
	p.order = make(chan *batch, nb)
	p.free = make(chan *batch, nb)
	for range nb {
		p.free <- &batch{data: make([]byte, 0, batchBytes+batchBytes/8)}
	}
	p.exact = newIDTable(1 << 16)
	if p.mh != nil {
		p.lsh = newIDTable(1 << 18)
	}
	p.rep = Report{
		Format:         p.opts.Format,
		Inputs:         make([]InputStats, len(p.files)),
		MalformedKinds: map[string]int{},
		PII:            PIIStats{Mode: p.opts.PII.Mode},
		Findings:       []Finding{},
	}
	for i, f := range p.files {
		p.rep.Inputs[i].Path = f
		p.fileJSON = append(p.fileJSON, appendJSONString(nil, []byte(f)))
	}
	p.fileStarts = make([]uint32, len(p.files))
	for i := range p.fileStarts {
		p.fileStarts[i] = math.MaxUint32 // not seen yet
	}

	var wg sync.WaitGroup
	wg.Go(func() { p.read(ctx) })
	for range p.opts.Workers {
		wg.Go(func() {
			w := newWorker(p)
			for b := range p.work {
				if ctx.Err() == nil {
					w.process(ctx, b)
				}
				close(b.done)
			}
		})
	}
	err := p.sequence(ctx)
	cancel()
	wg.Wait()
	return err
}

// getBatch returns an empty batch, waiting for one to be recycled.
func (p *pipeline) getBatch(ctx context.Context) (*batch, error) {
	select {
	case b := <-p.free:
		if cap(b.data) > 4*batchBytes {
			b.data = nil // drop the buffer of a huge line
		}
		*b = batch{data: b.data[:0], lines: b.lines[:0], recs: b.recs[:0], bands: b.bands[:0], alt: b.alt[:0], done: make(chan struct{})}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipeline) send(ctx context.Context, b *batch) error {
	select {
	case p.order <- b:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case p.work <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// read is the reader goroutine: it cuts the inputs into batches. A read
// error is delivered in order, as a batch with err set.
func (p *pipeline) read(ctx context.Context) {
	defer close(p.work)
	defer close(p.order)
	var id uint64
	br := bufio.NewReaderSize(nil, readBufSize)
	var long []byte
	for fi, path := range p.files {
		err := p.readFile(ctx, fi, path, br, &id, &long)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		b, gerr := p.getBatch(ctx)
		if gerr != nil {
			return
		}
		b.err = err
		close(b.done)
		select {
		case p.order <- b:
		case <-ctx.Done():
		}
		return
	}
}

func (p *pipeline) readFile(ctx context.Context, fi int, path string, br *bufio.Reader, id *uint64, long *[]byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	br.Reset(f)
	max := p.opts.MaxLineBytes
	b, err := p.getBatch(ctx)
	if err != nil {
		return err
	}
	b.file, b.fileStart = fi, uint32(*id)
	var size int64 // of the file; bounds the buffer of a long line
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	var pos int64 // bytes read so far
	lineNo := 0
	for {
		line, rerr := br.ReadSlice('\n')
		pos += int64(len(line))
		isLong := rerr == bufio.ErrBufferFull
		if rerr == bufio.ErrBufferFull {
			// Sized once for the rest of the line (at most what is left of
			// the file), so that growing it never holds the line twice.
			want := max + 2
			if left := size - pos + int64(len(line)); left > 0 && left < int64(want) {
				want = int(left)
			}
			buf := *long
			if cap(buf) < want {
				buf = make([]byte, 0, want)
			}
			buf = append(buf[:0], line...)
			for rerr == bufio.ErrBufferFull {
				if len(buf) > max+2 {
					return fmt.Errorf("read %s:%d: line longer than the maximum of %d bytes", path, lineNo+1, max)
				}
				line, rerr = br.ReadSlice('\n')
				pos += int64(len(line))
				buf = append(buf, line...)
			}
			*long = buf
			line = buf
		}
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("read %s: %w", path, rerr)
		}
		if len(line) == 0 && rerr == io.EOF {
			break
		}
		lineNo++
		if *id >= math.MaxUint32 {
			return fmt.Errorf("read %s:%d: more than %d lines in all inputs", path, lineNo, uint32(math.MaxUint32))
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) > max {
			return fmt.Errorf("read %s:%d: line longer than the maximum of %d bytes", path, lineNo, max)
		}
		switch {
		case isBlankLine(line):
			b.blank++
		case isLong:
			// A long line is its own batch, its buffer handed over rather
			// than copied: it is never held twice.
			if len(b.lines) > 0 || b.blank > 0 {
				if err := p.send(ctx, b); err != nil {
					return err
				}
				if b, err = p.getBatch(ctx); err != nil {
					return err
				}
				b.file, b.fileStart, b.fileLines = fi, uint32(*id)-uint32(lineNo-1), lineNo-1
			}
			b.data = line
			*long = nil
			b.lines = append(b.lines, lineRef{off: 0, n: len(line), line: lineNo, id: uint32(*id)})
		default:
			b.lines = append(b.lines, lineRef{off: len(b.data), n: len(line), line: lineNo, id: uint32(*id)})
			b.data = append(b.data, line...)
		}
		*id++
		b.fileLines = lineNo
		if len(b.data) >= batchBytes || len(b.lines) >= batchMaxLines {
			if err := p.send(ctx, b); err != nil {
				return err
			}
			if b, err = p.getBatch(ctx); err != nil {
				return err
			}
			b.file, b.fileStart, b.fileLines = fi, uint32(*id)-uint32(lineNo), lineNo
		}
		if rerr == io.EOF {
			break
		}
	}
	return p.send(ctx, b)
}

func isBlankLine(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// worker holds the per-goroutine scratch space.
type worker struct {
	p        *pipeline
	parser   recParser
	ts       textScan
	shingles []uint64
	sig      []uint64
	spans    []piiSpan
	fieldBuf []byte
	texts    []byte
	textList [][]byte
	scores   []float64
}

func newWorker(p *pipeline) *worker {
	w := &worker{p: p}
	w.parser.format = p.opts.Format
	if p.tox != nil {
		w.ts.lex = p.tox.lex
	}
	if p.mh != nil {
		w.sig = make([]uint64, len(p.mh.a))
	}
	return w
}

func (w *worker) process(ctx context.Context, b *batch) {
	p := w.p
	o := &p.opts
	n := len(b.lines)
	b.recs = slices.Grow(b.recs[:0], n)[:n]
	nb := 0
	if p.mh != nil {
		nb = p.mh.bands
		b.bands = slices.Grow(b.bands[:0], n*nb)[:n*nb]
	}
	trainFrac := o.Split.Train / (o.Split.Train + o.Split.Validation)
	splitSeed := mix64(o.Split.Seed ^ 0x5bd1e9955bd1e995)
	var lex *lexicon
	if p.tox != nil {
		lex = p.tox.lex
	}
	classify := p.tox != nil && len(p.tox.classifier) > 0
	w.texts = w.texts[:0]
	for i := range b.lines {
		ln := &b.lines[i]
		r := &b.recs[i]
		*r = recResult{outOff: ln.off, outLen: ln.n}
		line := b.data[ln.off : ln.off+ln.n]
		w.parser.parse(line)
		if w.parser.kind != "" {
			r.reason = reasonMalformed
			r.kind, r.detail = w.parser.kind, w.parser.detail
			continue
		}
		fields := w.parser.fields
		// The character limit comes first: it costs one pass over the
		// text, and a record over it gets no other (costly) check, nor a
		// place in de-duplication.
		if max := o.Length.MaxChars; max > 0 {
			chars := 0
			for _, f := range fields {
				chars += utf8.RuneCount(f.val)
			}
			if chars > max {
				r.chars, r.early = chars, true
				r.reason, r.detail = reasonTooLong, fmt.Sprintf("%d characters > maximum %d", chars, max)
				continue
			}
		}
		ts := &w.ts
		ts.reset()
		for _, f := range fields {
			ts.addField(f.tag, f.val)
		}
		r.chars, r.words = ts.chars, ts.words
		norm := ts.norm
		r.exact = xxh64(norm, 0)
		r.train = unitFloat(mix64(r.exact^splitSeed)) < trainFrac
		if lex != nil {
			r.score = lex.score(ts.matches)
			if r.score >= p.tox.threshold {
				r.reason = reasonToxic
				r.detail = fmt.Sprintf("score %.2f >= %.2f; matched: %s", r.score, p.tox.threshold, lex.describe(ts.matches))
			}
		}
		if p.mh != nil {
			w.shingles = p.mh.shingles(norm, ts.toks, w.shingles[:0])
			if len(w.shingles) > 0 {
				p.mh.signature(w.shingles, w.sig)
				p.mh.bandHashes(w.sig, b.bands[i*nb:(i+1)*nb])
				r.hasBands = true
			}
		}
		if o.PII.Mode != PIIOff {
			w.pii(b, r, line, fields)
		}
		if classify {
			r.textOff = len(w.texts)
			for k, f := range fields {
				if k > 0 {
					w.texts = append(w.texts, '\n')
				}
				w.texts = append(w.texts, f.val...)
			}
			r.textLen = len(w.texts) - r.textOff
		}
	}
	if classify {
		w.textList = w.textList[:0]
		// Records already malformed or toxic need no classifier score.
		for i := range b.recs {
			if r := &b.recs[i]; r.reason == reasonNone {
				w.textList = append(w.textList, w.texts[r.textOff:r.textOff+r.textLen])
			}
		}
		w.scores = slices.Grow(w.scores[:0], len(w.textList))[:len(w.textList)]
		if err := p.tox.classify(ctx, w.textList, w.scores); err != nil {
			b.err = err
			return
		}
		k := 0
		for i := range b.recs {
			r := &b.recs[i]
			if r.reason != reasonNone {
				continue
			}
			if s := w.scores[k]; s > r.score {
				r.score = s
				if s >= p.tox.threshold {
					r.reason = reasonToxic
					r.detail = fmt.Sprintf("classifier score %.2f >= %.2f", s, p.tox.threshold)
				}
			}
			k++
		}
	}
	for i := range b.recs {
		r := &b.recs[i]
		if r.reason == reasonMalformed || r.reason == reasonToxic || r.early {
			continue
		}
		l := o.Length
		switch {
		case l.MinChars > 0 && r.chars < l.MinChars:
			r.reason, r.detail = reasonTooShort, fmt.Sprintf("%d characters < minimum %d", r.chars, l.MinChars)
		case l.MinWords > 0 && r.words < l.MinWords:
			r.reason, r.detail = reasonTooShort, fmt.Sprintf("%d words < minimum %d", r.words, l.MinWords)
		case l.MaxChars > 0 && r.chars > l.MaxChars:
			r.reason, r.detail = reasonTooLong, fmt.Sprintf("%d characters > maximum %d", r.chars, l.MaxChars)
		case l.MaxWords > 0 && r.words > l.MaxWords:
			r.reason, r.detail = reasonTooLong, fmt.Sprintf("%d words > maximum %d", r.words, l.MaxWords)
		case o.PII.Mode == PIIDrop && r.pii != [numPIIKinds]int32{}:
			r.reason, r.detail = reasonPII, piiDetail(r.pii)
		}
	}
}

// pii scans the text fields of a record, counts matches and, in redact
// mode, builds the redacted line in b.alt.
func (w *worker) pii(b *batch, r *recResult, line []byte, fields []recField) {
	redact := w.p.opts.PII.Mode == PIIRedact
	altStart := len(b.alt)
	prev := 0
	for _, f := range fields {
		w.spans = scanPII(f.val, w.spans[:0])
		if len(w.spans) == 0 {
			continue
		}
		for _, sp := range w.spans {
			r.pii[sp.kind]++
		}
		if redact {
			b.alt = append(b.alt, line[prev:f.start]...)
			w.fieldBuf = appendRedacted(w.fieldBuf[:0], f.val, w.spans)
			b.alt = appendJSONString(b.alt, w.fieldBuf)
			prev = f.end
		}
	}
	if redact && prev > 0 {
		b.alt = append(b.alt, line[prev:]...)
		r.outAlt, r.outOff, r.outLen = true, altStart, len(b.alt)-altStart
	}
}

func piiDetail(counts [numPIIKinds]int32) string {
	var parts []string
	for k, c := range counts {
		if c > 0 {
			parts = append(parts, fmt.Sprintf("%s x%d", piiNames[k], c))
		}
	}
	return "contains " + strings.Join(parts, ", ")
}

func piiKinds(counts [numPIIKinds]int32) string {
	var parts []string
	for k, c := range counts {
		if c > 0 {
			parts = append(parts, piiNames[k])
		}
	}
	return strings.Join(parts, ",")
}

// sequence consumes batches in input order, makes the de-duplication
// decisions and writes the outputs.
func (p *pipeline) sequence(ctx context.Context) error {
	for b := range p.order {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-b.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if b.err != nil {
			return b.err
		}
		if err := p.consume(b); err != nil {
			return err
		}
		p.free <- b
	}
	return ctx.Err()
}

// locate turns a global line id into "file:line".
func (p *pipeline) locate(id uint32) string {
	fi := sort.Search(len(p.fileStarts), func(i int) bool { return p.fileStarts[i] > id }) - 1
	return p.files[fi] + ":" + strconv.Itoa(int(id-p.fileStarts[fi])+1)
}

func (p *pipeline) consume(b *batch) error {
	rep := &p.rep
	in := &rep.Inputs[b.file]
	p.fileStarts[b.file] = b.fileStart
	in.Lines = max(in.Lines, b.fileLines)
	in.BlankLines += b.blank
	nb := 0
	if p.mh != nil {
		nb = p.mh.bands
	}
	mode := p.opts.PII.Mode
	for i := range b.lines {
		ln := &b.lines[i]
		r := &b.recs[i]
		rep.Total++
		in.Records++
		why, detail := r.reason, r.detail
		if why != reasonMalformed && !r.early {
			if prev, dup := p.exact.getOrInsert(r.exact, ln.id); dup {
				why, detail = reasonExactDup, "duplicate of "+p.locate(prev)
			} else if r.hasBands {
				bands := b.bands[i*nb : (i+1)*nb]
				found := false
				for _, h := range bands {
					if prev, ok := p.lsh.get(h); ok {
						why, detail = reasonNearDup, "near duplicate of "+p.locate(prev)
						found = true
						break
					}
				}
				if !found {
					for _, h := range bands {
						p.lsh.getOrInsert(h, ln.id)
					}
				}
			}
		}
		hasPII := r.pii != [numPIIKinds]int32{}
		if hasPII && (why == reasonNone || why == reasonPII) {
			rep.PII.Records++
			rep.PII.Email += int(r.pii[piiEmail])
			rep.PII.Phone += int(r.pii[piiPhone])
			rep.PII.IP += int(r.pii[piiIP])
		}
		if why == reasonNone {
			var out []byte
			if r.outAlt {
				out = b.alt[r.outOff : r.outOff+r.outLen]
			} else {
				out = b.data[r.outOff : r.outOff+r.outLen]
			}
			dst := p.out.validation.w
			if r.train {
				dst = p.out.train.w
				rep.Train++
			} else {
				rep.Validation++
			}
			rep.Kept++
			if _, err := dst.Write(out); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			if err := dst.WriteByte('\n'); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			if hasPII && (mode == PIIFlag || mode == PIIRedact) && p.wantFinding() {
				action := "flagged"
				if mode == PIIRedact {
					action = "redacted"
				}
				p.addFinding(b.file, ln.line, ReasonPII, piiKinds(r.pii), piiDetail(r.pii), action)
			}
			continue
		}
		rep.Removed.add(why)
		kind := ""
		switch why {
		case reasonMalformed:
			kind = r.kind
			rep.MalformedKinds[kind]++
		case reasonPII:
			kind = piiKinds(r.pii)
		}
		if p.wantFinding() {
			p.addFinding(b.file, ln.line, reasonNames[why], kind, detail, "removed")
		}
		if err := p.quarantine(b, ln, why, kind, detail); err != nil {
			return err
		}
	}
	return nil
}

// wantFinding reports whether the findings sample has room; it counts the
// finding as omitted when not.
func (p *pipeline) wantFinding() bool {
	if len(p.rep.Findings) >= p.opts.MaxFindings {
		p.rep.FindingsOmitted++
		return false
	}
	return true
}

func (p *pipeline) addFinding(file, line int, check, kind, detail, action string) {
	p.rep.Findings = append(p.rep.Findings, Finding{File: p.files[file], Line: line, Check: check, Kind: kind, Detail: detail, Action: action})
}

// quarantine writes one removed record: the original line under "record"
// when it is valid JSON, else under "raw" (a string) or, for invalid
// UTF-8, "raw_base64".
func (p *pipeline) quarantine(b *batch, ln *lineRef, why reason, kind, detail string) error {
	line := b.data[ln.off : ln.off+ln.n]
	q := append(p.qbuf[:0], `{"file":`...)
	q = append(q, p.fileJSON[b.file]...)
	q = append(q, `,"line":`...)
	q = strconv.AppendInt(q, int64(ln.line), 10)
	q = append(q, `,"reason":"`...)
	q = append(q, reasonNames[why]...)
	q = append(q, '"')
	if kind != "" {
		q = append(q, `,"kind":`...)
		q = appendJSONString(q, []byte(kind))
	}
	q = append(q, `,"detail":`...)
	q = appendJSONString(q, []byte(detail))
	switch kind {
	case KindInvalidJSON:
		q = append(q, `,"raw":`...)
		q = appendJSONString(q, line)
	case KindInvalidUTF8:
		q = append(q, `,"raw_base64":"`...)
		q = base64.StdEncoding.AppendEncode(q, line)
		q = append(q, '"')
	default:
		q = append(q, `,"record":`...)
		q = append(q, line...)
	}
	q = append(q, "}\n"...)
	p.qbuf = q
	if _, err := p.out.quarantine.w.Write(q); err != nil {
		return fmt.Errorf("write %s: %w", QuarantineFile, err)
	}
	return nil
}

func (p *pipeline) finishReport() (*Report, error) {
	rep := &p.rep
	var err error
	if rep.TrainSHA256, err = p.out.train.hexSum(); err != nil {
		return nil, err
	}
	if rep.ValidationSHA256, err = p.out.validation.hexSum(); err != nil {
		return nil, err
	}
	manifest := fmt.Sprintf("%s  %s\n%s  %s\n", rep.TrainSHA256, TrainFile, rep.ValidationSHA256, ValidationFile)
	sum := sha256.Sum256([]byte(manifest))
	rep.DataHash = hex.EncodeToString(sum[:])
	if p.mh != nil {
		nd := p.opts.NearDup
		rep.NearDup = &NearDupStats{Threshold: nd.Threshold, NumPerm: nd.NumPerm, Bands: p.mh.bands, Rows: p.mh.rows, Shingle: nd.Shingle, ShingleSize: nd.ShingleSize}
	}
	rep.Checks = evalChecks(p.opts.Checks, rep)
	rep.Passed = true
	for _, c := range rep.Checks {
		rep.Passed = rep.Passed && c.Passed
	}
	return rep, nil
}
