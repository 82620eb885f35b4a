package registry

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// importDestinations adds the hosts that the listener's VirtualServices route to, as Istio infers
// them: a sidecar that imports a VirtualService has clusters for its destinations even when its
// egress hosts do not name them, though no route of its own leads there (Clusters). A host the listener already imports keeps that import; otherwise the
// declaration in the proxy's namespace is taken, else the first visible namespace in
// alphabetical order. On the catch-all listener the import is limited to the destination ports
// the routes name, when they all name one.
func (sc *Scope) importDestinations(l *egressListener) {
	// have holds the destination hosts handled, a few; the hosts the listener imports are
	// looked up in the snapshot's index rather than copied into it.
	have := map[string]bool{}
	for _, d := range sc.snap.Documents {
		vs := d.VirtualService()
		if vs == nil || !vsForMesh(vs) || !vsVisible(vs, d.Namespace, sc.ns) || !sc.listenerTakesVS(l, vs, d.Namespace) {
			continue
		}
		l.virtualServices[d] = true
		for host, ports := range vsDestinations(vs) {
			if have[host] || sc.listenerImportsHost(l, host) {
				continue
			}
			have[host] = true
			for _, svc := range sc.declarations(host) {
				if l.port != 0 {
					if svc.Port(l.port) != nil {
						l.destinations[svc] = nil
					}
					continue
				}
				l.destinations[svc] = ports
			}
		}
	}
}

// listenerImportsHost reports whether the listener imports a declaration of host (exact, or a
// wildcard by its "*." spelling).
func (sc *Scope) listenerImportsHost(l *egressListener, host string) bool {
	cands := sc.snap.exact.get(host)
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		cands = sc.snap.wildcard.get(rest)
	}
	for _, svc := range cands {
		if _, ok := l.imported[svc]; ok {
			return true
		}
	}
	return false
}

// ImportsVirtualService reports whether the proxy's egress listener for port imports the
// VirtualService doc: one of its hosts and one of the listener's egress hosts, for the
// VirtualService's namespace or "*", cover each other. Without a Sidecar that narrows egress,
// every VirtualService is imported (exportTo is the route table's to apply).
func (sc *Scope) ImportsVirtualService(doc *config.Document, port uint32) bool {
	if sc == nil || sc.all {
		return true
	}
	l := sc.listenerFor(port)
	return l != nil && l.virtualServices[doc]
}

// vsForMesh reports whether a VirtualService binds sidecars: no gateways, or "mesh" among them.
func vsForMesh(vs *networking.VirtualService) bool {
	if len(vs.GetGateways()) == 0 {
		return true
	}
	for _, g := range vs.GetGateways() {
		if g == "mesh" {
			return true
		}
	}
	return false
}

// vsVisible applies a VirtualService's exportTo for a proxy in ns.
func vsVisible(vs *networking.VirtualService, vsNS, ns string) bool {
	all, none, to := exportSet(vs.GetExportTo(), vsNS)
	if all {
		return true
	}
	if none {
		return false
	}
	for _, n := range to {
		if n == ns {
			return true
		}
	}
	return false
}

// listenerTakesVS reports whether one of vs's hosts matches an egress host of the listener for
// vs's namespace or "*" (either one covering the other, Istio's sidecar rule for VirtualServices).
func (sc *Scope) listenerTakesVS(l *egressListener, vs *networking.VirtualService, vsNS string) bool {
	for _, h := range vs.GetHosts() {
		h = NormalizeHost(h)
		if vsHostTaken(l.hosts[vsNS], h) || vsHostTaken(l.hosts["*"], h) {
			return true
		}
	}
	return false
}

// vsHostTaken reports whether a VirtualService host and one of the egress hosts cover each other.
func vsHostTaken(hosts []string, h string) bool {
	for _, eh := range hosts {
		if hostSubsetOf(h, eh) || hostSubsetOf(eh, h) {
			return true
		}
	}
	return false
}

// vsDestinations lists the hosts vs routes or mirrors to, each with the ports its destinations
// name (nil when one of them names none, which means every port).
func vsDestinations(vs *networking.VirtualService) map[string][]uint32 {
	out := map[string][]uint32{}
	anyPort := map[string]bool{}
	add := func(d *networking.Destination) {
		if d == nil || d.GetHost() == "" {
			return
		}
		h := NormalizeHost(d.GetHost())
		if p := d.GetPort().GetNumber(); p != 0 && !anyPort[h] {
			out[h] = append(out[h], p)
			return
		}
		anyPort[h] = true
		out[h] = nil
	}
	for _, r := range vs.GetHttp() {
		for _, rd := range r.GetRoute() {
			add(rd.GetDestination())
		}
		add(r.GetMirror())
		for _, m := range r.GetMirrors() {
			add(m.GetDestination())
		}
	}
	for _, r := range vs.GetTls() {
		for _, rd := range r.GetRoute() {
			add(rd.GetDestination())
		}
	}
	for _, r := range vs.GetTcp() {
		for _, rd := range r.GetRoute() {
			add(rd.GetDestination())
		}
	}
	return out
}

