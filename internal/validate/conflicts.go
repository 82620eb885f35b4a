package validate

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// hostGroups returns the declarations of each host (compared as DNS compares names), one per
// document, in sorted host order, so that findings come out in a stable order.
func (a *analysis) hostGroups() [][]hostDecl {
	if a.grouped {
		// Three checks read the groups; with 100,000 entries making them is most of the analysis.
		return a.groups
	}
	byHost := make(map[string][]hostDecl, len(a.hosts))
	var shared []string
	for _, h := range a.hosts {
		key := normalHost(h.host)
		group := byHost[key]
		dup := false
		for _, o := range group {
			dup = dup || o.doc == h.doc
		}
		if !dup {
			if len(group) == 1 {
				shared = append(shared, key)
			}
			byHost[key] = append(group, h)
		}
	}
	sort.Strings(shared)
	groups := make([][]hostDecl, 0, len(shared))
	for _, key := range shared {
		groups = append(groups, byHost[key])
	}
	a.groups, a.grouped = groups, true
	return groups
}

// conflictingProtocols reports, as istioctl analyze's ConflictingServiceEntryProtocol (IST0177)
// does, ServiceEntries that declare the same host and port with different protocols for a
// namespace that sees them both: the proxy can serve the port as only one of them.
func (a *analysis) conflictingProtocols() {
	for _, decls := range a.hostGroups() {
		a.conflictingProtocolsIn(decls)
	}
}

// conflictingProtocolsIn is conflictingProtocols for the declarations of one host.
func (a *analysis) conflictingProtocolsIn(decls []hostDecl) {
	for _, h := range decls {
		reported := map[uint32]bool{}
		for i, p := range h.doc.ServiceEntry().Ports {
			if p == nil || reported[p.Number] {
				continue
			}
			var others []string
			protocols := map[string]bool{strings.ToUpper(p.Protocol): true}
			for _, o := range decls {
				if o.doc == h.doc {
					continue
				}
				if _, ok := h.audience.overlap(o.audience); !ok {
					continue
				}
				if op := portNumbered(o.doc.ServiceEntry(), p.Number); op != nil && !strings.EqualFold(op.Protocol, p.Protocol) {
					protocols[strings.ToUpper(op.Protocol)] = true
					others = append(others, fmt.Sprintf("%s (%s, %s)", qualifiedName(o.doc), describeProtocol(op.Protocol), position(o.doc, "metadata.name")))
				}
			}
			if len(others) == 0 {
				continue
			}
			reported[p.Number] = true
			a.warn(h.doc, CodeConflictingProtocol, at("spec.ports", i, ".protocol"),
				"host %q port %d is declared %s here and differently by %s; a proxy serves one port as one protocol (%s), so traffic of the others is misread",
				h.host, p.Number, describeProtocol(p.Protocol), strings.Join(others, ", "), protocolList(protocols))
		}
	}
}

// hostTwiceInNamespace reports a host that two ServiceEntries of one namespace declare: the
// entries are not merged, each port goes to the oldest entry declaring it, and the other's
// resolution and endpoints for that port are ignored.
func (a *analysis) hostTwiceInNamespace() {
	for _, decls := range a.hostGroups() {
		a.hostTwiceIn(decls)
	}
}

// hostTwiceIn is hostTwiceInNamespace for the declarations of one host.
func (a *analysis) hostTwiceIn(decls []hostDecl) {
	for _, h := range decls {
		for _, o := range decls {
			if o.doc == h.doc || o.doc.Namespace != h.doc.Namespace || !o.doc.OlderThan(h.doc) {
				continue
			}
			shared := sharedPorts(o.doc.ServiceEntry(), h.doc.ServiceEntry())
			outcome := "they share no port, so each port goes to the entry that declares it"
			if len(shared) > 0 {
				outcome = fmt.Sprintf("on the ports both declare (%s) %s gets the traffic because %s, and this entry's endpoints there are unused",
					strings.Join(shared, ", "), qualifiedName(o.doc), whyWins(o.doc, h.doc))
			}
			a.warn(h.doc, CodeHostTwiceInNamespace, at("spec.hosts", h.index, ""),
				"host %q is also declared by %s (%s) in the same namespace; entries are not merged: %s; declare the host in one ServiceEntry",
				h.host, qualifiedName(o.doc), position(o.doc, at("spec.hosts", o.index, "")), outcome)
			break
		}
	}
}

func portNumbered(se *networking.ServiceEntry, n uint32) *networking.ServicePort {
	for _, p := range se.Ports {
		if p != nil && p.Number == n {
			return p
		}
	}
	return nil
}

func sharedPorts(a, b *networking.ServiceEntry) []string {
	var out []string
	for _, p := range b.Ports {
		if p != nil && portNumbered(a, p.Number) != nil {
			out = append(out, fmt.Sprint(p.Number))
		}
	}
	return out
}

func protocolList(set map[string]bool) string {
	names := make([]string, 0, len(set))
	for p := range set {
		names = append(names, describeProtocol(p))
	}
	sort.Strings(names)
	return strings.Join(names, " or ")
}
