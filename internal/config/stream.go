package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"go.yaml.in/yaml/v3"

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
	// Batches bound the nodes alive at once (a whole large file's would be gigabytes) and are
	// what decodeNodes spreads over the cores.
	var s streamResult
	in.startFile()
	in.borrowed = true
	ok := in.scanner.Parse(unsafe.String(unsafe.SliceData(data), len(data)), parallelDocs, func(nodes []*yaml.Node) {
		r := decodeNodes(file, defaultNamespace, nodes, in)
		s.docs = append(s.docs, r.docs...)
		s.diags = append(s.diags, r.diags...)
		s.read += r.read
	})
	in.borrowed = false
	if !ok {
		return decodeStream(file, bytes.NewReader(data), defaultNamespace, order, in)
	}
	for _, d := range s.docs {
		d.Order = *order
		*order++
	}
	return s.docs, s.diags, s.read
}

// parallelDocs is how many documents one file must hold for them to be decoded on every core:
// a config of many files is already decoded a file per core, but one large file would be
// decoded on one.
const parallelDocs = 2048

// decodeNodes decodes the scanned documents of one file, in contiguous runs on up to one
// goroutine per core when there are many, each with an interner of its own; the runs' results
// are joined in document order, so documents and findings come out as one goroutine would give
// them. Documents are numbered from 0 within each run; the caller renumbers them.
func decodeNodes(file, ns string, nodes []*yaml.Node, in *interner) streamResult {
	workers := min(runtime.GOMAXPROCS(0), len(nodes)/(parallelDocs/2))
	if workers <= 1 {
		var s streamResult
		order := 0
		for _, n := range nodes {
			s.add(decodeTop(file, ns, n, in), &order)
		}
		return s
	}
	runs := make([]streamResult, workers)
	per := (len(nodes) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*per, min(len(nodes), (w+1)*per)
		strs := in.helper(w)
		wg.Go(func() {
			order := 0
			for _, n := range nodes[lo:hi] {
				runs[w].add(decodeTop(file, ns, n, strs), &order)
			}
		})
	}
	wg.Wait()
	var s streamResult
	for _, r := range runs {
		s.docs = append(s.docs, r.docs...)
		s.diags = append(s.diags, r.diags...)
		s.read += r.read
	}
	return s
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

// helper returns the interner of decodeNodes' worker w: in itself for the first, else one kept
// for the next batches, so that they share strings and key tables as one goroutine's would.
func (in *interner) helper(w int) *interner {
	if w == 0 {
		return in
	}
	for len(in.helpers) < w {
		h := newInterner()
		h.roundTripOnly = in.roundTripOnly
		in.helpers = append(in.helpers, h)
	}
	h := in.helpers[w-1]
	h.borrowed = true
	return h
}
