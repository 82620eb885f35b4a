// Package mcp turns a registry snapshot's documents into Istio's MCP-over-xDS resources and back,
// so that one `meshentry xds` can hand its registry to a fleet of `meshentry run` proxies (or to
// Istio tooling that reads MCP, such as istiod's xds:// config sources).
package mcp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// Type URLs of the MCP collections, as istiod names them (group/version/Kind).
const (
	ServiceEntryType    = "networking.istio.io/v1alpha3/ServiceEntry"
	DestinationRuleType = "networking.istio.io/v1alpha3/DestinationRule"
	VirtualServiceType  = "networking.istio.io/v1alpha3/VirtualService"
	GatewayType         = "networking.istio.io/v1alpha3/Gateway"
	SidecarType         = "networking.istio.io/v1alpha3/Sidecar"
)

// TypeURLs lists the collections served, in the order a client subscribes to them: services
// first, so that rules naming them arrive after.
var TypeURLs = []string{ServiceEntryType, DestinationRuleType, VirtualServiceType, GatewayType, SidecarType}

// kindOf maps a type URL to the document kind it carries.
var kindOf = map[string]string{
	ServiceEntryType:    config.KindServiceEntry,
	DestinationRuleType: config.KindDestinationRule,
	VirtualServiceType:  config.KindVirtualService,
	GatewayType:         config.KindGateway,
	SidecarType:         config.KindSidecar,
}

// urlOf is kindOf reversed.
var urlOf = func() map[string]string {
	m := make(map[string]string, len(kindOf))
	for u, k := range kindOf {
		m[k] = u
	}
	return m
}()

// TypeURLOf returns the collection of a document kind, "" for kinds not served.
func TypeURLOf(kind string) string { return urlOf[kind] }

// KindOf returns the document kind a collection carries, "" for type URLs not served.
func KindOf(typeURL string) string { return kindOf[typeURL] }

// Resources returns the snapshot's documents as MCP resources by type URL, every collection
// present (empty ones too, so a client learns that it is empty). Each resource is an
// istio.mcp.v1alpha1.Resource named "namespace/name" whose Metadata.Version is a hash of its
// content, and so stays the same while the document does.
func Resources(snap *registry.Snapshot) map[string][]types.Resource {
	return resourcesWith(snap, Resource)
}

// resourcesWith is Resources with wrap making each document's resource.
func resourcesWith(snap *registry.Snapshot, wrap func(*config.Document) (*mcpapi.Resource, error)) map[string][]types.Resource {
	out := make(map[string][]types.Resource, len(TypeURLs))
	for _, u := range TypeURLs {
		out[u] = []types.Resource{}
	}
	seen := map[string]bool{}
	for _, doc := range snap.Documents {
		u := TypeURLOf(doc.Kind)
		key := u + "\x00" + doc.Namespace + "/" + doc.Name
		if u == "" || doc.Spec == nil || seen[key] {
			continue // validation already reported a duplicate; the first one is the one that serves
		}
		r, err := wrap(doc)
		if err != nil {
			continue // a spec that cannot be marshalled never passed validation
		}
		seen[key] = true
		out[u] = append(out[u], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b types.Resource) int {
			return strings.Compare(a.(*mcpapi.Resource).GetMetadata().GetName(), b.(*mcpapi.Resource).GetMetadata().GetName())
		})
	}
	return out
}

// Resource wraps one document as istiod's MCP generator does: metadata (name "namespace/name",
// content version, labels, creation time) and the spec as an Any body.
func Resource(doc *config.Document) (*mcpapi.Resource, error) {
	body, err := anypb.New(doc.Spec)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", doc.Kind, doc.Namespace, doc.Name, err)
	}
	md := &mcpapi.Metadata{Name: doc.Namespace + "/" + doc.Name, Labels: doc.Labels}
	if !doc.Created.IsZero() {
		md.CreateTime = timestamppb.New(doc.Created)
	}
	r := &mcpapi.Resource{Metadata: md, Body: body}
	v, err := contentVersion(r)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", doc.Kind, doc.Namespace, doc.Name, err)
	}
	md.Version = v
	return r, nil
}

// contentVersion hashes the resource as marshalled deterministically, before its version is set.
func contentVersion(r *mcpapi.Resource) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// NameOf returns the resource's "namespace/name".
func NameOf(r types.Resource) string {
	m, _ := r.(*mcpapi.Resource)
	return m.GetMetadata().GetName()
}

// VersionOf returns the resource's content version.
func VersionOf(r types.Resource) string {
	m, _ := r.(*mcpapi.Resource)
	return m.GetMetadata().GetVersion()
}
