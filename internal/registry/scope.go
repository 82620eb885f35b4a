package registry

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// ScopeProxy is who a Scope is computed for: the proxy's namespace and workload labels, and the
// mesh root namespace whose default Sidecar applies where a namespace has none.
type ScopeProxy struct {
	Namespace     string
	Labels        map[string]string
	RootNamespace string
}

// OutboundPolicy is a Sidecar's outboundTrafficPolicy mode.
type OutboundPolicy uint8

// Outbound policies; PolicyUnset leaves the decision to the proxy's --outbound-policy flag.
const (
	PolicyUnset OutboundPolicy = iota
	PolicyRegistryOnly
	PolicyAllowAny
)

// String names the policy as Istio spells it.
func (p OutboundPolicy) String() string {
	return [...]string{"", "REGISTRY_ONLY", "ALLOW_ANY"}[p]
}

// EgressProxy is where a Sidecar's outboundTrafficPolicy (mode ALLOW_ANY) sends traffic that
// matches no imported service, instead of the original destination.
type EgressProxy struct {
	Host   string
	Port   uint32
	Subset string
	// Cluster is outbound|PORT|SUBSET|HOST, as Istio names the egress proxy's cluster.
	Cluster string
	// Service and ServicePort are the declaration the traffic takes, nil when no ServiceEntry
	// visible to the proxy declares Host on Port (the traffic is then refused).
	Service     *Service
	ServicePort *Port
}

// Scope is what one proxy imports from one snapshot under the Sidecar that applies to it. It is
// computed once per snapshot and proxy (NewScope), immutable, and consulted by Match through
// Query.Scope without allocating. A nil *Scope imports everything exportTo lets the proxy see.
type Scope struct {
	// Sidecar is the document that applies, nil when none does; Why says how it was chosen.
	Sidecar *config.Document
	Why     string
	// Policy overrides the proxy's outbound policy when set; EgressProxy is its egressProxy.
	Policy      OutboundPolicy
	EgressProxy *EgressProxy

	snap      *Snapshot
	ns        string
	all       bool // no egress listener narrows anything (no Sidecar, or one without egress)
	listeners []egressListener
	// clusters is the view route destinations are looked up in (Clusters); it is this scope
	// itself when no listener narrows anything.
	clusters *Scope
	// anyListener makes imports accept a service any listener imports on the port, or that a
	// listener's VirtualServices route to: Istio's set of clusters, wider than what routes.
	anyListener bool
}

// egressListener is one egress listener of the Sidecar with the services it imports.
type egressListener struct {
	index int
	port  uint32 // 0: the catch-all listener, for every port no other listener takes
	hosts map[string][]string
	// imported holds the services this listener imports and, for each, the ports it is limited to
	// (nil: all of the service's ports); destinations those its VirtualServices route to, which
	// get clusters but no routes of their own.
	imported     map[*Service][]uint32
	destinations map[*Service][]uint32
	// virtualServices are the mesh VirtualServices this listener imports.
	virtualServices map[*config.Document]bool
}

// NewScope finds the Sidecar that applies to p in snap and computes what it imports: a Sidecar
// in p's namespace whose workloadSelector matches p's labels (the oldest, if several), else the
// namespace's Sidecar without selector, else the root namespace's one without selector.
func NewScope(snap *Snapshot, p ScopeProxy) *Scope {
	sc := &Scope{snap: snap, ns: p.Namespace, all: true}
	sc.clusters = sc
	doc, why := applicableSidecar(snap.Documents, p)
	if doc == nil {
		sc.Why = fmt.Sprintf("no Sidecar applies to namespace %s (nor in the root namespace %s): every service exported to it is imported", p.Namespace, p.RootNamespace)
		return sc
	}
	sc.Sidecar, sc.Why = doc, why
	spec := doc.Sidecar()
	sc.policyFrom(spec.GetOutboundTrafficPolicy())
	if len(spec.GetEgress()) == 0 {
		return sc
	}
	sc.all = false
	for i, e := range spec.GetEgress() {
		l := egressListener{index: i, port: e.GetPort().GetNumber(), hosts: map[string][]string{},
			imported: map[*Service][]uint32{}, destinations: map[*Service][]uint32{}, virtualServices: map[*config.Document]bool{}}
		for _, h := range e.GetHosts() {
			ns, name, ok := strings.Cut(h, "/")
			if !ok {
				continue // validation reports it
			}
			if ns == "." {
				// "." is the namespace the Sidecar is applied in, which for the root namespace's
				// default is the proxy's, not the root's.
				ns = p.Namespace
			}
			l.hosts[ns] = append(l.hosts[ns], NormalizeHost(name))
		}
		sc.importServices(&l)
		sc.importDestinations(&l)
		sc.listeners = append(sc.listeners, l)
	}
	view := *sc
	view.anyListener = true
	sc.clusters = &view
	view.clusters = &view
	return sc
}

// Clusters is the view of sc that route destinations are looked up in: a service has a cluster
// when any egress listener imports it on the port, or when a VirtualService one imports routes to
// it, as Istio builds a sidecar's clusters from the union of its listeners' services and their
// routes' destinations. nil stays nil.
func (sc *Scope) Clusters() *Scope {
	if sc == nil {
		return nil
	}
	return sc.clusters
}

