// Package config decodes networking.istio.io YAML and JSON documents into istio.io/api types,
// keeping the file and line of every field so that later stages can point at them.
package config

import (
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// Kinds this loader decodes; the v1beta1 and v1 API packages alias these same types.
const (
	KindServiceEntry    = "ServiceEntry"
	KindDestinationRule = "DestinationRule"
	KindVirtualService  = "VirtualService"
	KindGateway         = "Gateway"
	KindSidecar         = "Sidecar"
)

// Document is one decoded object with where it came from.
type Document struct {
	File       string
	Line       int // line of the document's first key
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Labels     map[string]string
	// Created is metadata.creationTimestamp; zero when the document does not set it.
	Created time.Time
	// Order ranks the document in load order, the tie-breaker after Created: greater for each
	// document after it, not always by one (Load gives each file a range of its own).
	Order int
	Spec  proto.Message

	lines lineTable
}

// LineOf returns the line of a field path such as "spec.endpoints[0].ports.https", falling back
// to the nearest enclosing field that exists in the source, then to the document's line.
func (d *Document) LineOf(path string) int {
	if l, ok := d.lines.lookup(path); ok {
		return l
	}
	return d.Line
}

// OlderThan reports whether d wins a conflict against o: older creation time first, then load order.
// A document without a timestamp counts as created at load time, after any that carry one.
func (d *Document) OlderThan(o *Document) bool {
	if !d.Created.Equal(o.Created) {
		if d.Created.IsZero() {
			return false
		}
		if o.Created.IsZero() {
			return true
		}
		return d.Created.Before(o.Created)
	}
	return d.Order < o.Order
}

// ServiceEntry returns the spec when the document is a ServiceEntry, else nil.
func (d *Document) ServiceEntry() *networking.ServiceEntry {
	se, _ := d.Spec.(*networking.ServiceEntry)
	return se
}

// DestinationRule returns the spec when the document is a DestinationRule, else nil.
func (d *Document) DestinationRule() *networking.DestinationRule {
	dr, _ := d.Spec.(*networking.DestinationRule)
	return dr
}

// VirtualService returns the spec when the document is a VirtualService, else nil.
func (d *Document) VirtualService() *networking.VirtualService {
	vs, _ := d.Spec.(*networking.VirtualService)
	return vs
}

// Gateway returns the spec when the document is a Gateway, else nil.
func (d *Document) Gateway() *networking.Gateway {
	gw, _ := d.Spec.(*networking.Gateway)
	return gw
}

// Sidecar returns the spec when the document is a Sidecar, else nil.
func (d *Document) Sidecar() *networking.Sidecar {
	sc, _ := d.Spec.(*networking.Sidecar)
	return sc
}

// NewDocument builds a document in code (tests, benchmarks, future sources) with field lines unknown.
func NewDocument(kind, namespace, name string, spec proto.Message) *Document {
	return &Document{APIVersion: "networking.istio.io/v1", Kind: kind, Namespace: namespace, Name: name, Spec: spec}
}
