package registry

import (
	"net/netip"
	"strings"
)

// filter says which services a lookup may return for a workload.
type filter struct {
	ns   string
	port uint32
	fams Family // 0 accepts every family
	// skipTLSWithVIP leaves out TLS ports of services with a single VIP: Istio gives those their own
	// listener on the VIP, so SNI on the shared port listener never reaches them.
	skipTLSWithVIP bool
}

// pick returns the first candidate the filter accepts, preferring the workload's own namespace;
// candidates arrive in precedence order, so "first" is the oldest.
func (f *filter) pick(cands []*Service) (*Service, *Port) {
	var first *Service
	var firstPort *Port
	for _, svc := range cands {
		if !svc.VisibleTo(f.ns) {
			continue
		}
		p := svc.Port(f.port)
		if p == nil || (f.fams != 0 && p.Family&f.fams == 0) {
			continue
		}
		if f.skipTLSWithVIP && p.Family == FamilyTLS && svc.hasSingleIP() {
			continue
		}
		if svc.Namespace == f.ns {
			return svc, p
		}
		if first == nil {
			first, firstPort = svc, p
		}
	}
	return first, firstPort
}

func (s *Snapshot) lookupHost(host string, f *filter) (*Service, *Port) {
	if svc, p := f.pick(s.exact[host]); svc != nil {
		return svc, p
	}
	// The most specific wildcard wins: try suffixes from the longest.
	for rest := host; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return nil, nil
		}
		rest = rest[i+1:]
		if svc, p := f.pick(s.wildcard[rest]); svc != nil {
			return svc, p
		}
	}
}

func (s *Snapshot) lookupIP(ip netip.Addr, f *filter) (*Service, *Port, bool) {
	ip = ip.Unmap()
	if svc, p := f.pick(s.ips[ip]); svc != nil {
		return svc, p, true
	}
	for i := range s.cidrs {
		b := &s.cidrs[i]
		if b.is4 != ip.Is4() {
			continue
		}
		pfx, err := ip.Prefix(b.bits)
		if err != nil {
			continue
		}
		if svc, p := f.pick(b.nets[pfx]); svc != nil {
			return svc, p, false
		}
	}
	return nil, nil, false
}

// LookupHost returns the service a workload in ns gets for host on port: an exact host first, then
// the most specific wildcard. The host must already be normalized (see NormalizeHost).
func (s *Snapshot) LookupHost(host string, port uint32, ns string) *Service {
	f := filter{ns: ns, port: port}
	svc, _ := s.lookupHost(host, &f)
	return svc
}

// LookupIP returns the service whose addresses hold ip on port for a workload in ns: a single IP
// first, then the longest CIDR.
func (s *Snapshot) LookupIP(ip netip.Addr, port uint32, ns string) *Service {
	f := filter{ns: ns, port: port}
	svc, _, _ := s.lookupIP(ip, &f)
	return svc
}

// HostMatches reports whether a declared host (exact or "*." wildcard) covers a concrete host.
func HostMatches(pattern, host string) bool {
	if strings.HasPrefix(pattern, "*.") {
		return strings.HasSuffix(host, pattern[1:])
	}
	return pattern == host
}
