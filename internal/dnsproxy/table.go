package dnsproxy

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/registry"
)

// hostEntry is what the DNS proxy answers for one registry host.
type hostEntry struct {
	// Host is the registry host, without a trailing dot.
	Host string
	// A and AAAA are the host's single-IP addresses, declared or allocated.
	A, AAAA []netip.Addr
	// Allocated says the addresses were allocated, not declared.
	Allocated bool
	// Service is the service the answer comes from (its namespace owns the host for the proxy).
	Service *registry.Service
	// wireA and wireAAAA are the answer records packed for the fast path.
	wireA, wireAAAA []byte
}

// table maps lower-case FQDNs ("a.db.test.") to their answers for one snapshot. It is built
// once per snapshot and then only read.
type table map[string]*hostEntry

// buildTable collects the hosts a workload in ns sees, as Istio's name table does for a proxy:
// a host belongs to the proxy's own namespace when that namespace declares it, else to the
// namespace of the oldest visible declaration (the registry's rule), and its answer is every
// single-IP address of that namespace's visible declarations. Wildcard hosts have no entry
// (there is no name to answer), nor do hosts with only CIDR addresses or none at all: their
// queries go to the upstream resolver.
func buildTable(s *registry.Snapshot, ns string, visible func(*registry.Service) bool, ttl uint32) table {
	byHost := map[string][]*registry.Service{}
	var order []string
	for _, svc := range s.Services {
		if svc.Wildcard || !svc.VisibleTo(ns) || (visible != nil && !visible(svc)) {
			continue
		}
		if byHost[svc.Host] == nil {
			order = append(order, svc.Host)
		}
		byHost[svc.Host] = append(byHost[svc.Host], svc)
	}
	t := make(table, len(order))
	for _, h := range order {
		svcs := byHost[h]
		owner := svcs[0].Namespace
		for _, svc := range svcs {
			if svc.Namespace == ns {
				owner = ns
				break
			}
		}
		e := &hostEntry{Host: h}
		seen := map[netip.Addr]bool{}
		for _, svc := range svcs {
			if svc.Namespace != owner {
				continue
			}
			if e.Service == nil {
				e.Service = svc
			}
			for _, p := range svc.Addresses {
				if !p.IsSingleIP() || seen[p.Addr()] {
					continue
				}
				seen[p.Addr()] = true
				e.Allocated = e.Allocated || svc.AutoAllocated
				if p.Addr().Is4() {
					e.A = append(e.A, p.Addr())
				} else {
					e.AAAA = append(e.AAAA, p.Addr())
				}
			}
		}
		if len(e.A)+len(e.AAAA) > 0 {
			e.wireA, e.wireAAAA = packAnswers(e.A, dns.TypeA, ttl), packAnswers(e.AAAA, dns.TypeAAAA, ttl)
			t[dns.Fqdn(h)] = e
		}
	}
	return t
}

// lookup finds name (lower case, fully qualified) in the table, directly or, as Istio's DNS
// proxy does for the first search namespace, after stripping the search domain a client's
// resolver appends first: the answer is then a CNAME from the asked name to the host, with the
// host's records, so the client stops walking its search list at the first try.
func (t table) lookup(name string, search []string) (e *hostEntry, viaSearch bool) {
	if e := t[name]; e != nil {
		return e, false
	}
	for _, s := range search {
		if len(name) > len(s)+1 && strings.HasSuffix(name, s) && name[len(name)-len(s)-1] == '.' {
			if e := t[name[:len(name)-len(s)]]; e != nil {
				return e, true
			}
		}
	}
	return nil, false
}

// answer fills m (a reply to an A or AAAA question for qname) from e. A host without an
// address of the asked family gets NOERROR and no records, never the upstream's NXDOMAIN,
// which a client asking A and AAAA in parallel may take for the whole name (istio#31250).
func (e *hostEntry) answer(m *dns.Msg, qname string, qtype uint16, viaSearch bool, ttl uint32) {
	target := qname
	if viaSearch {
		target = dns.Fqdn(e.Host)
		m.Answer = append(m.Answer, &dns.CNAME{
			Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
			Target: target,
		})
	}
	switch qtype {
	case dns.TypeA:
		for _, a := range e.A {
			b := a.As4()
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   b[:],
			})
		}
	case dns.TypeAAAA:
		for _, a := range e.AAAA {
			b := a.As16()
			m.Answer = append(m.Answer, &dns.AAAA{
				Hdr:  dns.RR_Header{Name: target, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl},
				AAAA: b[:],
			})
		}
	}
}
