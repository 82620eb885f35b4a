package validate

import (
	"fmt"
	"sort"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// Analyze looks across documents for problems no single one shows and returns them as warnings. It
// does not validate: pass it the documents that Documents accepted.
func Analyze(docs []*config.Document, opts ...AnalyzeOption) []diag.Diagnostic {
	a := newAnalysis(docs, opts)
	a.portClashes()
	a.openNonePorts()
	a.sharedHosts()
	a.conflictingProtocols()
	a.hostTwiceInNamespace()
	a.others(docs)
	return a.diags
}

// analyzeOthers is Analyze's checks of the documents of other kinds than ServiceEntry alone.
func analyzeOthers(docs []*config.Document, opts []AnalyzeOption) []diag.Diagnostic {
	a := newAnalysis(docs, opts)
	a.others(docs)
	return a.diags
}

// newAnalysis collects the ServiceEntries of docs and their hosts.
func newAnalysis(docs []*config.Document, opts []AnalyzeOption) *analysis {
	a := &analysis{}
	for _, opt := range opts {
		opt(a)
	}
	// Sized once: growing the lists over 100,000 entries was a third of the analysis.
	entries, hosts := 0, 0
	for _, d := range docs {
		if d == nil {
			continue
		}
		if se := d.ServiceEntry(); se != nil {
			entries++
			hosts += len(se.Hosts)
		}
	}
	a.entries = make([]*config.Document, 0, entries)
	a.hosts = make([]hostDecl, 0, hosts)
	for _, d := range docs {
		if d == nil {
			continue
		}
		if se := d.ServiceEntry(); se != nil {
			a.entries = append(a.entries, d)
			for i, h := range se.Hosts {
				a.hosts = append(a.hosts, hostDecl{doc: d, index: i, host: h, audience: exportedTo(d, se.ExportTo)})
			}
		}
	}
	return a
}

// others runs the checks of the DestinationRules, VirtualServices and Gateways among docs.
func (a *analysis) others(docs []*config.Document) {
	a.mergedDestinationRules(docs)
	a.undefinedSubsets(docs)
	a.unknownGateways(docs)
	a.meshHostConflicts(docs)
	for _, d := range docs {
		if d == nil {
			continue
		}
		switch spec := d.Spec.(type) {
		case *networking.DestinationRule:
			a.destinationRule(d, spec)
		case *networking.VirtualService:
			a.virtualService(d, spec)
		case *networking.Gateway:
			a.gateway(d, spec)
		}
	}
}

type analysis struct {
	entries []*config.Document // ServiceEntries, in load order
	hosts   []hostDecl         // every ServiceEntry host
	diags   []diag.Diagnostic
	// dnsProxy says the proxy answers DNS with allocated addresses (WithDNSProxy).
	dnsProxy bool
	// groups are hostGroups' result, made once.
	groups  [][]hostDecl
	grouped bool
}

// hostDecl is one host of one ServiceEntry, with where it is visible.
type hostDecl struct {
	doc      *config.Document
	index    int
	host     string
	audience audience
}

func (a *analysis) warn(d *config.Document, code, field, format string, args ...any) {
	r := report{doc: d}
	r.warnf(code, field, format, args...)
	a.diags = append(a.diags, r.diags...)
}

// tcpClaim is an address-less opaque TCP port: it takes its port number for every destination IP.
type tcpClaim struct {
	doc      *config.Document
	index    int
	port     *networking.ServicePort
	audience audience
}

// portClashes reports ServiceEntries that, having no addresses, claim the same opaque TCP port for
// namespaces that see both: only the one that wins conflicts gets that traffic.
func (a *analysis) portClashes() {
	byPort := map[uint32][]tcpClaim{}
	for _, d := range a.entries {
		se := d.ServiceEntry()
		aud := exportedTo(d, se.ExportTo)
		if len(se.Addresses) > 0 || aud.empty() {
			continue
		}
		for i, p := range se.Ports {
			if p != nil && isOpaqueTCP(p.Protocol) {
				byPort[p.Number] = append(byPort[p.Number], tcpClaim{doc: d, index: i, port: p, audience: aud})
			}
		}
	}
	numbers := make([]uint32, 0, len(byPort))
	for n := range byPort {
		numbers = append(numbers, n)
	}
	sort.Slice(numbers, func(i, j int) bool { return numbers[i] < numbers[j] })
	for _, n := range numbers {
		a.portClashesAt(n, byPort[n])
	}
}

// portClashesAt is portClashes for the claims of port n, in load order; it sorts them.
func (a *analysis) portClashesAt(n uint32, claims []tcpClaim) {
	sort.SliceStable(claims, func(i, j int) bool { return claims[i].doc.OlderThan(claims[j].doc) })
	for i, loser := range claims {
		for _, winner := range claims[:i] {
			where, ok := winner.audience.overlap(loser.audience)
			if !ok {
				continue
			}
			if a.dnsProxy && autoAllocated(winner.doc) && autoAllocated(loser.doc) {
				a.dnsProxyPortNote(loser, winner)
				break
			}
			a.warn(loser.doc, CodeTCPPortClash, at("spec.ports", loser.index, ".number"),
				"port %d (%s) has no spec.addresses, so it claims every destination IP on port %d, as does %s (%s); "+
					"where both are visible (%s), opaque TCP traffic on port %d goes to %s because %s; give one of them spec.addresses to split the traffic by destination IP",
				n, describeProtocol(loser.port.Protocol), n, qualifiedName(winner.doc), position(winner.doc, at("spec.ports", winner.index, ".number")),
				where, n, qualifiedName(winner.doc), whyWins(winner.doc, loser.doc))
			break
		}
	}
}

// openNonePorts reports resolution NONE on an address-less opaque TCP port: the proxy forwards to
// whatever IP the client dialled, so that port is open to every destination.
func (a *analysis) openNonePorts() {
	for _, d := range a.entries {
		a.openNonePortsOf(d)
	}
}

// openNonePortsOf is openNonePorts for one ServiceEntry.
func (a *analysis) openNonePortsOf(d *config.Document) {
	se := d.ServiceEntry()
	if se.Resolution != networking.ServiceEntry_NONE || len(se.Addresses) > 0 || exportedTo(d, se.ExportTo).empty() {
		return
	}
	for i, p := range se.Ports {
		if p != nil && isOpaqueTCP(p.Protocol) {
			a.warn(d, CodeNonePortOpen, at("spec.ports", i, ".number"),
				"resolution NONE without spec.addresses lets connections to any IP on port %d (%s) through (0.0.0.0:%d), since the proxy forwards them to whatever address the client dialled; list the destination IPs or CIDR blocks in spec.addresses",
				p.Number, describeProtocol(p.Protocol), p.Number)
		}
	}
}

// sharedHosts reports a host declared by ServiceEntries of several namespaces that some namespace
// sees together: which entry a proxy uses then depends on where the proxy runs.
func (a *analysis) sharedHosts() {
	for _, decls := range a.hostGroups() {
		a.sharedHostsIn(decls)
	}
}

// sharedHostsIn is sharedHosts for the declarations of one host, in load order.
func (a *analysis) sharedHostsIn(decls []hostDecl) {
	docs := make([]*config.Document, len(decls))
	for i, h := range decls {
		docs[i] = h.doc
	}
	olderFirst(docs)
	oldest := docs[0]
	for _, h := range decls {
		for _, o := range decls {
			if o.doc.Namespace == h.doc.Namespace {
				continue
			}
			where, ok := h.audience.overlap(o.audience)
			if !ok {
				continue
			}
			a.warn(h.doc, CodeHostInManyNamespaces, at("spec.hosts", h.index, ""),
				"host %q is also declared by %s (%s); where both are visible (%s), a proxy uses the entry of its own namespace if it has one, else the oldest (%s)",
				h.host, qualifiedName(o.doc), position(o.doc, at("spec.hosts", o.index, "")), where, qualifiedName(oldest))
		}
	}
}

func (a *analysis) virtualService(d *config.Document, vs *networking.VirtualService) {
	if boundToMesh(vs) {
		for i, h := range vs.Hosts {
			if h == "" || h == "*" || isIP(h) {
				continue
			}
			if msg := a.undeclared(h, d.Namespace); msg != "" {
				a.warn(d, CodeVirtualServiceHostSE, at("spec.hosts", i, ""), "%s, so sidecars have no service to apply these routes to", msg)
			}
		}
	}
	for _, ref := range routeDestinations(vs) {
		if ref.host == "" || ref.host == "*" {
			continue
		}
		if msg := a.undeclared(ref.host, d.Namespace); msg != "" {
			a.warn(d, CodeReferencedHostNotFound, ref.field, "%s, so this route has nowhere to send traffic", msg)
		}
	}
}

func (a *analysis) gateway(d *config.Document, gw *networking.Gateway) {
	for i, s := range gw.Servers {
		if s == nil {
			continue
		}
		for j, h := range s.Hosts {
			_, name, slash := strings.Cut(h, "/")
			if !slash {
				name = h
			}
			if name == "" || name == "*" || isIP(name) {
				continue
			}
			if msg := a.undeclared(name, d.Namespace); msg != "" {
				a.warn(d, CodeGatewayHostSE, at(at("spec.servers", i, ".hosts"), j, ""),
					"%s; an egress gateway needs a ServiceEntry for every host it sends out (a host served by an ingress gateway needs none)", msg)
			}
		}
	}
}

// undeclared explains why no ServiceEntry visible from namespace ns declares ref, or returns "" when
// one does. A short name is read as Kubernetes would, <name>.<ns>.svc.cluster.local.
func (a *analysis) undeclared(ref, ns string) string {
	candidates := []string{ref}
	short := !strings.Contains(ref, ".")
	if short {
		candidates = append(candidates, ref+"."+ns+".svc.cluster.local")
	}
	var hidden *hostDecl
	for _, c := range candidates {
		for i, h := range a.hosts {
			if !hostsOverlap(c, h.host) {
				continue
			}
			if h.audience.includes(ns) {
				return ""
			}
			if hidden == nil {
				hidden = &a.hosts[i]
			}
		}
	}
	switch {
	case hidden != nil:
		se := hidden.doc.ServiceEntry()
		return fmt.Sprintf("host %q is declared by %s (%s), but its exportTo %v does not include namespace %q",
			ref, qualifiedName(hidden.doc), position(hidden.doc, at("spec.hosts", hidden.index, "")), se.ExportTo, ns)
	case short:
		return fmt.Sprintf("short name %q means %s.%s.svc.cluster.local, a Kubernetes Service; no ServiceEntry declares it and meshentry has no Kubernetes source yet",
			ref, ref, ns)
	case isKubernetesName(ref):
		return fmt.Sprintf("host %q names a Kubernetes Service; no ServiceEntry declares it and meshentry has no Kubernetes source yet", ref)
	}
	return fmt.Sprintf("no ServiceEntry visible to namespace %q declares host %q", ns, ref)
}

// isKubernetesName reports a host in the cluster's service domain, such as x.ns.svc.cluster.local.
func isKubernetesName(h string) bool {
	h = normalHost(h)
	return strings.HasSuffix(h, ".svc") || strings.HasSuffix(h, ".cluster.local")
}

func qualifiedName(d *config.Document) string { return d.Namespace + "/" + d.Name }

// position is file:line of a field, for pointing at another document in a message.
func position(d *config.Document, field string) string {
	if d.File == "" {
		return "line " + fmt.Sprint(d.LineOf(field))
	}
	return fmt.Sprintf("%s:%d", d.File, d.LineOf(field))
}

// whyWins explains config.Document.OlderThan for a winner and a loser, in the words users need to
// change the outcome.
func whyWins(w, l *config.Document) string {
	switch {
	case !w.Created.IsZero() && !l.Created.IsZero() && !w.Created.Equal(l.Created):
		return fmt.Sprintf("it was created first (creationTimestamp %s, this one %s)", w.Created.Format(time.RFC3339), l.Created.Format(time.RFC3339))
	case !w.Created.IsZero() && l.Created.IsZero():
		return fmt.Sprintf("it has a creationTimestamp (%s) and this one has none, which counts as created at load time", w.Created.Format(time.RFC3339))
	}
	return fmt.Sprintf("neither is older by creationTimestamp, so the one loaded first wins (%s before %s)", position(w, ""), position(l, ""))
}
