package config

import (
	"bytes"
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
