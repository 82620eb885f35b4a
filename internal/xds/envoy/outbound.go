package envoy

import (
	"sort"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/route"
)

// listeners builds the sidecar's outbound listeners and their route tables.
func (b *builder) listeners() {
	catchAll := BlackHole
	if b.allowAny {
		catchAll = Passthrough
	}
	b.add(resource.ListenerType, intern(b, "listener|"+VirtualOutbound, virtualOutbound(b.allowAny)))
	byPort := map[uint32][]*registry.Service{}
	for _, svc := range b.visible() {
		for _, p := range svc.Ports {
			if b.scope.Excluded(svc, p.Number) == "" {
				byPort[p.Number] = append(byPort[p.Number], svc)
			}
		}
	}
	for _, port := range sortedKeys32(byPort) {
		b.port(port, byPort[port], catchAll)
	}
}

// port assembles the listener of one port and its route table from the pieces of its
// services, reusing the last Build's aggregates when every member is the same.
func (b *builder) port(port uint32, svcs []*registry.Service, catchAll string) {
	old := b.old.ports[port]
	if old == nil {
		old = &portPiece{}
	}
	cur := &portPiece{catchAll: catchAll}
	var httpSvcs []*registry.Service
	for _, svc := range svcs {
		if svc.Port(port).Family&(registry.FamilyHTTP|registry.FamilyAuto) != 0 {
			httpSvcs = append(httpSvcs, svc)
		}
	}
	if len(httpSvcs) > 0 || len(b.table.VirtualHosts(route.Mesh, port)) > 0 {
		cur.httpChain = old.httpChain
		if cur.httpChain == nil {
			cur.httpChain = httpChain(itoa(port))
			b.fresh = append(b.fresh, cur.httpChain)
		}
		cur.chains = append(cur.chains, cur.httpChain)
		cur.vhosts = b.virtualHosts(port, httpSvcs, catchAll)
		cur.rc = old.rc
		if cur.rc == nil || !sameList(cur.vhosts, old.vhosts) {
			cur.rc = &routev3.RouteConfiguration{Name: itoa(port), ValidateClusters: boolOf(false), VirtualHosts: cur.vhosts}
			b.fresh = append(b.fresh, cur.rc)
		}
		b.add(resource.RouteType, cur.rc)
	}
	cur.chains = append(cur.chains, b.l4Chains(port, svcs)...)
	if len(cur.chains) > 0 {
		cur.listener = old.listener
		if cur.listener == nil || old.catchAll != catchAll || !sameList(cur.chains, old.chains) {
			cur.listener = portListener(port, cur.chains, catchAll)
			b.fresh = append(b.fresh, cur.listener)
		}
		b.add(resource.ListenerType, cur.listener)
	}
	b.cur.ports[port] = cur
}

// virtualHosts are the virtual hosts of one port's RDS table: one per VirtualService host, one
// per service (its own cluster), and the catch-all of the outbound policy. A domain goes to the
// first that has it; a host left with none is dropped.
func (b *builder) virtualHosts(port uint32, svcs []*registry.Service, catchAll string) []*routev3.VirtualHost {
	taken := map[string]bool{}
	out := make([]*routev3.VirtualHost, 0, len(svcs)+1)
	for _, vh := range b.table.VirtualHosts(route.Mesh, port) {
		evh := &routev3.VirtualHost{Name: vh.Domain + ":" + itoa(port), Domains: domainVariants(vh.Domain, port)}
		for _, r := range vh.Routes {
			evh.Routes = append(evh.Routes, envoyRoutes(r, port, b.node)...)
		}
		out = b.placeVH(out, port, taken, evh, true, true)
	}
	for _, svc := range svcs {
		k := svcPort{svc, port}
		vh := b.old.vhosts[k]
		if vh == nil {
			vh = sameAsBefore(b, kindVHosts, k, &routev3.VirtualHost{Name: svc.Host + ":" + itoa(port),
				Routes: []*routev3.Route{defaultRoute(svc.Port(port).Cluster)}, Domains: domainVariants(svc.Host, port)})
		}
		b.cur.vhosts[k] = vh
		// Services have distinct hosts, so the domains of one can be those of a later one only
		// through a host with a port in it, and the catch-all's only through the host "*": the
		// others need not be remembered, which at 10,000 hosts was most of the table's cost.
		out = b.placeVH(out, port, taken, vh, false, svc.Host == "*" || strings.Contains(svc.Host, ":"))
	}
	name := "block_all"
	if catchAll == Passthrough {
		name = "allow_any"
	}
	return b.placeVH(out, port, taken, &routev3.VirtualHost{Name: name, Routes: []*routev3.Route{catchAllRoute(catchAll)}, Domains: []string{"*"}}, true, false)
}

