package registry

import "net/netip"

// ListenerFamily returns the protocol family of the listener that captured traffic to ip:port
// meets for a workload in ns, or FamilyAuto when that listener must sniff the first bytes to
// decide. As in Istio, only ports without a declared protocol are sniffed: a TCP or TLS service
// owning ip has its own listener with its port's protocol, and otherwise the port's shared listener
// has the one family every visible service declares there. Mixed families, a protocol-less port,
// and a port nothing declares (passthrough or refusal) give FamilyAuto.
func (s *Snapshot) ListenerFamily(ip netip.Addr, port uint32, ns string) Family {
	return s.ScopedListenerFamily(ip, port, ns, nil)
}

// ScopedListenerFamily is ListenerFamily for a proxy under a Sidecar scope: the services the
// Sidecar does not import have no listener of this proxy.
func (s *Snapshot) ScopedListenerFamily(ip netip.Addr, port uint32, ns string, sc *Scope) Family {
	f := filter{ns: ns, port: port, fams: FamilyTCP | FamilyTLS | FamilyAuto, scope: sc}
	if ip.IsValid() {
		if svc, p, _ := s.lookupIP(ip, &f); svc != nil {
			return p.Family
		}
	}
	f.fams = 0
	var fams Family
	for _, part := range s.byPort[port].parts {
		for _, svc := range part {
			p := f.accepts(svc)
			if p == nil {
				continue
			}
			// Services with their own address listener do not share the port's listener.
			if p.Family == FamilyTCP && len(svc.Addresses) > 0 || p.Family == FamilyTLS && svc.hasSingleIP() {
				continue
			}
			fams |= p.Family
		}
	}
	switch fams {
	case FamilyTCP, FamilyHTTP, FamilyTLS:
		return fams
	}
	return FamilyAuto
}
