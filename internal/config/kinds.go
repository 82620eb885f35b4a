package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/meshentry/meshentry/internal/diag"
)

// Codes for documents that are read past rather than decoded.
const (
	CodeSkippedForeign = "ME0003" // info: a document that is not Istio config (Deployment, Service, ...) is skipped
	CodeSkippedIstio   = "ME0004" // warning: an Istio kind meshentry does not read (WorkloadEntry, AuthorizationPolicy, ...) is skipped
)

// istioKindsNotRead are Istio kinds that change traffic in a mesh but that meshentry does not read:
// skipping them is worth a warning, since the user may expect them to apply.
var istioKindsNotRead = map[string]bool{
	"WorkloadEntry": true, "WorkloadGroup": true, "EnvoyFilter": true, "ProxyConfig": true,
	"AuthorizationPolicy": true, "PeerAuthentication": true, "RequestAuthentication": true,
	"Telemetry": true, "WasmPlugin": true, "IstioOperator": true,
}

// header is the apiVersion and kind of a document, read before its fields are checked, because
// the fields allowed depend on them.
type header struct {
	apiVersion, kind string
	kindLine         int
}

func readHeader(n *yaml.Node) header {
	var h header
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		switch {
		case k.Value == "apiVersion" && h.apiVersion == "":
			h.apiVersion = v.Value
		case k.Value == "kind" && h.kind == "":
			h.kind, h.kindLine = v.Value, k.Line
		}
	}
	return h
}

func (h header) group() string {
	g, _, ok := strings.Cut(h.apiVersion, "/")
	if !ok {
		return "" // the core group: "v1"
	}
	return g
}

func isIstioGroup(g string) bool { return g == "istio.io" || strings.HasSuffix(g, ".istio.io") }

// ourKind reports whether kind is one this loader decodes.
func ourKind(kind string) bool { return newSpec(kind) != nil }

// isList reports whether the document is a list whose items are read one by one: "kind: List"
// (what kubectl get -o yaml prints) or a typed list such as ServiceEntryList.
func (h header) isList() bool {
	if h.kind == "List" {
		return h.apiVersion == "v1"
	}
	item, ok := strings.CutSuffix(h.kind, "List")
	return ok && ourKind(item) && apiVersions[h.apiVersion]
}

// skip decides whether a document is read past: kinds that are not Istio config get a note, Istio
// kinds that meshentry does not read get a warning. A misspelt kind in an Istio group, or one of
// our kinds under a wrong apiVersion, is not skipped: it is most likely a mistake, so an error.
func (d *decoder) skip(h header, line int, ns, name string) bool {
	if h.apiVersion == "" || h.kind == "" || ourKind(h.kind) {
		return false
	}
	item, _ := strings.CutSuffix(h.kind, "List")
	g := h.group()
	dg := diag.Diagnostic{File: d.file, Line: line, Kind: d.intern.keep(h.kind), Namespace: d.intern.keep(ns), Name: d.intern.keep(name)}
	switch {
	case isIstioGroup(g) && istioKindsNotRead[item]:
		dg.Level, dg.Code = diag.Warning, CodeSkippedIstio
		dg.Message = fmt.Sprintf("skipped: meshentry does not read %s (%s), so it has no effect here", h.kind, h.apiVersion)
	case isIstioGroup(g):
		return false
	default:
		dg.Level, dg.Code = diag.Info, CodeSkippedForeign
		dg.Message = fmt.Sprintf("skipped: %s (%s) is not Istio config", h.kind, h.apiVersion)
	}
	d.notes = append(d.notes, dg)
	return true
}