// applicableSidecar picks the Sidecar for p and says why it applies.
func applicableSidecar(docs []*config.Document, p ScopeProxy) (*config.Document, string) {
	var selected, nsDefault, rootDefault *config.Document
	older := func(cur, d *config.Document) bool { return cur == nil || d.OlderThan(cur) }
	for _, d := range docs {
		spec := d.Sidecar()
		if spec == nil {
			continue
		}
		sel := spec.GetWorkloadSelector()
		switch {
		case d.Namespace == p.Namespace && sel != nil:
			if labelsMatch(sel.GetLabels(), p.Labels) && older(selected, d) {
				selected = d
			}
		case d.Namespace == p.Namespace:
			if older(nsDefault, d) {
				nsDefault = d
			}
		case d.Namespace == p.RootNamespace && sel == nil:
			if older(rootDefault, d) {
				rootDefault = d
			}
		}
	}
	switch {
	case selected != nil:
		return selected, fmt.Sprintf("its workloadSelector %s matches the proxy's labels", formatLabels(selected.Sidecar().GetWorkloadSelector().GetLabels()))
	case nsDefault != nil:
		return nsDefault, fmt.Sprintf("it is the default (no workloadSelector) of namespace %s", p.Namespace)
	case rootDefault != nil:
		return rootDefault, fmt.Sprintf("namespace %s has no Sidecar, so the root namespace %s's default applies", p.Namespace, p.RootNamespace)
	}
	return nil, ""
}

// labelsMatch reports whether every selector label is among the workload's.
func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func formatLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + l[k]
	}
	return "{" + strings.Join(keys, ",") + "}"
}

func (sc *Scope) policyFrom(otp *networking.OutboundTrafficPolicy) {
	if otp == nil {
		return
	}
	sc.Policy = PolicyRegistryOnly
	if otp.GetMode() == networking.OutboundTrafficPolicy_ALLOW_ANY {
		sc.Policy = PolicyAllowAny
	}
	ep := otp.GetEgressProxy()
	if ep == nil || sc.Policy != PolicyAllowAny {
		return // Istio uses egressProxy only under ALLOW_ANY
	}
	e := &EgressProxy{Host: NormalizeHost(ep.GetHost()), Port: ep.GetPort().GetNumber(), Subset: ep.GetSubset()}
	e.Cluster = fmt.Sprintf("outbound|%d|%s|%s", e.Port, e.Subset, e.Host)
	if IsHostName(e.Host) {
		f := filter{ns: sc.ns, port: e.Port}
		e.Service, e.ServicePort = sc.snap.lookupHost(e.Host, &f)
	}
	sc.EgressProxy = e
}

// importServices adds the services visible to the proxy that the listener's hosts name: an
// import for the service's own namespace is tried first, then the "*/" imports, as Istio does.
func (sc *Scope) importServices(l *egressListener) {
	for _, svc := range sc.snap.Services {
		if !svc.VisibleTo(sc.ns) || l.port != 0 && svc.Port(l.port) == nil {
			continue
		}
		if hostsCover(l.hosts[svc.Namespace], svc.Host) || hostsCover(l.hosts["*"], svc.Host) {
			l.imported[svc] = nil
		}
	}
}

// hostsCover reports whether one of the egress hosts takes in the service host.
func hostsCover(hosts []string, svcHost string) bool {
	for _, h := range hosts {
		if hostSubsetOf(svcHost, h) {
			return true
		}
	}
	return false
}

// hostSubsetOf reports whether every name svcHost covers is covered by the egress host h: "*"
// covers everything, "*.x" covers "a.x", "*.a.x" and "*.x", an exact host only itself. A service
// "*.x" is not imported by the narrower "a.x".
func hostSubsetOf(svcHost, h string) bool {
	switch {
	case h == "*":
		return true
	case strings.HasPrefix(h, "*."):
		if strings.HasPrefix(svcHost, "*.") {
			return strings.HasSuffix(svcHost[1:], h[1:])
		}
		return strings.HasSuffix(svcHost, h[1:])
	}
	return svcHost == h
}

// listenerFor returns the egress listener that serves port: the one declaring it, else the
// catch-all, in the order written (Istio requires the catch-all last and stops at it).
func (sc *Scope) listenerFor(port uint32) *egressListener {
	for i := range sc.listeners {
		if l := &sc.listeners[i]; l.port == 0 || l.port == port {
			return l
		}
	}
	return nil
}

// imports reports whether the proxy imports svc on port.
func (sc *Scope) imports(svc *Service, port uint32) bool {
	if sc == nil || sc.all {
		return true
	}
	if sc.anyListener {
		for i := range sc.listeners {
			l := &sc.listeners[i]
			if (l.port == 0 || l.port == port) && (inPorts(l.imported, svc, port) || inPorts(l.destinations, svc, port)) {
				return true
			}
		}
		return false
	}
	l := sc.listenerFor(port)
	return l != nil && inPorts(l.imported, svc, port)
}

// inPorts reports whether set holds svc for port.
func inPorts(set map[*Service][]uint32, svc *Service, port uint32) bool {
	ports, ok := set[svc]
	if !ok {
		return false
	}
	if ports == nil {
		return true
	}
	for _, p := range ports {
		if p == port {
			return true
		}
	}
	return false
}

// allowAny is the outbound policy under this scope, given the proxy's flag.
func (sc *Scope) allowAny(flag bool) bool {
	if sc == nil {
		return flag
	}
	switch sc.Policy {
	case PolicyAllowAny:
		return true
	case PolicyRegistryOnly:
		return false
	}
	return flag
}

// AllowAny is the outbound policy the proxy applies: the Sidecar's outboundTrafficPolicy when it
// sets one, else flag (--outbound-policy ALLOW_ANY).
func (sc *Scope) AllowAny(flag bool) bool { return sc.allowAny(flag) }

func (sc *Scope) egressProxy() *EgressProxy {
	if sc == nil {
		return nil
	}
	return sc.EgressProxy
}
