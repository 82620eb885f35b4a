package gateway

import (
	"strings"

	"github.com/meshentry/meshentry/internal/registry"
)

// Host is one entry of a server's hosts: which VirtualServices' namespace may bind it, and the
// DNS name (exact, "*.suffix" or "*") it covers.
type Host struct {
	// Namespace is "*" for any namespace or one namespace ("./" is the Gateway's own).
	Namespace string
	// DNS is the name, lower case; "*" covers every host.
	DNS string
}

// ParseHost reads "ns/dnsName", "*/dnsName", "./dnsName" or a bare dnsName (any namespace),
// with gwNamespace standing for ".".
func ParseHost(s, gwNamespace string) Host {
	ns, dns, ok := strings.Cut(s, "/")
	if !ok {
		ns, dns = "*", s
	}
	if ns == "." {
		ns = gwNamespace
	}
	return Host{Namespace: ns, DNS: registry.NormalizeHost(dns)}
}

// String is the host as a Gateway spells it.
func (h Host) String() string { return h.Namespace + "/" + h.DNS }

// Covers reports whether the host covers name (lower case, no port).
func (h Host) Covers(name string) bool {
	return h.DNS == "*" || registry.HostMatches(h.DNS, name)
}

// Admits reports whether a VirtualService of namespace vsNamespace may bind this host.
func (h Host) Admits(vsNamespace string) bool {
	return h.Namespace == "*" || h.Namespace == vsNamespace
}

// Accepts returns the first of the server's hosts that covers name, and whether there is one.
func (s *Server) Accepts(name string) (Host, bool) {
	name = registry.NormalizeHost(name)
	for _, h := range s.Hosts {
		if h.Covers(name) {
			return h, true
		}
	}
	return Host{}, false
}

// AdmitsRoute reports whether a VirtualService of namespace vsNamespace may route name through
// this server: one of the hosts covering name admits that namespace.
func (s *Server) AdmitsRoute(name, vsNamespace string) bool {
	name = registry.NormalizeHost(name)
	for _, h := range s.Hosts {
		if h.Covers(name) && h.Admits(vsNamespace) {
			return true
		}
	}
	return false
}

// specificity ranks how closely a host covers a name: an exact name beats a longer wildcard,
// which beats a shorter one, which beats "*"; -1 when it does not cover it.
func (h Host) specificity(name string) int {
	switch {
	case h.DNS == name:
		return 1 << 20
	case h.DNS == "*":
		return 0
	case h.Covers(name):
		return len(h.DNS)
	}
	return -1
}

// BySNI picks the server of a TLS listener that serves sni: the one with the most specific host
// covering it, as Envoy's filter chain match by server name; nil when none does. An empty SNI
// is served only by a server with host "*"; an AUTO_PASSTHROUGH server is matched by the host
// its outbound_.PORT_.SUBSET_.HOST SNI names.
func (l *Listener) BySNI(sni string) *Server {
	sni = registry.NormalizeHost(sni)
	auto, isAuto := ParseAutoSNI(sni)
	var best *Server
	bestRank := -1
	for _, s := range l.Servers {
		name := sni
		if s.Kind == KindAutoPassthrough && isAuto {
			// Istio gives an AUTO_PASSTHROUGH server the cluster SNIs of the services its
			// hosts cover, so the host inside the SNI is what must be covered.
			name = auto.Host
		}
		for _, h := range s.Hosts {
			r := h.specificity(name)
			if sni == "" && h.DNS != "*" {
				r = -1
			}
			if r > bestRank {
				best, bestRank = s, r
			}
		}
	}
	return best
}
