package registry

import (
	"net"
	"net/netip"
	"strings"
)

// Traffic is what the proxy knows of a connection's protocol when it matches it.
type Traffic uint8

const (
	// TrafficAny matches a named destination with any protocol, as a CONNECT tunnel does.
	TrafficAny Traffic = iota
	// TrafficHTTP is plaintext HTTP with a Host header.
	TrafficHTTP
	// TrafficTLS is a TLS ClientHello, routed by its SNI.
	TrafficTLS
	// TrafficTCP is anything else: opaque bytes routed by destination address and port.
	TrafficTCP
)

// String names the traffic kind as explain's --protocol flag spells it.
func (t Traffic) String() string {
	return [...]string{"any", "http", "tls", "tcp"}[t]
}

// Outcome says what the proxy does with a connection.
type Outcome uint8

const (
	// BlackHole refuses the connection: nothing matched under REGISTRY_ONLY.
	BlackHole Outcome = iota
	// Passthrough forwards to the requested destination: nothing matched under ALLOW_ANY.
	Passthrough
	// Matched routes to a service.
	Matched
)

// MatchedBy names the rule that picked the service.
type MatchedBy uint8

// The rules, in the words explain prints.
const (
	ByNothing MatchedBy = iota
	ByHost
	BySNI
	ByIP
	ByCIDR
	ByPort
	ByEgressProxy
)

// String says in a few words which rule matched.
func (b MatchedBy) String() string {
	return [...]string{"nothing matched", "Host header", "TLS SNI", "destination IP", "destination CIDR", "port alone (address-less TCP)", "Sidecar egressProxy"}[b]
}

// Cluster names for traffic that matched no service, as Istio names them.
const (
	PassthroughCluster = "PassthroughCluster"
	BlackHoleCluster   = "BlackHoleCluster"
)

// Query is a destination as a sidecar sees it.
type Query struct {
	// Namespace of the workload whose traffic this is; only services exported to it count.
	Namespace string
	// IP the application connected to, if known.
	IP netip.Addr
	// Host is the Host header, SNI or CONNECT authority without port; normalized by Match.
	Host     string
	Port     uint32
	Protocol Traffic
	// Scope is the proxy's Sidecar scope (NewScope, once per snapshot); nil imports everything
	// exportTo shows and leaves the outbound policy to allowAny.
	Scope *Scope
}

// Match is the decision for a Query.
type Match struct {
	Outcome Outcome
	Service *Service
	Port    *Port
	By      MatchedBy
	Cluster string
}

// Match decides where traffic goes, in the order Istio's sidecar listeners decide it. allowAny is
// the outbound traffic policy: pass unmatched traffic through instead of refusing it.
//
// Only a valid DNS name is looked up among declared hosts: an IP literal (with or without
// brackets), a host with a zone ID ("%") or any other text that is not a name never matches a
// host or wildcard entry, since "[::ffff:127.0.0.1%.bar.com]" ends in ".bar.com" without naming
// anything under it.
func (s *Snapshot) Match(q Query, allowAny bool) Match {
	raw := NormalizeHost(q.Host)
	host := raw
	if !IsHostName(host) {
		host = ""
	}
	f := filter{ns: q.Namespace, port: q.Port, scope: q.Scope}
	var svc *Service
	var port *Port
	var by MatchedBy
	switch q.Protocol {
	case TrafficHTTP:
		svc, port, by = s.matchHTTP(host, raw, q.IP, &f)
	case TrafficTLS:
		svc, port, by = s.matchTLS(host, q.IP, &f)
	case TrafficTCP:
		svc, port, by = s.matchTCP(q.IP, &f)
	default:
		svc, port, by = s.matchAny(host, raw, q.IP, &f)
	}
	if svc != nil {
		return Match{Outcome: Matched, Service: svc, Port: port, By: by, Cluster: port.Cluster}
	}
	return q.Scope.unmatched(allowAny)
}