// placeVH appends vh with the domains no earlier virtual host took, and marks them taken when
// mark says a later one may ask for them. When it keeps all of them it goes in as it is;
// otherwise a copy with the rest does. Virtual hosts made anew each Build (rebuilt) are
// interned so that an unchanged one keeps its pointer.
func (b *builder) placeVH(out []*routev3.VirtualHost, port uint32, taken map[string]bool, vh *routev3.VirtualHost, rebuilt, mark bool) []*routev3.VirtualHost {
	kept := vh.Domains
	for i, d := range vh.Domains {
		if taken[d] {
			kept = make([]string, 0, len(vh.Domains))
			kept = append(kept, vh.Domains[:i]...)
			for _, d := range vh.Domains[i:] {
				if !taken[d] {
					kept = append(kept, d)
				}
			}
			break
		}
	}
	if len(kept) == 0 {
		return out
	}
	if mark {
		for _, d := range kept {
			taken[d] = true
		}
	}
	if len(kept) < len(vh.Domains) {
		vh = &routev3.VirtualHost{Name: vh.Name, Routes: vh.Routes, Domains: kept}
		rebuilt = true
	}
	if rebuilt {
		// Keyed by port too: every port's table has a catch-all of the same name.
		vh = intern(b, "vhost|"+itoa(port)+"|"+vh.Name, vh)
	}
	return append(out, vh)
}

// l4Chains are the TLS (by SNI) and TCP (by VIP) chains of the services on port. A chain
// whose match repeats an earlier one is dropped: Envoy rejects a listener with two equal
// matches, and the earlier service wins, as in the registry.
func (b *builder) l4Chains(port uint32, svcs []*registry.Service) []*listener.FilterChain {
	var chains []*listener.FilterChain
	seen := map[string]bool{}
	for _, svc := range svcs {
		p := svc.Port(port)
		var target string
		switch p.Family {
		case registry.FamilyTLS:
			target = p.Cluster
			if r := b.table.TLS(svc.Host, port, firstAddr(svc), ""); r != nil && len(r.Route) > 0 {
				target = r.Route[0].Cluster
			}
		case registry.FamilyTCP:
			target = p.Cluster
			if r := b.table.TCP(port, firstAddr(svc), ""); r != nil && len(r.Route) > 0 {
				target = r.Route[0].Cluster
			}
		default:
			continue
		}
		c := b.chainPiece(svc, p, target)
		if !seen[c.key] {
			seen[c.key] = true
			chains = append(chains, c.chain)
		}
	}
	sort.SliceStable(chains, func(i, j int) bool {
		return chains[i].FilterChainMatch != nil && chains[j].FilterChainMatch == nil
	})
	return chains
}

// chainPiece is the chain of one TLS or TCP service port to target, the last Build's when it
// had the same target.
func (b *builder) chainPiece(svc *registry.Service, p *registry.Port, target string) *chainPiece {
	k := svcPort{svc, p.Number}
	if c := b.old.chains[k]; c != nil && c.target == target {
		b.cur.chains[k] = c
		return c
	}
	tls := p.Family == registry.FamilyTLS
	var m *listener.FilterChainMatch
	switch {
	case tls:
		// With addresses, Envoy matches the destination IP before the SNI, as Istio's chains do.
		m = &listener.FilterChainMatch{ServerNames: []string{svc.Host}, PrefixRanges: prefixes(svc.Addresses)}
	case len(svc.Addresses) > 0:
		m = &listener.FilterChainMatch{PrefixRanges: prefixes(svc.Addresses)}
	}
	c := &chainPiece{target: target, key: matchKey(svc, tls), chain: sameAsBefore(b, kindChains, k, tcpChain(p.Cluster, target, m))}
	b.cur.chains[k] = c
	return c
}
