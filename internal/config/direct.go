package config

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config/yamlscan"
)

// The direct path sets a checked spec's fields from its YAML nodes, as protojson would set them
// from the JSON made of those nodes, without making the JSON: the round trip was a third of the
// decoder's time and most of its garbage. It covers what ServiceEntries and most other objects
// are made of (strings, whole numbers, booleans, enums, messages, lists and maps with string
// keys); anything else (google.protobuf types, floats, bytes, a null list item, a oneof or field
// set twice, text that is not UTF-8) makes it give up, and the round trip decides, so both paths
// accept and refuse the same documents.

// interner shares one copy of the strings documents repeat (namespaces, port names, protocols,
// label keys and values, localities) among all the documents one decoding goroutine reads.
type interner struct {
	m map[string]string
	// roundTripOnly turns the direct path off, so tests can hold it to the round trip's results.
	roundTripOnly bool
	// scratch is the buffer each document's line table is built in before it is copied out.
	scratch []lineEntry
	// helpers are the interners of decodeNodes' other workers.
	helpers []*interner
	// readBuf is the buffer files are read into, reused file after file (readFile).
	readBuf []byte
	// steps is the buffer duplicateKeys walks paths in.
	steps []pathStep
	// keys numbers the keys of the line tables built here.
	keys *keyTable
	// yamlOnly turns the scanner off, so tests can hold it to yaml.v3's results.
	yamlOnly bool
	// scanner parses the files in its subset; borrowed says the nodes being decoded are its,
	// whose strings share the file's text: what a document keeps of them is copied, so that
	// the loaded registry does not hold every file it was read from.
	scanner  yamlscan.Parser
	borrowed bool
	// arena and lineSlab are the chunks keep and keepLines copy a document's strings and line
	// table into: a few allocations per file instead of one per string and per document,
	// which at 100,000 documents was a fifth of the decode's allocations. startFile begins
	// new chunks, so that a chunk holds one file's documents only and is garbage with them.
	arena    []byte
	lineSlab []lineEntry
	// docSlab and seSlab are where newDocument and newSpec cut the file's Documents and
	// ServiceEntries from, the next at docNext and seNext; begun anew at each file too.
	docSlab []Document
	seSlab  []networking.ServiceEntry
	docNext int
	seNext  int
	// top and tops are the decoder decodeTop hands out for a single document (decoderFor).
	top  decoder
	tops [1]*decoder
}

// Chunk sizes of the arena and the line slab: a file of a hundred documents takes a few of
// each, and leaves half a chunk unused on average.
const (
	arenaChunk = 4 << 10
	lineChunk  = 512
)

// startFile makes the strings and line tables of the next file's documents go to chunks of
// their own, in this interner and its helpers.
func (in *interner) startFile() {
	if in == nil {
		return
	}
	in.resetChunks()
	for _, h := range in.helpers {
		h.resetChunks()
	}
}

func (in *interner) resetChunks() {
	in.arena, in.lineSlab, in.docSlab, in.seSlab, in.docNext, in.seNext = nil, nil, nil, nil, 0, 0
}

// slabChunk is how many Documents or ServiceEntries one slab holds.
const slabChunk = 16

// newDocument returns a zero Document cut from the document slab.
func (in *interner) newDocument() *Document {
	if in == nil {
		return new(Document)
	}
	if in.docNext == len(in.docSlab) {
		in.docSlab, in.docNext = make([]Document, slabChunk), 0
	}
	in.docNext++
	return &in.docSlab[in.docNext-1]
}

// newSpec returns an empty spec of kind, nil for a kind that is not ours; ServiceEntries, most
// of any large config, are cut from the ServiceEntry slab.
func (in *interner) newSpec(kind string) proto.Message {
	if in == nil || kind != KindServiceEntry {
		return newSpec(kind)
	}
	if in.seNext == len(in.seSlab) {
		in.seSlab, in.seNext = make([]networking.ServiceEntry, slabChunk), 0
	}
	in.seNext++
	return &in.seSlab[in.seNext-1]
}

// copyOut copies s into the arena; a long s gets an allocation of its own.
func (in *interner) copyOut(s string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > arenaChunk/8 {
		return strings.Clone(s)
	}
	if cap(in.arena)-len(in.arena) < len(s) {
		in.arena = make([]byte, 0, arenaChunk)
	}
	n := len(in.arena)
	// The bytes up to len are never written again: later copies only append past them.
	in.arena = append(in.arena, s...)
	return unsafe.String(&in.arena[n], len(s))
}

// keepLines returns a copy of a document's line table, cut from the line slab; its capacity
// is its length, so an append to it copies rather than writes over the next document's.
func (in *interner) keepLines(b []lineEntry) []lineEntry {
	if in == nil || len(b) == 0 || len(b) > lineChunk/4 {
		return slices.Clone(b)
	}
	if cap(in.lineSlab)-len(in.lineSlab) < len(b) {
		in.lineSlab = make([]lineEntry, 0, lineChunk)
	}
	n := len(in.lineSlab)
	in.lineSlab = append(in.lineSlab, b...)
	return in.lineSlab[n:len(in.lineSlab):len(in.lineSlab)]
}

// keep returns s as a document may hold it: a copy when s shares a scanned file's text.
func (in *interner) keep(s string) string {
	if in == nil || !in.borrowed {
		return s
	}
	return in.copyOut(s)
}

// lineKeys returns the key table the documents of this goroutine share.
func (in *interner) lineKeys() *keyTable {
	if in == nil {
		return &keyTable{}
	}
	if in.keys == nil {
		in.keys = &keyTable{}
	}
	return in.keys
}

// lineScratch returns an empty buffer for a line table.
func (in *interner) lineScratch() []lineEntry {
	if in == nil {
		return nil
	}
	return in.scratch[:0]
}

// keepScratch takes the buffer back, grown, unless it grew past what a large object needs.
func (in *interner) keepScratch(b []lineEntry) {
	if in != nil && cap(b) <= 1<<12 {
		in.scratch = b[:0]
	}
}

// Bounds on the interner: short strings only, and no more than maxInterned of them, so a config
// of unique values costs a bounded map and no more.
const (
	maxInternLen = 64
	maxInterned  = 16 << 10
)

func newInterner() *interner { return &interner{m: map[string]string{}} }

// of returns the shared copy of s, adding s when there is room.
func (in *interner) of(s string) string {
	if in == nil || len(s) > maxInternLen {
		return in.keep(s)
	}
	if c, ok := in.m[s]; ok {
		return c
	}
	if len(in.m) >= maxInterned {
		return in.keep(s)
	}
	// Not in the arena: an interned string outlives the file it was first read from.
	if in.borrowed {
		s = strings.Clone(s)
	}
	in.m[s] = s
	return s
}

// uniqueFields hold values that seldom repeat (hosts, addresses): interning them only fills the map.
var uniqueFields = map[protoreflect.Name]bool{"hosts": true, "addresses": true, "address": true, "subject_alt_names": true}

// setDirect fills msg from mapping n; false means the round trip must decide instead.
func (d *decoder) setDirect(n *yaml.Node, msg protoreflect.Message) bool {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode || (d.intern != nil && d.intern.roundTripOnly) {
		return false
	}
	md := msg.Descriptor()
	var seen []protoreflect.FieldNumber
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		fd := md.Fields().ByJSONName(k.Value)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k.Value))
		}
		if fd == nil || isWellKnown(fd) {
			return false
		}
		for _, s := range seen {
			if s == fd.Number() {
				return false // the same field by its two names: protojson refuses it
			}
		}
		seen = append(seen, fd.Number())
		if isNull(v) {
			continue // protojson leaves a null field unset
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && msg.WhichOneof(od) != nil {
			return false
		}
		if !d.setField(msg, fd, v) {
			return false
		}
	}
	return true
}

// isWellKnown reports fields of google.protobuf types, whose JSON forms are their own.
func isWellKnown(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		fd = fd.MapValue()
	}
	switch {
	case fd.Message() != nil:
		return strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.")
	case fd.Enum() != nil:
		return strings.HasPrefix(string(fd.Enum().FullName()), "google.protobuf.")
	}
	return false
}

func (d *decoder) setField(msg protoreflect.Message, fd protoreflect.FieldDescriptor, v *yaml.Node) bool {
	switch {
	case fd.IsMap():
		if v.Kind != yaml.MappingNode || fd.MapKey().Kind() != protoreflect.StringKind {
			return false
		}
		m := msg.Mutable(fd).Map()
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, item := v.Content[i], resolveAlias(v.Content[i+1])
			if isNull(item) || !utf8.ValidString(k.Value) {
				return false
			}
			val, ok := d.value(m.NewValue, fd.MapValue(), item, true)
			if !ok {
				return false
			}
			m.Set(protoreflect.ValueOfString(d.intern.of(k.Value)).MapKey(), val)
		}
		return true
	case fd.IsList():
		if v.Kind != yaml.SequenceNode {
			return false
		}
		l := msg.Mutable(fd).List()
		intern := !uniqueFields[fd.Name()]
		for _, item := range v.Content {
			item = resolveAlias(item)
			if isNull(item) {
				return false
			}
			val, ok := d.value(l.NewElement, fd, item, intern)
			if !ok {
				return false
			}
			l.Append(val)
		}
		return true
	}
	val, ok := d.value(func() protoreflect.Value { return msg.NewField(fd) }, fd, v, !uniqueFields[fd.Name()])
	if ok {
		msg.Set(fd, val)
	}
	return ok
}

// value converts one checked scalar or message node; newMsg makes the message to fill.
func (d *decoder) value(newMsg func() protoreflect.Value, fd protoreflect.FieldDescriptor, v *yaml.Node, intern bool) (protoreflect.Value, bool) {
	if fd.Kind() == protoreflect.MessageKind {
		m := newMsg()
		return m, d.setDirect(v, m.Message())
	}
	if v.Kind != yaml.ScalarNode || v.Tag == "!!float" {
		// A float-tagged whole number ("080") reaches protojson as a JSON float; let it decide.
		return protoreflect.Value{}, false
	}
	// A quoted number reaches protojson as a JSON string, which it reads by JSON's rules, not
	// ParseInt's ("+80", "080"): only numbers tagged !!int are read here.
	s := v.Value
	switch fd.Kind() {
	case protoreflect.StringKind:
		if v.Tag != "!!str" || !utf8.ValidString(s) {
			return protoreflect.Value{}, false
		}
		if intern {
			s = d.intern.of(s)
		} else {
			s = d.intern.keep(s)
		}
		return protoreflect.ValueOfString(s), true
	case protoreflect.BoolKind:
		switch s {
		case "true", "True", "TRUE":
			return protoreflect.ValueOfBool(true), v.Tag == "!!bool"
		case "false", "False", "FALSE":
			return protoreflect.ValueOfBool(false), v.Tag == "!!bool"
		}
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByName(protoreflect.Name(s)); ev != nil && v.Tag == "!!str" {
			return protoreflect.ValueOfEnum(ev.Number()), true
		}
		if n, err := strconv.ParseInt(s, 10, 32); err == nil && v.Tag == "!!int" {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), true
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if n, err := strconv.ParseInt(s, 10, 32); err == nil && v.Tag == "!!int" {
			return protoreflect.ValueOfInt32(int32(n)), true
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && v.Tag == "!!int" {
			return protoreflect.ValueOfInt64(n), true
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if n, err := strconv.ParseUint(s, 10, 32); err == nil && v.Tag == "!!int" {
			return protoreflect.ValueOfUint32(uint32(n)), true
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if n, err := strconv.ParseUint(s, 10, 64); err == nil && v.Tag == "!!int" {
			return protoreflect.ValueOfUint64(n), true
		}
	}
	return protoreflect.Value{}, false
}
