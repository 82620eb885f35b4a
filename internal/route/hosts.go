package route

import (
	"net/netip"
	"strings"

	"github.com/meshentry/meshentry/internal/registry"
)

// DomainSuffix is the cluster domain that short names are completed with, as Istio's default.
const DomainSuffix = "cluster.local"

// ResolveHost completes a short host the way Istio does for a document in namespace ns: a name
// with no dot becomes name.ns.svc.cluster.local; "*", IP literals and names with a dot stay.
func ResolveHost(h, ns string) string {
	h = registry.NormalizeHost(h)
	if h == "" || h == "*" || strings.Contains(h, ".") {
		return h
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return h
	}
	if ns != "" {
		h += "." + ns
	}
	return h + ".svc." + DomainSuffix
}

// ResolveGateway turns a VirtualService's gateway reference into "ns/name", or "mesh": "name" is
// in the VirtualService's namespace, "ns/name" is as given, and Istio's older
// "name.ns.svc.cluster.local" form names ns/name.
func ResolveGateway(ref, ns string) string {
	if ref == Mesh {
		return Mesh
	}
	if strings.Contains(ref, "/") {
		gns, name, _ := strings.Cut(ref, "/")
		if gns == "." {
			gns = ns
		}
		return gns + "/" + name
	}
	if name, rest, ok := strings.Cut(ref, "."); ok {
		gns, _, _ := strings.Cut(rest, ".")
		return gns + "/" + name
	}
	return ns + "/" + ref
}

// hostsOverlap reports whether a VirtualService host and a service host can name the same
// request: either covers the other, or both are wildcards and one suffix holds the other.
func hostsOverlap(a, b string) bool {
	if a == "*" || b == "*" {
		return true
	}
	if registry.HostMatches(a, b) || registry.HostMatches(b, a) {
		return true
	}
	if strings.HasPrefix(a, "*.") && strings.HasPrefix(b, "*.") {
		return strings.HasSuffix(a, b[1:]) || strings.HasSuffix(b, a[1:])
	}
	return false
}

// visibleTo applies a VirtualService's exportTo for a proxy in namespace ns: absent or "*" is
// everyone, "." the VirtualService's own namespace, "~" nobody, otherwise the names listed.
func visibleTo(exportTo []string, own, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true
		case ".":
			if own == ns {
				return true
			}
		default:
			if e == ns {
				return true
			}
		}
	}
	return false
}

// ClusterName is Envoy's outbound cluster name that Istio gives a service port and subset.
func ClusterName(port uint32, subset, host string) string {
	return "outbound|" + uitoa(port) + "|" + subset + "|" + host
}

func uitoa(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
