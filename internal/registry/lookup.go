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
	// scope is the proxy's Sidecar scope; nil imports everything exportTo shows.
	scope *Scope
}

// sees reports whether the workload may use svc on the filter's port at all: exportTo, then the
// Sidecar's imports.
func (f *filter) sees(svc *Service) bool {
	return svc.VisibleTo(f.ns) && f.scope.imports(svc, f.port)
}

// accepts returns svc's port when the filter lets the workload use it, else nil.
func (f *filter) accepts(svc *Service) *Port {
	if !f.sees(svc) {
		return nil
	}
	p := svc.Port(f.port)
	if p == nil || (f.fams != 0 && p.Family&f.fams == 0) {
		return nil
	}
	if f.skipTLSWithVIP && p.Family == FamilyTLS && svc.hasSingleIP() {
		return nil
	}
	return p
}

// pick returns the first candidate the filter accepts. Candidates arrive in precedence order, so
// a contested VIP, CIDR or port goes to the oldest entry, whatever its namespace.
func (f *filter) pick(cands []*Service) (*Service, *Port) {
	for _, svc := range cands {
		if p := f.accepts(svc); p != nil {
			return svc, p
		}
	}
	return nil, nil
}

// pickHost chooses among declarations of one host. The host belongs to the workload's own
// namespace when that namespace declares it, else to the namespace of the oldest visible
// declaration; the other namespaces' declarations are then ignored for every port, as Istio keeps
// one service per host for a proxy. Within the owning namespace the oldest entry with the port wins.
func (f *filter) pickHost(cands []*Service) (*Service, *Port) {
	owner := ""
	for _, svc := range cands {
		if !f.sees(svc) {
			continue
		}
		if svc.Namespace == f.ns {
			owner = f.ns
			break
		}
		if owner == "" {
			owner = svc.Namespace
		}
	}
	if owner == "" {
		return nil, nil
	}
	for _, svc := range cands {
		if svc.Namespace != owner {
			continue
		}
		if p := f.accepts(svc); p != nil {
			return svc, p
		}
	}
	return nil, nil
}

func (s *Snapshot) lookupHost(host string, f *filter) (*Service, *Port) {
	if svc, p := f.pickHost(s.exact.get(host)); svc != nil {
		return svc, p
	}
	// The most specific wildcard wins: try suffixes from the longest.
	for rest := host; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return nil, nil
		}
		rest = rest[i+1:]
		if svc, p := f.pickHost(s.wildcard.get(rest)); svc != nil {
			return svc, p
		}
	}
}

func (s *Snapshot) lookupIP(ip netip.Addr, f *filter) (*Service, *Port, bool) {
	group, single := s.ipGroup(ip, f)
	svc, p := f.pick(group)
	return svc, p, single
}

// ipGroup returns the services of the most specific address (a single IP, else the longest CIDR)
// holding ip that has a service the filter accepts, and whether that address is a single IP.
func (s *Snapshot) ipGroup(ip netip.Addr, f *filter) ([]*Service, bool) {
	ip = ip.Unmap()
	if g := s.ips.get(ip); g != nil {
		if svc, _ := f.pick(g); svc != nil {
			return g, true
		}
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
		if g := b.nets[pfx]; g != nil {
			if svc, _ := f.pick(g); svc != nil {
				return g, false
			}
		}
	}
	return nil, false
}

// LookupHost returns the service a workload in ns gets for host on port: an exact host first, then
// the most specific wildcard. The host must already be normalized (see NormalizeHost); one that
// is not a name (IsHostName) matches nothing.
func (s *Snapshot) LookupHost(host string, port uint32, ns string) *Service {
	if !IsHostName(host) {
		return nil
	}
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
