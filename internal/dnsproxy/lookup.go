package dnsproxy

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/registry"
)

// Answer is what the DNS proxy answers for one name, for explain and the admin API.
type Answer struct {
	// Name is the name asked, as given.
	Name string
	// Registry is true when the registry answers; false means the name is forwarded upstream.
	Registry bool
	// Host is the registry host answered, which differs from Name for a search-domain
	// expansion (answered as a CNAME to Host).
	Host      string
	ViaSearch bool
	A, AAAA   []netip.Addr
	// Allocated says the addresses were allocated, not declared.
	Allocated bool
	// Service is the ServiceEntry host the answer comes from.
	Service *registry.Service
	TTL     uint32
}

// Lookup says what a DNS proxy for workloads in ns, with the client search domains search,
// would answer for name from snap; visible is the Sidecar scope hook (nil: exportTo only).
func Lookup(snap *registry.Snapshot, ns string, visible func(*registry.Service) bool, search []string, name string) Answer {
	t := buildTable(snap, ns, visible, DefaultTTL)
	return t.answerFor(name, fqdns(search), DefaultTTL)
}

// Lookup says what s answers for name now.
func (s *Server) Lookup(name string) Answer {
	return (*s.table.Load()).answerFor(name, s.cfg.Search, s.cfg.TTL)
}

func (t table) answerFor(name string, search []string, ttl uint32) Answer {
	ans := Answer{Name: name}
	e, via := t.lookup(dns.Fqdn(strings.ToLower(name)), search)
	if e == nil {
		return ans
	}
	ans.Registry, ans.Host, ans.ViaSearch, ans.TTL = true, e.Host, via, ttl
	ans.A, ans.AAAA, ans.Allocated, ans.Service = e.A, e.AAAA, e.Allocated, e.Service
	return ans
}

// fqdns keeps the first search domain, the one Istio answers expansions of, as a lower-case FQDN.
func fqdns(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	return []string{dns.Fqdn(strings.ToLower(strings.TrimSuffix(in[0], ".")))}
}
