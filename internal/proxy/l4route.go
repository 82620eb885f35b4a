package proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/meshentry/meshentry/internal/registry"
	vroute "github.com/meshentry/meshentry/internal/route"
)

// A VirtualService's tls and tcp routes steer connections the registry already matched: the
// service the SNI or destination picked binds the listener, and a route that holds sends the
// connection to one of its weighted destinations instead, another ServiceEntry host with that
// host's endpoints and DestinationRule. Like Envoy's tcp_proxy weighted_clusters, the choice is
// random per connection. A destination subset names the cluster (outbound|PORT|SUBSET|HOST in
// logs and telemetry) but takes all of the host's endpoints: subset endpoint selection belongs
// to the http side's subset code, which the pipes will share once it lands.

// errRouteNoDestination marks a tls or tcp route whose destination no visible ServiceEntry (that
// the Sidecar imports) declares: Envoy has no such cluster and closes the connection.
var errRouteNoDestination = errors.New("the VirtualService routes to a host no ServiceEntry visible to this proxy declares")

// l4Routed applies the tls or tcp routes bound to the service m matched, for a connection with
// this SNI (empty for none) to dst:port. It returns the match to dial (m itself when no route
// holds), the destination the route chose (nil when none held), and errRouteNoDestination when
// that destination is not declared.
func (p *Proxy) l4Routed(t *table, m registry.Match, sni string, port uint32, dst netip.Addr) (registry.Match, *vroute.Destination, error) {
	if m.Outcome != registry.Matched || m.By == registry.ByEgressProxy || t.vs == nil {
		return m, nil, nil
	}
	var r *vroute.L4Route
	if m.Port.Family == registry.FamilyTLS && sni != "" {
		r = t.vs.TLS(registry.NormalizeHost(sni), port, dst, vroute.Mesh)
	} else if m.Port.Family != registry.FamilyHTTP {
		r = t.vs.TCP(port, dst, vroute.Mesh)
	}
	if r == nil || len(r.Route) == 0 || !t.scope.ImportsVirtualService(r.Doc, port) {
		// A VirtualService the Sidecar does not import does not route this proxy's traffic.
		return m, nil, nil
	}
	// A random pick per connection, as Envoy's weighted clusters choose.
	d := r.Pick(rand.Uint32())
	dm := t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: d.Host, Port: d.Port, Protocol: registry.TrafficAny, Scope: t.scope.Clusters()}, false)
	if dm.Outcome != registry.Matched || dm.By == registry.ByEgressProxy {
		return registry.Match{Outcome: registry.BlackHole, Cluster: d.Cluster}, d,
			fmt.Errorf("%w: %s (VirtualService %s tls/tcp[%d])", errRouteNoDestination, d.Cluster, r.VirtualService, r.Index)
	}
	if d.Subset != "" {
		dm.Cluster = d.Cluster
	}
	return dm, d, nil
}

// routedDestination is where to dial for a connection a route sent to d: d's host, for a
// DYNAMIC_DNS destination to resolve, and the application's original address, which a NONE
// destination (Envoy's ORIGINAL_DST cluster) dials.
func routedDestination(d *vroute.Destination, orig netip.AddrPort, src netip.Addr) destination {
	return destination{host: d.Host, port: d.Port, orig: orig, src: src}
}

// connectAddr is the destination address a CONNECT authority gives a tcp route's
// destinationSubnets: the IP literal it names, else the matched service's single VIP.
func connectAddr(m registry.Match, host string) netip.Addr {
	if a, ok := registry.ParseIPLiteral(registry.NormalizeHost(host)); ok {
		return a.Unmap()
	}
	if m.Service == nil {
		return netip.Addr{}
	}
	for _, pfx := range m.Service.Addresses {
		if pfx.IsSingleIP() {
			return pfx.Addr()
		}
	}
	return netip.Addr{}
}