// unmatched decides traffic that matched no imported service: the Sidecar's outbound policy
// overrides allowAny, and its egressProxy, under ALLOW_ANY, takes the traffic instead of the
// original destination (refused when no visible ServiceEntry declares the egress proxy).
func (sc *Scope) unmatched(allowAny bool) Match {
	allowAny = sc.allowAny(allowAny)
	if ep := sc.egressProxy(); ep != nil && allowAny {
		if ep.Service == nil || ep.ServicePort == nil {
			return Match{Outcome: BlackHole, By: ByEgressProxy, Cluster: BlackHoleCluster}
		}
		return Match{Outcome: Matched, Service: ep.Service, Port: ep.ServicePort, By: ByEgressProxy, Cluster: ep.Cluster}
	}
	if allowAny {
		return Match{Outcome: Passthrough, Cluster: PassthroughCluster}
	}
	return Match{Outcome: BlackHole, Cluster: BlackHoleCluster}
}

func ipBy(single bool) MatchedBy {
	if single {
		return ByIP
	}
	return ByCIDR
}

// RoutesHTTPByHost reports whether plaintext HTTP to ip:port meets an HTTP listener that routes it
// by Host, rather than a TCP listener that carries it as opaque bytes: a TCP service owning the
// destination IP has its own listener, which sees the bytes first, and a port where no HTTP or
// protocol-less service is visible has no HTTP listener at all.
func (s *Snapshot) RoutesHTTPByHost(ip netip.Addr, port uint32, ns string) bool {
	return s.ScopedRoutesHTTPByHost(ip, port, ns, nil)
}

// ScopedRoutesHTTPByHost is RoutesHTTPByHost for a proxy under a Sidecar scope.
func (s *Snapshot) ScopedRoutesHTTPByHost(ip netip.Addr, port uint32, ns string, sc *Scope) bool {
	f := filter{ns: ns, port: port, scope: sc}
	return s.routesHTTPByHost(ip, &f)
}

func (s *Snapshot) routesHTTPByHost(ip netip.Addr, f *filter) bool {
	if ip.IsValid() {
		f.fams = FamilyTCP
		if svc, _, _ := s.lookupIP(ip, f); svc != nil {
			return false
		}
	}
	f.fams = FamilyHTTP | FamilyAuto
	return s.portHas(f)
}

// matchHTTP routes by host, the normalized name (empty when the Host is not a name), or raw, the
// normalized Host whatever it is, which may be a VIP.
func (s *Snapshot) matchHTTP(host, raw string, ip netip.Addr, f *filter) (*Service, *Port, MatchedBy) {
	if !s.routesHTTPByHost(ip, f) {
		return s.matchTCP(ip, f)
	}
	f.fams = FamilyHTTP | FamilyAuto
	if host != "" {
		if svc, p := s.lookupHost(host, f); svc != nil {
			return svc, p, ByHost
		}
		return nil, nil, ByNothing
	}
	// A single-IP VIP written as the Host ("10.0.0.1" or "10.0.0.1:80") names its service too.
	if a, ok := ParseIPLiteral(raw); ok {
		if svc, p := f.pick(s.ips.get(a.Unmap())); svc != nil {
			return svc, p, ByHost
		}
	}
	return nil, nil, ByNothing
}

// matchTLS routes by destination IP, then by sni, which Match has emptied unless it is a name.
func (s *Snapshot) matchTLS(sni string, ip netip.Addr, f *filter) (*Service, *Port, MatchedBy) {
	if ip.IsValid() {
		f.fams = FamilyTLS | FamilyTCP | FamilyAuto
		if group, single := s.ipGroup(ip, f); group != nil {
			svc, p := f.pick(group)
			if p.Family != FamilyTLS || single {
				return svc, p, ipBy(single)
			}
			// A CIDR picks the candidates and the SNI chooses among them; like Envoy's filter
			// chain match, a miss here does not fall back to less specific addresses.
			f.fams = FamilyTLS
			for _, svc := range group {
				if p := f.accepts(svc); p != nil && sni != "" && HostMatches(svc.Host, sni) {
					return svc, p, BySNI
				}
			}
			return nil, nil, ByNothing
		}
	}
	if sni != "" {
		f.fams = FamilyTLS
		f.skipTLSWithVIP = true
		svc, p := s.lookupHost(sni, f)
		f.skipTLSWithVIP = false
		if svc != nil {
			return svc, p, BySNI
		}
	}
	f.fams = FamilyTCP | FamilyAuto
	if svc, p := s.portOnly[f.port].pick(f); svc != nil {
		return svc, p, ByPort
	}
	return nil, nil, ByNothing
}

