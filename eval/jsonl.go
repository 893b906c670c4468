package eval

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// openInput opens an input file for reading. Only regular files are
// accepted: opening a FIFO would block until a writer appears, and a
// device may never end.
func openInput(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	return os.Open(path)
}

// maxLineBytes bounds one JSONL line.
const maxLineBytes = 64 << 20

// lineReader yields the lines of a JSONL stream without their line ending,
// with 1-based line numbers. A leading UTF-8 BOM is dropped. The returned
// slice is only valid until the next call.
type lineReader struct {
	r    *bufio.Reader
	name string
	line int
	long []byte
	err  error
	// max bounds one line (default maxLineBytes); why says what sets it.
	max int
	why string
}

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 256<<10), name: name, max: maxLineBytes}
}

// next returns the next line, or io.EOF.
func (lr *lineReader) next() ([]byte, error) {
	if lr.err != nil {
		return nil, lr.err
	}
	b, err := lr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(lr.long) > lr.max {
				lr.err = fmt.Errorf("%s:%d: line longer than %d bytes%s", lr.name, lr.line+1, lr.max, lr.why)
				return nil, lr.err
			}
			b, err = lr.r.ReadSlice('\n')
			lr.long = append(lr.long, b...)
		}
		b = lr.long
	}
	if err != nil && err != io.EOF {
		lr.err = fmt.Errorf("%s:%d: %w", lr.name, lr.line+1, err)
		return nil, lr.err
	}
	if err == io.EOF && len(b) == 0 {
		lr.err = io.EOF
		return nil, io.EOF
	}
	lr.line++
	if lr.line == 1 {
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b, nil
}

// isBlank reports whether b is only JSON whitespace.
func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
