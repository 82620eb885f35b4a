// Package envoy translates a registry snapshot into the Envoy resources (clusters, endpoints,
// listeners, routes) that Istio's sidecar would receive for the same ServiceEntries, per proxy,
// and into the API-listener form proxyless gRPC clients consume.
package envoy

import (
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Node is what the translator needs to know of one connected proxy, read from its xDS node.
type Node struct {
	// ID is the node id as sent; Name and Namespace come from Istio's
	// sidecar~IP~NAME.NS~NS.svc.cluster.local form or the NAMESPACE metadata.
	ID        string
	IP        string
	Name      string
	Namespace string
	Labels    map[string]string
	// Locality is region/zone/subzone; Network is ISTIO_META_NETWORK.
	Locality string
	Network  string
	// Generator is the GENERATOR metadata: "grpc" asks for the proxyless form.
	Generator string
}

// Proxyless reports whether the node is a proxyless gRPC client.
func (n Node) Proxyless() bool { return n.Generator == "grpc" }

// ParseNode reads Istio's node id and metadata. Unknown or missing parts are left empty; the
// namespace defaults to "default" as Istio's does for a workload without one.
func ParseNode(n *core.Node) Node {
	out := Node{ID: n.GetId(), Labels: map[string]string{}}
	parts := strings.Split(out.ID, "~")
	if len(parts) == 4 {
		out.IP = parts[1]
		out.Name, out.Namespace, _ = strings.Cut(parts[2], ".")
		if ns, _, ok := strings.Cut(parts[3], "."); ok && out.Namespace == "" {
			out.Namespace = ns
		}
	} else {
		out.Name = out.ID
	}
	md := n.GetMetadata().GetFields()
	str := func(keys ...string) string {
		for _, k := range keys {
			if v := md[k].GetStringValue(); v != "" {
				return v
			}
		}
		return ""
	}
	if ns := str("NAMESPACE", "ISTIO_META_NAMESPACE"); ns != "" {
		out.Namespace = ns
	}
	if out.Namespace == "" {
		out.Namespace = "default"
	}
	if name := str("NAME", "ISTIO_META_NAME"); name != "" && len(parts) != 4 {
		out.Name = name
	}
	for k, v := range md["LABELS"].GetStructValue().GetFields() {
		out.Labels[k] = v.GetStringValue()
	}
	out.Network = str("NETWORK", "ISTIO_META_NETWORK")
	out.Generator = str("GENERATOR", "ISTIO_META_GENERATOR")
	out.Locality = localityString(n.GetLocality())
	if out.Locality == "" {
		out.Locality = str("LOCALITY", "ISTIO_META_LOCALITY")
	}
	return out
}

// NodeMetadata builds the metadata ParseNode reads, for bootstraps and tests.
func NodeMetadata(namespace string, labels map[string]string, generator string) *structpb.Struct {
	fields := map[string]any{"NAMESPACE": namespace}
	if len(labels) > 0 {
		l := map[string]any{}
		for k, v := range labels {
			l[k] = v
		}
		fields["LABELS"] = l
	}
	if generator != "" {
		fields["GENERATOR"] = generator
	}
	s, _ := structpb.NewStruct(fields) // strings and maps of strings always convert
	return s
}

func localityString(l *core.Locality) string {
	if l == nil || (l.Region == "" && l.Zone == "" && l.SubZone == "") {
		return ""
	}
	return strings.TrimRight(l.Region+"/"+l.Zone+"/"+l.SubZone, "/")
}

// ParseLocality splits region/zone/subzone into Envoy's Locality.
func ParseLocality(s string) *core.Locality {
	p := strings.SplitN(s, "/", 3)
	for len(p) < 3 {
		p = append(p, "")
	}
	return &core.Locality{Region: p[0], Zone: p[1], SubZone: p[2]}
}
