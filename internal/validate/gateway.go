package validate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// gateway applies the cheap, certain part of Istio's ValidateGateway: the name, servers, their hosts
// and ports, and TLS settings being present where the protocol needs them. The TLS settings
// themselves are left for a later issue.
func gateway(r *report, gw *networking.Gateway) {
	if !isDNSLabel(r.doc.Name) {
		r.errorf(CodeGatewayName, "metadata.name", "Gateway name %q is not a DNS-1123 label (no dots)", r.doc.Name)
	}
	if len(gw.Servers) == 0 {
		r.errorf(CodeGatewayServers, "spec.servers", "a Gateway needs at least one server")
	}
	names := map[string]int{}
	for i, s := range gw.Servers {
		f := at("spec.servers", i, "")
		if s == nil {
			r.errorf(CodeGatewayServers, f, "a server may not be null")
			continue
		}
		if len(s.Hosts) == 0 {
			r.errorf(CodeGatewayServers, f+".hosts", "a server needs at least one host")
		}
		for j, h := range s.Hosts {
			if p := namespacedHostProblem(h, true); p != "" {
				r.errorf(CodeGatewayHost, at(f+".hosts", j, ""), "host %q: %s", h, p)
			}
		}
		p := s.Port
		if p == nil {
			r.errorf(CodeGatewayServers, f+".port", "a server needs a port")
			continue
		}
		proto := parseProtocol(p.Protocol)
		if proto == "" {
			r.errorf(CodeGatewayPort, f+".port.protocol", "protocol %q is not one a Gateway server accepts (want one of %s)", p.Protocol, strings.Join(knownProtocols, ", "))
		}
		if (p.Number > 0 || !strings.HasPrefix(s.Bind, unixPrefix)) && (p.Number < 1 || p.Number > 65535) {
			r.errorf(CodeGatewayPort, f+".port.number", "port number %d is out of range (1-65535)", p.Number)
		}
		if p.Name == "" {
			r.errorf(CodeGatewayPort, f+".port.name", "port name is required")
		} else if j, dup := names[p.Name]; dup {
			r.errorf(CodeGatewayPort, f+".port.name", "port name %q is already used by spec.servers[%d]", p.Name, j)
		} else {
			names[p.Name] = i
		}
		if isTLSProtocol(proto) && s.Tls == nil {
			r.errorf(CodeGatewayTLS, f+".port.protocol", "a %s server needs tls settings", proto)
		}
	}
}

// namespacedHostProblem checks a Gateway ("ns/host" or "host") or Sidecar ("ns/host") host the way
// Istio's ValidateNamespaceSlashWildcardHostname does, and explains what is wrong, or returns "".
func namespacedHostProblem(h string, isGateway bool) string {
	ns, name, slash := strings.Cut(h, "/")
	if !slash {
		if isGateway {
			return hostnamePartProblem(h, true)
		}
		return "must be of the form namespace/host (\"*/\" for any namespace, \"./\" for this one)"
	}
	if ns == "" || name == "" {
		return "neither the namespace nor the host may be empty"
	}
	if ns != "*" && ns != "." && (isGateway || ns != "~") && !isDNSLabel(ns) {
		return "namespace " + quote(ns) + " is not \"*\", \".\" or a namespace name"
	}
	return hostnamePartProblem(name, isGateway)
}

func hostnamePartProblem(h string, isGateway bool) string {
	if h != "*" && !strings.Contains(h, ".") {
		return "short names are not allowed; use a fully qualified name"
	}
	if p := hostProblem(h, true); p != "" && !(isGateway && isIP(h)) {
		return "it " + p
	}
	if isPartialWildcard(h) {
		return "a partial wildcard is not allowed; only a whole leading label (\"*.example.com\")"
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }
