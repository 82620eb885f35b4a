package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/diag"
)

// Codes for loading failures; validation and analysis codes live with their rules.
const (
	CodeSyntax = "ME0001" // the file is not parseable YAML or JSON
	CodeSchema = "ME0002" // a document does not fit the schema of its kind
)

var apiVersions = map[string]bool{
	"networking.istio.io/v1alpha3": true,
	"networking.istio.io/v1beta1":  true,
	"networking.istio.io/v1":       true,
}

func newSpec(kind string) proto.Message {
	switch kind {
	case KindServiceEntry:
		return &networking.ServiceEntry{}
	case KindDestinationRule:
		return &networking.DestinationRule{}
	case KindVirtualService:
		return &networking.VirtualService{}
	case KindGateway:
		return &networking.Gateway{}
	case KindSidecar:
		return &networking.Sidecar{}
	}
	return nil
}

// objectMetaFields are the Kubernetes ObjectMeta keys accepted in metadata; the registry reads only
// name, namespace, labels and creationTimestamp, but objects exported from a cluster carry the rest.
var objectMetaFields = map[string]bool{
	"name": true, "namespace": true, "labels": true, "annotations": true, "creationTimestamp": true,
	"generateName": true, "uid": true, "resourceVersion": true, "generation": true, "selfLink": true,
	"deletionTimestamp": true, "deletionGracePeriodSeconds": true, "ownerReferences": true,
	"finalizers": true, "managedFields": true,
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// Decode reads every document of one YAML or JSON stream. Documents that fail are reported and left
// out; the rest are returned. order numbers documents across calls so conflicts resolve by load order.
func Decode(file string, r io.Reader, defaultNamespace string, order *int) ([]*Document, []diag.Diagnostic) {
	docs, diags, _ := decodeCounting(file, r, defaultNamespace, order)
	return docs, diags
}

// decodeCounting is Decode that also counts the non-empty documents read, the good and the bad.
func decodeCounting(file string, r io.Reader, defaultNamespace string, order *int) ([]*Document, []diag.Diagnostic, int) {
	data, err := io.ReadAll(r)
	if err != nil {
		// yaml.v3 reports a failed read where it happens, after the documents before it.
		return decodeStream(file, io.MultiReader(bytes.NewReader(data), failedRead{err}), defaultNamespace, order, newInterner())
	}
	return decodeBytes(file, data, defaultNamespace, order, newInterner())
}

// failedRead is a reader that fails as the stream it stands for did.
type failedRead struct{ err error }

func (f failedRead) Read([]byte) (int, error) { return 0, f.err }

// decodeStream is decodeCounting sharing the strings of in.
func decodeStream(file string, r io.Reader, defaultNamespace string, order *int, in *interner) ([]*Document, []diag.Diagnostic, int) {
	var s streamResult
	in.startFile()
	dec := yaml.NewDecoder(r)
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := 0
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				line, _ = strconv.Atoi(m[1])
			}
			s.diags = append(s.diags, diag.Diagnostic{Level: diag.Error, Code: CodeSyntax, File: file, Line: line,
				Message: strings.TrimPrefix(err.Error(), "yaml: ") + " (the rest of the file is not read)"})
			break
		}
		s.add(decodeTop(file, defaultNamespace, &n, in), order)
	}
	return s.docs, s.diags, s.read
}

type decoder struct {
	file      string
	defaultNS string
	// inherit is the kind and apiVersion of a typed list's items that do not name their own.
	inherit header
	doc     *Document
	diags   []diag.Diagnostic
	// notes are findings that do not reject anything (a skipped document).
	notes []diag.Diagnostic
	// out is the decoded document, nil when it was empty, skipped or rejected.
	out *Document
	// intern is shared by the decoders of one goroutine.
	intern *interner
	// named is what doc points to while screen names a document not yet decoded.
	named Document
}

func (d *decoder) fail(line int, field, format string, args ...any) {
	dg := diag.Diagnostic{Level: diag.Error, Code: CodeSchema, File: d.file, Line: line, Field: d.intern.keep(field),
		Message: fmt.Sprintf(format, args...)}
	if d.doc != nil && d.doc.Kind != "" {
		dg.Kind, dg.Namespace, dg.Name = d.intern.keep(d.doc.Kind), d.intern.keep(d.doc.Namespace), d.intern.keep(d.doc.Name)
	}
	d.diags = append(d.diags, dg)
}

// Limits on one document as it is walked with aliases expanded: a few hundred bytes of nested
// aliases ("billion laughs") would otherwise expand into gigabytes.
const (
	maxExpandedNodes = 1 << 20
	maxDepth         = 100
)

// withinBudget reports whether n, aliases expanded, has at most *budget nodes and maxDepth levels.
func withinBudget(n *yaml.Node, budget *int, depth int) bool {
	if depth > maxDepth {
		return false
	}
	n = resolveAlias(n)
	*budget--
	if *budget < 0 {
		return false
	}
	for _, c := range n.Content {
		if !withinBudget(c, budget, depth+1) {
			return false
		}
	}
	return true
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// document decodes one YAML document; it returns nil for an empty one.
func (d *decoder) document(n *yaml.Node) *Document {
	n = d.documentRoot(n)
	if n == nil {
		return nil
	}
	h, ok := d.screen(n)
	if !ok {
		return nil
	}
	doc := d.intern.newDocument()
	doc.File, doc.Line, doc.APIVersion, doc.Kind = d.file, n.Line, d.intern.of(h.apiVersion), d.intern.of(h.kind)
	doc.lines.entries, doc.lines.keys = d.intern.lineScratch(), d.intern.lineKeys()
	defer func() {
		// The table is built in a buffer reused for every document and kept at its exact size:
		// grown by appends it would hold a third more than it needs, for every document loaded.
		d.intern.keepScratch(doc.lines.entries)
		doc.lines.entries = d.intern.keepLines(doc.lines.entries)
	}()
	top := d.topFields(doc, n)
	d.metadata(doc, top.meta, top.metaAt)
	d.doc = doc
	switch {
	case doc.APIVersion == "":
		d.fail(doc.Line, "apiVersion", "apiVersion is required")
	case !apiVersions[doc.APIVersion]:
		d.fail(top.apiLine, "apiVersion", "unsupported apiVersion %q (want networking.istio.io/v1alpha3, v1beta1 or v1)", doc.APIVersion)
	}
	spec0 := d.intern.newSpec(doc.Kind)
	if spec0 == nil {
		if doc.Kind == "" {
			d.fail(doc.Line, "kind", "kind is required")
		} else {
			d.fail(top.kindLine, "kind", "unsupported kind %q (want ServiceEntry, DestinationRule, VirtualService, Gateway or Sidecar)", doc.Kind)
		}
		return nil
	}
	if top.spec == nil || isNull(top.spec) {
		d.fail(doc.Line, "spec", "spec is required")
		return nil
	}
	if !d.walkMessage(top.specAt, top.spec, spec0.ProtoReflect().Descriptor()) {
		return nil
	}
	if !d.unmarshalSpec(top.specLine, top.spec, spec0.ProtoReflect()) {
		return nil
	}
	doc.Spec = spec0
	return doc
}

// documentRoot returns the mapping a YAML document holds, its aliases resolved and its merge
// keys expanded, or nil for an empty document or one that failed (the failure recorded).
func (d *decoder) documentRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	n = resolveAlias(n)
	if isNull(n) {
		return nil
	}
	if budget := maxExpandedNodes; !withinBudget(n, &budget, 0) {
		d.fail(n.Line, "", "document too large once its YAML aliases are expanded (more than %d values, or nested deeper than %d, as an alias or merge key inside the value it names is)", maxExpandedNodes, maxDepth)
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, "", "a document must be an object with apiVersion, kind, metadata and spec")
		return nil
	}
	// Expanded only once the document is known to be small with its aliases walked: merging
	// spends no more than that walk, so the limit above also bounds the expansion.
	n, ok := d.expandMerges(n)
	if !ok {
		return nil
	}
	return n
}