// screen decides, before its fields are checked, whether the object n is decoded at all: it is
// not when it is skipped as another kind or has a key set twice.
func (d *decoder) screen(n *yaml.Node) (header, bool) {
	h := readHeader(n)
	if h.apiVersion == "" {
		h.apiVersion = d.inherit.apiVersion
	}
	if h.kind == "" {
		h.kind = d.inherit.kind
	}
	ns := metaValue(n, "namespace")
	if ns == "" {
		ns = d.defaultNS
	}
	if d.skip(h, n.Line, ns, metaValue(n, "name")) {
		return h, false
	}
	// A duplicate is found before the document is decoded; name it from what the keys say.
	d.named = Document{Kind: h.kind, Namespace: ns, Name: metaValue(n, "name")}
	d.doc = &d.named
	ok := d.duplicateKeys(n)
	d.doc = nil
	return h, ok
}

// metaValue is a scalar of metadata as written, for naming a document before it is decoded.
func metaValue(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "metadata" {
			continue
		}
		m := resolveAlias(n.Content[i+1])
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == key {
				return resolveAlias(m.Content[j+1]).Value
			}
		}
	}
	return ""
}

// listMetaFields are the keys a Kubernetes list may carry besides items.
var listMetaFields = map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "items": true}

// decodeTop decodes one YAML document of a stream: a single object, or a list whose items are
// decoded one by one, each with its own findings, so that one bad item does not drop the others.
// The decoders are valid until the next call with in.
func decodeTop(file, ns string, n *yaml.Node, in *interner) []*decoder {
	root := n
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root = resolveAlias(root); root != nil && root.Kind == yaml.MappingNode {
		// A list's own keys may come from a merge key too; its items are expanded one by one, each
		// by its own decoder, so that a bad merge in one item drops that item only. A merge that
		// fails here is reported by document, which expands the same mapping again.
		if pairs, err := newMerger().merged("", root); err == nil {
			top := &yaml.Node{Kind: yaml.MappingNode, Line: root.Line, Column: root.Column, Content: pairs}
			if h := readHeader(top); h.isList() {
				return decodeList(file, ns, top, h, in)
			}
		}
	}
	d, ds := in.decoderFor(file, ns)
	d.out = d.document(n)
	return ds
}

// decoderFor returns a decoder for one document, alone in the slice: the interner's own,
// reset, since the decoders decodeTop returns are read once by the caller before the next
// document (streamResult.add) and an allocation per document was a tenth of the decode's.
func (in *interner) decoderFor(file, ns string) (*decoder, []*decoder) {
	if in == nil {
		d := &decoder{file: file, defaultNS: ns}
		return d, []*decoder{d}
	}
	in.top = decoder{file: file, defaultNS: ns, intern: in}
	in.tops[0] = &in.top
	return &in.top, in.tops[:]
}

func decodeList(file, ns string, n *yaml.Node, h header, in *interner) []*decoder {
	d := &decoder{file: file, defaultNS: ns, intern: in}
	out := []*decoder{d}
	if budget := maxExpandedNodes; !withinBudget(n, &budget, 0) {
		d.fail(n.Line, "", "list too large once its YAML aliases are expanded (more than %d values, or nested deeper than %d)", maxExpandedNodes, maxDepth)
		return out
	}
	var items *yaml.Node
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if line, dup := first[k.Value]; dup {
			d.failDuplicate(k.Line, k.Value, k.Value, line)
			continue
		}
		first[k.Value] = k.Line
		if !listMetaFields[k.Value] {
			d.fail(k.Line, k.Value, "unknown field %q in a %s (want apiVersion, kind, metadata, items)", k.Value, h.kind)
		}
		if k.Value == "items" {
			items = resolveAlias(n.Content[i+1])
		}
	}
	if len(d.diags) > 0 || items == nil || isNull(items) {
		return out
	}
	if items.Kind != yaml.SequenceNode {
		d.fail(items.Line, "items", "expected a list")
		return out
	}
	for _, item := range items.Content {
		id := &decoder{file: file, defaultNS: ns, intern: in}
		if h.kind != "List" {
			// A typed list's items may leave out their kind and apiVersion, as the API server sends them.
			id.inherit = header{apiVersion: h.apiVersion, kind: strings.TrimSuffix(h.kind, "List")}
		}
		id.out = id.document(item)
		out = append(out, id)
	}
	return out
}