// declarations returns the visible services declaring host exactly (a wildcard host by its
// "*." spelling) in the namespace that owns it for the proxy: its own, else the first visible in
// alphabetical order.
func (sc *Scope) declarations(host string) []*Service {
	cands := sc.snap.exact.get(host)
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		cands = sc.snap.wildcard.get(rest)
	}
	var nss []string
	for _, svc := range cands {
		if svc.VisibleTo(sc.ns) {
			nss = append(nss, svc.Namespace)
		}
	}
	if len(nss) == 0 {
		return nil
	}
	sort.Strings(nss)
	owner := nss[0]
	for _, n := range nss {
		if n == sc.ns {
			owner = n
		}
	}
	var out []*Service
	for _, svc := range cands {
		if svc.Namespace == owner && svc.VisibleTo(sc.ns) {
			out = append(out, svc)
		}
	}
	return out
}

// VisibleHost answers the DNS proxy's question "may this proxy reach host at all": it returns the
// service a proxy under sc gets for host (normalized, exact before the most specific wildcard) on
// any port the Sidecar imports, or nil. A nil scope applies exportTo alone.
func (s *Snapshot) VisibleHost(host string, sc *Scope, ns string) *Service {
	host = NormalizeHost(host)
	if !IsHostName(host) {
		return nil
	}
	try := func(cands []*Service) *Service {
		for _, svc := range cands {
			for i := range svc.Ports {
				f := filter{ns: ns, port: svc.Ports[i].Number, scope: sc}
				if got, _ := f.pickHost(cands); got != nil {
					return got
				}
			}
		}
		return nil
	}
	if svc := try(s.exact.get(host)); svc != nil {
		return svc
	}
	for rest := host; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return nil
		}
		rest = rest[i+1:]
		if svc := try(s.wildcard.get(rest)); svc != nil {
			return svc
		}
	}
}

// Excluded says why the Sidecar of sc does not import svc on port, or "" when it does.
func (sc *Scope) Excluded(svc *Service, port uint32) string {
	if sc.imports(svc, port) {
		return ""
	}
	name := sidecarName(sc.Sidecar)
	l := sc.listenerFor(port)
	if l == nil {
		return fmt.Sprintf("%s has no egress listener for port %d and no catch-all listener", name, port)
	}
	which := "its catch-all egress listener"
	if l.port != 0 {
		which = fmt.Sprintf("its egress listener for port %d", l.port)
	}
	var hosts []string
	for ns, hs := range l.hosts {
		for _, h := range hs {
			hosts = append(hosts, ns+"/"+h)
		}
	}
	sort.Strings(hosts)
	return fmt.Sprintf("%s (egress[%d], %s) does not import %s/%s: its hosts are %s", name, l.index, which, svc.Namespace, svc.Host, strings.Join(hosts, ", "))
}

// sidecarName is "Sidecar ns/name (file:line)".
func sidecarName(d *config.Document) string {
	if d == nil {
		return "no Sidecar"
	}
	return fmt.Sprintf("Sidecar %s/%s (%s:%d)", d.Namespace, d.Name, d.File, d.Line)
}

// ImportsHost reports whether one of the Sidecar's egress listeners imports host (a service or
// VirtualService host, possibly a wildcard) from namespace: an egress host for that namespace, or
// for "*", and host cover one another. It is the route table's Import hook (route.Proxy.Import),
// which has no port; without a Sidecar that narrows egress it holds for every host.
func (sc *Scope) ImportsHost(namespace, host string) bool {
	if sc == nil || sc.all {
		return true
	}
	host = NormalizeHost(host)
	for i := range sc.listeners {
		l := &sc.listeners[i]
		if vsHostTaken(l.hosts[namespace], host) || vsHostTaken(l.hosts["*"], host) {
			return true
		}
	}
	return false
}

// ImportFunc is ImportsHost as a route.Proxy.Import hook, nil when nothing is narrowed, so the
// route table skips the check altogether.
func (sc *Scope) ImportFunc() func(namespace, host string) bool {
	if sc == nil || sc.all {
		return nil
	}
	return sc.ImportsHost
}