// topLevel is what a document's top level holds besides apiVersion and kind, and where.
type topLevel struct {
	meta, spec                  *yaml.Node
	specLine, apiLine, kindLine int
	metaAt, specAt              int32
}

// topFields reads the top-level fields of the document mapping n into doc and its line table,
// failing unknown ones.
func (d *decoder) topFields(doc *Document, n *yaml.Node) topLevel {
	top := topLevel{metaAt: noEntry, specAt: noEntry}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		at := doc.lines.key(noEntry, topKey(k.Value), k.Line)
		switch k.Value {
		case "apiVersion":
			doc.APIVersion, top.apiLine = d.intern.of(v.Value), k.Line
		case "kind":
			doc.Kind, top.kindLine = d.intern.of(v.Value), k.Line
		case "metadata":
			top.meta, top.metaAt = v, at
		case "spec":
			top.spec, top.specLine, top.specAt = v, k.Line, at
		case "status":
			// Written by controllers, not by users; ignored like kubectl apply ignores it.
		default:
			d.fail(k.Line, k.Value, "unknown field %q (want apiVersion, kind, metadata, spec)", k.Value)
		}
	}
	return top
}

// topKey returns the document key as a constant string where it is one of the four expected,
// so that the line table does not keep the parser's copy alive.
func topKey(k string) string {
	for _, c := range [...]string{"apiVersion", "kind", "metadata", "spec"} {
		if k == c {
			return c
		}
	}
	return k
}

func (d *decoder) metadata(doc *Document, meta *yaml.Node, metaAt int32) {
	doc.Namespace = d.intern.of(d.defaultNS)
	if meta == nil || isNull(meta) {
		d.fail(doc.Line, "metadata.name", "metadata.name is required")
		return
	}
	if meta.Kind != yaml.MappingNode {
		d.fail(meta.Line, "metadata", "expected an object")
		return
	}
	for i := 0; i+1 < len(meta.Content); i += 2 {
		k, v := meta.Content[i], resolveAlias(meta.Content[i+1])
		doc.lines.key(metaAt, k.Value, k.Line)
		switch k.Value {
		case "name":
			doc.Name = d.intern.keep(v.Value)
		case "namespace":
			if v.Value != "" {
				doc.Namespace = d.intern.of(v.Value)
			}
		case "labels":
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.MappingNode {
				d.fail(v.Line, "metadata."+k.Value, "expected a map of strings")
				continue
			}
			doc.Labels = make(map[string]string, len(v.Content)/2)
			for j := 0; j+1 < len(v.Content); j += 2 {
				doc.Labels[d.intern.of(v.Content[j].Value)] = d.intern.of(resolveAlias(v.Content[j+1]).Value)
			}
		case "creationTimestamp":
			if isNull(v) || v.Value == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339, v.Value)
			if err != nil {
				d.fail(k.Line, "metadata."+k.Value, "not an RFC 3339 time: %q", v.Value)
				continue
			}
			doc.Created = t
		default:
			if !objectMetaFields[k.Value] {
				d.fail(k.Line, "metadata."+k.Value, "unknown field %q", k.Value)
			}
		}
	}
	if doc.Name == "" {
		d.fail(doc.Line, "metadata.name", "metadata.name is required")
	}
}

// walkMessage checks a YAML mapping against a protobuf message descriptor, so that a misspelt
// field is an error with its path and line rather than silently dropped, and records field lines.
func (d *decoder) walkMessage(at int32, n *yaml.Node, md protoreflect.MessageDescriptor) bool {
	n = resolveAlias(n)
	if isNull(n) {
		return true
	}
	if md.ParentFile().Package() == "google.protobuf" {
		// Well-known types (Duration, Struct, wrappers) have their own JSON forms.
		return d.wellKnown(at, n, md)
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, d.doc.lines.path(at), "expected an object")
		return false
	}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fd := md.Fields().ByJSONName(k.Value)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k.Value))
		}
		if fd == nil {
			d.fail(k.Line, d.doc.lines.join(at, k.Value), "unknown field %q%s", k.Value, suggest(k.Value, md))
			d.doc.lines.key(at, k.Value, k.Line)
			ok = false
			continue
		}
		// The descriptor's copy of the name, so the table does not keep the parser's alive.
		name := fd.JSONName()
		if name != k.Value {
			name = string(fd.Name())
		}
		fp := d.doc.lines.key(at, name, k.Line)
		if !d.walkField(fp, v, fd) {
			ok = false
		}
	}
	return ok
}

