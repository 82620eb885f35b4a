package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"unsafe"

	"github.com/meshentry/meshentry/internal/diag"
)

// decodeBytes is decodeStream over a stream read whole: through the scanner when every document
// is in its subset, which yields the nodes yaml.v3 would, else through yaml.v3 itself.
func decodeBytes(file string, data []byte, defaultNamespace string, order *int, in *interner) ([]*Document, []diag.Diagnostic, int) {
	if in == nil || in.yamlOnly {
		return decodeStream(file, bytes.NewReader(data), defaultNamespace, order, in)
	}
	// The text is data itself, not a copy: data is not written after it is read, and what the
	// documents keep of it is copied out (interner.keep), so it is garbage once decoded.
	nodes, ok := in.scanner.Parse(unsafe.String(unsafe.SliceData(data), len(data)))
	if !ok {
		return decodeStream(file, bytes.NewReader(data), defaultNamespace, order, in)
	}
	in.borrowed = true
	defer func() { in.borrowed = false }()
	var s streamResult
	for _, n := range nodes {
		s.add(decodeTop(file, defaultNamespace, n, in), order)
	}
	return s.docs, s.diags, s.read
}

// streamResult gathers the documents and findings of one stream.
type streamResult struct {
	docs  []*Document
	diags []diag.Diagnostic
	read  int
}

// add takes in the decoders of one YAML document, numbering the documents they decoded.
func (s *streamResult) add(decoders []*decoder, order *int) {
	for _, d := range decoders {
		s.diags = append(s.diags, d.notes...)
		if d.out != nil || len(d.diags) > 0 {
			s.read++
		}
		if len(d.diags) > 0 {
			s.diags = append(s.diags, d.diags...)
			continue
		}
		if d.out != nil {
			d.out.Order = *order
			*order++
			s.docs = append(s.docs, d.out)
		}
	}
}

// maxReadBuffer bounds the buffer an interner keeps for reading files; a larger file is read
// into one of its own.
const maxReadBuffer = 8 << 20

// readFile reads the file at path into the interner's buffer, which the next call overwrites:
// the documents decoded from it keep copies of what they hold (keep, of, keyTable), so reusing
// it spares the collector a fresh buffer, and the kernel fresh pages, per file.
func (in *interner) readFile(path string) ([]byte, error) {
	if in == nil {
		return os.ReadFile(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := in.readBuf[:0]
	if info, err := f.Stat(); err == nil && int(info.Size())+1 > cap(buf) {
		buf = make([]byte, 0, int(info.Size())+512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if cap(buf) <= maxReadBuffer {
		in.readBuf = buf
	}
	return buf, nil
}
