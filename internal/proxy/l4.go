package proxy

import (
	"context"
	"net"
	"net/netip"

	"github.com/meshentry/meshentry/internal/registry"
)

// dialCaptured decides and dials the upstream of a captured connection that is not routed as
// HTTP: TLS by its SNI, anything else by the original destination's address and port. It is the
// whole decision of that path, so tests and the fuzz target drive it without iptables.
func (p *Proxy) dialCaptured(ctx context.Context, t *table, orig netip.AddrPort, sni string, isTLS bool) (net.Conn, string, registry.Match, error) {
	q := registry.Query{Namespace: p.cfg.Namespace, IP: orig.Addr().Unmap(), Port: uint32(orig.Port()), Protocol: registry.TrafficTCP, Scope: t.scope}
	if isTLS {
		q.Protocol, q.Host = registry.TrafficTLS, sni
	}
	m := t.snap.Match(q, p.cfg.AllowAny)
	if m.Outcome == registry.BlackHole {
		p.logFailure(errRefused, "capture", orig.String()+" sni="+sni, q.Port, registry.BlackHoleCluster)
		return nil, "", m, errRefused
	}
	// The original destination is what the application dialled; only DYNAMIC_DNS uses the SNI,
	// and only when it is a name.
	dst := destination{port: q.Port, orig: netip.AddrPortFrom(q.IP, orig.Port())}
	if isTLS {
		dst.host = registry.NormalizeHost(sni)
	}
	routedSNI := ""
	if isTLS {
		routedSNI = sni
	}
	m, d, err := p.l4Routed(t, m, routedSNI, q.Port, q.IP)
	if err != nil {
		p.logFailure(err, "capture", orig.String()+" sni="+sni, q.Port, m.Cluster)
		return nil, "", m, err
	}
	if d != nil {
		dst = routedDestination(d, dst.orig, netip.Addr{})
	}
	up, addr, err := p.dialMatch(ctx, t, m, dst)
	if err != nil {
		p.logFailure(err, "capture", orig.String()+" sni="+sni, q.Port, m.Cluster)
		return nil, "", m, err
	}
	return up, addr, m, nil
}