func (d *decoder) walkField(at int32, n *yaml.Node, fd protoreflect.FieldDescriptor) bool {
	n = resolveAlias(n)
	if isNull(n) {
		return true
	}
	switch {
	case fd.IsMap():
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, d.doc.lines.path(at), "expected a map")
			return false
		}
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			fp := d.doc.lines.key(at, k.Value, k.Line)
			if !d.walkValue(fp, n.Content[i+1], fd.MapValue()) {
				ok = false
			}
		}
		return ok
	case fd.IsList():
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, d.doc.lines.path(at), "expected a list")
			return false
		}
		ok := true
		for i, item := range n.Content {
			fp := d.doc.lines.item(at, i, item.Line)
			if !d.walkValue(fp, item, fd) {
				ok = false
			}
		}
		return ok
	}
	return d.walkValue(at, n, fd)
}

func (d *decoder) walkValue(at int32, n *yaml.Node, fd protoreflect.FieldDescriptor) bool {
	n = resolveAlias(n)
	if isNull(n) {
		return true
	}
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return d.walkMessage(at, n, fd.Message())
	}
	// Built only when a finding needs it.
	path := func() string { return d.doc.lines.path(at) }
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, path(), "expected a single value")
		return false
	}
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		if n.Tag != "!!str" {
			d.fail(n.Line, path(), "expected a string, got %s (quote it)", n.Value)
			return false
		}
	case protoreflect.BoolKind:
		if n.Tag != "!!bool" {
			d.fail(n.Line, path(), "expected true or false, got %q", n.Value)
			return false
		}
	case protoreflect.EnumKind:
		if fd.Enum().Values().ByName(protoreflect.Name(n.Value)) != nil {
			return true
		}
		if _, err := strconv.ParseInt(n.Value, 10, 32); err == nil && n.Tag == "!!int" {
			return true
		}
		d.fail(n.Line, path(), "unknown value %q (want %s)", n.Value, enumNames(fd.Enum()))
		return false
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if _, err := strconv.ParseUint(n.Value, 10, 32); err != nil {
			d.fail(n.Line, path(), "expected a whole number from 0 to 4294967295, got %q", n.Value)
			return false
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if _, err := strconv.ParseInt(n.Value, 10, 32); err != nil {
			d.fail(n.Line, path(), "expected a 32-bit whole number, got %q", n.Value)
			return false
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if _, err := strconv.ParseUint(n.Value, 10, 64); err != nil {
			d.fail(n.Line, path(), "expected a whole number, got %q", n.Value)
			return false
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if _, err := strconv.ParseInt(n.Value, 10, 64); err != nil {
			d.fail(n.Line, path(), "expected a whole number, got %q", n.Value)
			return false
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if _, err := strconv.ParseFloat(n.Value, 64); err != nil {
			d.fail(n.Line, path(), "expected a number, got %q", n.Value)
			return false
		}
	}
	return true
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	vals := ed.Values()
	names := make([]string, 0, vals.Len())
	for i := 0; i < vals.Len(); i++ {
		names = append(names, string(vals.Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

// suggest names the closest declared field, since most unknown fields are typos.
func suggest(name string, md protoreflect.MessageDescriptor) string {
	best, bestDist := "", 3
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		cand := fields.Get(i).JSONName()
		if dist := editDistance(strings.ToLower(name), strings.ToLower(cand)); dist < bestDist {
			best, bestDist = cand, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// plain turns a checked YAML node into the generic values encoding/json marshals for protojson.
func plain(n *yaml.Node) any {
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = plain(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			s = append(s, plain(c))
		}
		return s
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b
			}
		case "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err == nil {
				return v
			}
		}
		return n.Value
	}
	return nil
}
