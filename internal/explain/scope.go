package explain

import (
	"fmt"
	"io"

	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
)

// Sidecar is the Sidecar scoping of the proxy, in the report.
type Sidecar struct {
	// Name is "ns/name" of the Sidecar that applies, empty when none does; Why says how it was chosen.
	Name string `json:"name,omitempty"`
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Why  string `json:"why"`
	// OutboundTrafficPolicy is the mode the Sidecar sets, overriding --outbound-policy.
	OutboundTrafficPolicy string `json:"outboundTrafficPolicy,omitempty"`
	// EgressProxy is the cluster unmatched traffic goes to under the Sidecar's ALLOW_ANY.
	EgressProxy string `json:"egressProxy,omitempty"`
	// OutOfScope says why the service the destination names is not imported, when it is not.
	OutOfScope string `json:"outOfScope,omitempty"`
}

// scopeFor is the Sidecar scope of the proxy the request describes, as the proxy computes it.
func scopeFor(snap *registry.Snapshot, req Request) *registry.Scope {
	root := req.RootNamespace
	if root == "" {
		root = policy.DefaultRootNamespace
	}
	return registry.NewScope(snap, registry.ScopeProxy{Namespace: req.Namespace, Labels: req.Labels, RootNamespace: root})
}

// describeScope reports sc, and when q matched nothing (or only the egress proxy) under it but
// names a service exportTo shows, why the Sidecar leaves that service out; nil when no Sidecar
// applies, since everything exportTo shows is then imported.
func describeScope(snap *registry.Snapshot, sc *registry.Scope, q registry.Query, m registry.Match) *Sidecar {
	if sc.Sidecar == nil {
		return nil
	}
	out := &Sidecar{Why: sc.Why, OutboundTrafficPolicy: sc.Policy.String()}
	if d := sc.Sidecar; d != nil {
		out.Name, out.File, out.Line = d.Namespace+"/"+d.Name, d.File, d.Line
	}
	if ep := sc.EgressProxy; ep != nil {
		out.EgressProxy = ep.Cluster
	}
	if m.Outcome == registry.Matched && m.By != registry.ByEgressProxy {
		return out
	}
	q.Scope = nil
	if um := snap.Match(q, false); um.Outcome == registry.Matched {
		out.OutOfScope = sc.Excluded(um.Service, um.Port.Number)
	}
	return out
}

// noMatch says why nothing matched: the Sidecar's reason when it left out the service the
// destination names, else what the registry lacks.
func (s *Sidecar) noMatch(snap *registry.Snapshot, q registry.Query) string {
	if s != nil && s.OutOfScope != "" {
		return s.OutOfScope
	}
	return noMatchReason(snap, q)
}

// egressProxyReason says why traffic went to the Sidecar's egress proxy.
func egressProxyReason(sc *registry.Scope, m registry.Match) string {
	return fmt.Sprintf("no imported service matched; the Sidecar's outboundTrafficPolicy ALLOW_ANY sends it to its egressProxy %s (ServiceEntry %s/%s)",
		sc.EgressProxy.Cluster, m.Service.Namespace, m.Service.Entry)
}

func (s *Sidecar) writeText(w io.Writer) {
	name := s.Name
	if s.File != "" {
		name += fmt.Sprintf(" (%s:%d)", s.File, s.Line)
	}
	fmt.Fprintf(w, "sidecar:      %s — %s\n", name, s.Why)
	if s.OutboundTrafficPolicy != "" {
		fmt.Fprintf(w, "  outboundTrafficPolicy %s overrides --outbound-policy\n", s.OutboundTrafficPolicy)
	}
	if s.EgressProxy != "" {
		fmt.Fprintf(w, "  egressProxy: %s\n", s.EgressProxy)
	}
	if s.OutOfScope != "" {
		fmt.Fprintf(w, "  out of scope: %s\n", s.OutOfScope)
	}
}
