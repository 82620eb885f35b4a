package validate

import (
	"sort"
	"strings"

	"github.com/meshentry/meshentry/internal/config"
)

// gatewayRef resolves a VirtualService's gateway reference to "ns/name" as Istio does: a bare
// name is in the VirtualService's namespace, and the older "name.ns.svc.cluster.local" form
// names ns/name.
func gatewayRef(ref, ns string) string {
	if g, name, ok := strings.Cut(ref, "/"); ok {
		if g == "." {
			g = ns
		}
		return g + "/" + name
	}
	if name, rest, ok := strings.Cut(ref, "."); ok {
		g, _, _ := strings.Cut(rest, ".")
		return g + "/" + name
	}
	return ns + "/" + ref
}

// unknownGateways is Istio's VirtualService GatewayAnalyzer: every gateway a VirtualService or
// one of its matches names must exist (IST0101). A bare name that exists only in another
// namespace is still reported, saying which Gateway meshentry binds instead.
func (a *analysis) unknownGateways(docs []*config.Document) {
	known := map[string]bool{}
	byName := map[string][]string{}
	for _, d := range docs {
		if d.Gateway() != nil {
			known[qualifiedName(d)] = true
			byName[d.Name] = append(byName[d.Name], qualifiedName(d))
		}
	}
	for _, d := range docs {
		vs := d.VirtualService()
		if vs == nil {
			continue
		}
		check := func(field, ref string) {
			if ref == meshGateway || known[gatewayRef(ref, d.Namespace)] {
				return
			}
			g := gatewayRef(ref, d.Namespace)
			if others := byName[ref]; !strings.ContainsAny(ref, "/.") && len(others) == 1 {
				a.warn(d, CodeGatewayNotFound, field,
					"Referenced gateway not found: %q (a bare name means the VirtualService's namespace); meshentry binds %s, the only Gateway of that name, where Istio would bind nothing — write %q",
					g, others[0], others[0])
				return
			}
			a.warn(d, CodeGatewayNotFound, field, "Referenced gateway not found: %q, so these routes apply at no gateway", g)
		}
		for i, g := range vs.Gateways {
			check(at("spec.gateways", i, ""), g)
		}
		for i, h := range vs.Http {
			for j, m := range h.GetMatch() {
				for k, g := range m.GetGateways() {
					check(at(at(at("spec.http", i, ".match"), j, ".gateways"), k, ""), g)
				}
			}
		}
	}
}

// meshHostConflicts is Istio's ConflictingMeshGatewayVirtualServiceHosts (IST0109): two
// VirtualServices bound to the mesh that a namespace sees both of, naming the same host. A sidecar
// takes only the oldest one's rules for that host.
func (a *analysis) meshHostConflicts(docs []*config.Document) {
	type claim struct {
		doc   *config.Document
		index int
	}
	byHost := map[string][]claim{}
	for _, d := range docs {
		vs := d.VirtualService()
		if vs == nil || !boundToMesh(vs) {
			continue
		}
		for i, h := range vs.Hosts {
			if h != "" {
				key := expandHost(h, d.Namespace)
				byHost[key] = append(byHost[key], claim{doc: d, index: i})
			}
		}
	}
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		cs := byHost[h]
		if len(cs) < 2 {
			continue
		}
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].doc.OlderThan(cs[j].doc) })
		for _, c := range cs[1:] {
			if !shareAudience(cs[0].doc, c.doc) {
				continue
			}
			a.warn(c.doc, CodeMeshHostConflict, at("spec.hosts", c.index, ""),
				"The VirtualServices %s and %s associated with mesh gateway define the same host %s; a sidecar uses only %s for it, since %s. Merge them into one VirtualService.",
				qualifiedName(cs[0].doc), qualifiedName(c.doc), h, qualifiedName(cs[0].doc), whyWins(cs[0].doc, c.doc))
		}
	}
}

// shareAudience reports whether some namespace sees both VirtualServices (exportTo).
func shareAudience(x, y *config.Document) bool {
	_, ok := exportedTo(x, x.VirtualService().ExportTo).overlap(exportedTo(y, y.VirtualService().ExportTo))
	return ok
}