func (s *Snapshot) matchTCP(ip netip.Addr, f *filter) (*Service, *Port, MatchedBy) {
	if ip.IsValid() {
		f.fams = FamilyTCP | FamilyAuto | FamilyTLS
		if svc, p, single := s.lookupIP(ip, f); svc != nil && (p.Family != FamilyTLS || single) {
			return svc, p, ipBy(single)
		}
	}
	f.fams = FamilyTCP | FamilyAuto
	if svc, p := s.portOnly[f.port].pick(f); svc != nil {
		return svc, p, ByPort
	}
	return nil, nil, ByNothing
}

// matchAny serves destinations named by a host whose protocol is not known yet (CONNECT): the host
// is tried against every port family, then the IP, then the port alone.
func (s *Snapshot) matchAny(host, raw string, ip netip.Addr, f *filter) (*Service, *Port, MatchedBy) {
	f.fams = 0
	if host != "" {
		if svc, p := s.lookupHost(host, f); svc != nil {
			return svc, p, ByHost
		}
	} else if a, ok := ParseIPLiteral(raw); ok && !ip.IsValid() {
		ip = a
	}
	if ip.IsValid() {
		if svc, p, single := s.lookupIP(ip, f); svc != nil {
			return svc, p, ipBy(single)
		}
	}
	f.fams = FamilyTCP | FamilyAuto
	if svc, p := s.portOnly[f.port].pick(f); svc != nil {
		return svc, p, ByPort
	}
	return nil, nil, ByNothing
}

// portHas reports whether any service on the filter's port passes the filter.
func (s *Snapshot) portHas(f *filter) bool {
	svc, _ := s.byPort[f.port].pick(f)
	return svc != nil
}

// SplitHostPort strips an optional port from a Host header value, accepting bare IPv6 in brackets.
func SplitHostPort(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	if len(hostport) > 1 && hostport[0] == '[' && hostport[len(hostport)-1] == ']' {
		return hostport[1 : len(hostport)-1], ""
	}
	return hostport, ""
}

// ParseIPLiteral parses an IP address as a Host, SNI or authority may carry it: bare or in
// brackets. An address with a zone ID is refused: a zone names an interface of the client's
// host, never a destination a registry can declare.
func ParseIPLiteral(h string) (netip.Addr, bool) {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	if !mayBeIP(h) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(h)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// mayBeIP is a cheap test that spares names the error netip.ParseAddr allocates: an IP literal
// has a colon or only digits and dots.
func mayBeIP(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return s != ""
}

// IsHostName reports whether h, already normalized, is a DNS name that may match a declared
// host: dot-separated labels of 1 to 63 letters, digits, '-' or '_', at most 253 bytes, whose last
// label is not numeric. The last rule keeps out every spelling of an IPv4 address that resolvers
// and URL parsers accept ("127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1"), as the WHATWG URL
// standard does; brackets, colons, '%' and '*' are not name bytes at all.
func IsHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	start := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c == '.' {
			if n := i - start; n == 0 || n > 63 {
				return false
			}
			start = i + 1
			continue
		}
		if !nameBytes[c] {
			return false
		}
	}
	if n := len(h) - start; n == 0 || n > 63 {
		return false
	}
	return !numericLabel(h[start:])
}

// nameBytes marks the bytes a label may hold: lower-case letters, digits, '-' and '_'.
var nameBytes = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()

// numericLabel reports a label an IPv4 parser would read as a number: decimal digits, or "0x"
// followed by hex digits.
func numericLabel(l string) bool {
	if len(l) >= 2 && l[0] == '0' && l[1] == 'x' {
		l = l[2:]
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}
