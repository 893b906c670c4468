package dataprep

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/slurmtune/slurmtune/store/atomicfile"
)

// Output file names in Options.OutDir.
const (
	TrainFile      = "train.jsonl"
	ValidationFile = "validation.jsonl"
	QuarantineFile = "quarantine.jsonl"
	ReportFile     = "quality_report.json"
)

// atomicFile is an output written beside its final name and renamed into
// place by commit (atomicfile).
type atomicFile struct {
	f     *atomicfile.File
	w     *bufio.Writer
	sum   hash.Hash // SHA-256 of the content, when requested
	final string
}

func createAtomic(dir, name string, bufSize int, withSum bool) (*atomicFile, error) {
	a := &atomicFile{final: filepath.Join(dir, name)}
	f, err := atomicfile.Create(a.final, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	a.f = f
	var w io.Writer = f
	if withSum {
		a.sum = sha256.New()
		w = io.MultiWriter(f, a.sum)
	}
	a.w = bufio.NewWriterSize(w, bufSize)
	return a, nil
}

// hexSum flushes the file and returns the hex SHA-256 of its content.
func (a *atomicFile) hexSum() (string, error) {
	if err := a.w.Flush(); err != nil {
		return "", fmt.Errorf("write %s: %w", a.final, err)
	}
	return hex.EncodeToString(a.sum.Sum(nil)), nil
}

// finish flushes, syncs and closes the temporary file.
func (a *atomicFile) finish() error {
	if err := a.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", a.final, err)
	}
	return a.f.Close()
}

// rename puts the finished file in place.
func (a *atomicFile) rename() error { return a.f.Commit() }

// abort removes the temporary file.
func (a *atomicFile) abort() { a.f.Abort() }

// outputs holds the four output files of a run.
type outputs struct {
	dir                                   string
	train, validation, quarantine, report *atomicFile
	all                                   []*atomicFile
	done                                  bool
}

func createOutputs(dir string) (*outputs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	o := &outputs{dir: dir}
	for _, spec := range []struct {
		dst  **atomicFile
		name string
		size int
		sum  bool
	}{
		{&o.train, TrainFile, 1 << 20, true},
		{&o.validation, ValidationFile, 1 << 20, true},
		{&o.quarantine, QuarantineFile, 256 << 10, false},
		{&o.report, ReportFile, 64 << 10, false},
	} {
		f, err := createAtomic(dir, spec.name, spec.size, spec.sum)
		if err != nil {
			o.abort()
			return nil, err
		}
		*spec.dst = f
		o.all = append(o.all, f)
	}
	return o, nil
}

// commit makes all outputs visible, the report last.
func (o *outputs) commit() error {
	for _, f := range o.all {
		if err := f.finish(); err != nil {
			o.abort()
			return err
		}
	}
	for _, f := range o.all {
		if err := f.rename(); err != nil {
			o.abort()
			return err
		}
	}
	o.done = true
	return nil
}

// abort removes every temporary file (no-op after commit).
func (o *outputs) abort() {
	if o.done {
		return
	}
	o.done = true
	for _, f := range o.all {
		f.abort()
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 is
// replaced by U+FFFD.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
