package validate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// resolution applies the rules that depend on spec.resolution, endpoints above all.
func resolution(r *report, se *networking.ServiceEntry, ports servicePorts) {
	switch se.Resolution {
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) > 0 {
			r.errorf(CodeNoneWithEndpoints, "spec.endpoints",
				"resolution NONE takes no endpoints (connections go to the address the client dialled); remove them or use STATIC or DNS")
		}
		if se.WorkloadSelector != nil {
			r.warnf(CodeSelectorWithNone, "spec.workloadSelector", "workloadSelector has no effect with resolution NONE")
		}
	case networking.ServiceEntry_STATIC:
		if len(se.Endpoints) == 0 && se.WorkloadSelector == nil {
			r.warnf(CodeStaticNoEndpoints, "spec.resolution",
				"resolution STATIC with neither endpoints nor workloadSelector leaves the service without endpoints: connections to it fail")
		}
		for i, ep := range se.Endpoints {
			staticEndpoint(r, at("spec.endpoints", i, ""), ep, ports)
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		dnsResolution(r, se, ports)
	case networking.ServiceEntry_DYNAMIC_DNS:
		dynamicDNS(r, se)
	default:
		name := se.Resolution.String()
		if _, known := networking.ServiceEntry_Resolution_name[int32(se.Resolution)]; !known {
			name = "value " + name
		}
		r.errorf(CodeResolutionUnsupported, "spec.resolution", "unsupported resolution %s (want NONE, STATIC, DNS, DNS_ROUND_ROBIN or DYNAMIC_DNS)", name)
	}
}

// dynamicDNS applies Istio's rules for DYNAMIC_DNS: the name to resolve is the Host or SNI of each
// request, so the hosts must be wildcards, and there is nothing to list as addresses or endpoints;
// only ports that carry such a name (HTTP, TLS, GRPC, HTTP2) can be served.
func dynamicDNS(r *report, se *networking.ServiceEntry) {
	for i, h := range se.Hosts {
		if !strings.HasPrefix(h, "*") {
			r.errorf(CodeDynamicDNSHost, at("spec.hosts", i, ""),
				"resolution DYNAMIC_DNS resolves the name each request carries, so hosts must be wildcards such as \"*.example.com\", not %q; use DNS for a single name", h)
		}
	}
	if len(se.Addresses) > 0 {
		r.errorf(CodeDynamicDNSAddresses, "spec.addresses",
			"resolution DYNAMIC_DNS takes no addresses: traffic is matched by the Host or SNI the client sends")
	}
	if len(se.Endpoints) > 0 {
		r.errorf(CodeDynamicDNSEndpoints, "spec.endpoints",
			"resolution DYNAMIC_DNS takes no endpoints: the destination is resolved from the requested Host or SNI")
	}
	for i, p := range se.Ports {
		if p == nil {
			continue
		}
		switch parseProtocol(p.Protocol) {
		case protoHTTP, protoTLS, protoGRPC, protoHTTP2:
			continue
		}
		is := "it is " + describeProtocol(p.Protocol)
		if p.Protocol == "" {
			is = "it has none"
		}
		r.errorf(CodeDynamicDNSProtocol, at("spec.ports", i, ".protocol"),
			"resolution DYNAMIC_DNS needs a name to resolve from each connection, so port %d must be HTTP, TLS, GRPC or HTTP2 (%s)", p.Number, is)
	}
}

func dnsResolution(r *report, se *networking.ServiceEntry, ports servicePorts) {
	if len(se.Endpoints) == 0 {
		for i, h := range se.Hosts {
			if h == "*" {
				continue // already rejected as a host
			}
			if p := hostProblem(h, false); p != "" {
				r.errorf(CodeDNSHostNotFQDN, at("spec.hosts", i, ""),
					"with resolution %s and no endpoints the host itself is resolved, so it must be a name without wildcards, but %q %s",
					se.Resolution, h, p)
			}
		}
	}
	if se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
		r.errorf(CodeDNSRoundRobinEndpoint, "spec.endpoints[1]",
			"resolution DNS_ROUND_ROBIN takes at most one endpoint, got %d; use DNS to balance across several", len(se.Endpoints))
	}
	for i, ep := range se.Endpoints {
		f := at("spec.endpoints", i, "")
		if ep == nil {
			r.errorf(CodeEndpointAddressRequired, f, "an endpoint may not be null")
			continue
		}
		switch {
		case ep.Address == "":
			r.errorf(CodeEndpointAddressRequired, f+".address", "endpoint address is required with resolution %s", se.Resolution)
		case strings.HasPrefix(ep.Address, unixPrefix):
			r.errorf(CodeEndpointNotFQDN, f+".address", "endpoint address %q is a unix socket, which needs resolution STATIC", ep.Address)
		case !isIP(ep.Address):
			if p := hostProblem(ep.Address, false); p != "" {
				r.errorf(CodeEndpointNotFQDN, f+".address", "endpoint address %q is neither an IP nor a DNS name: it %s", ep.Address, p)
			}
		}
		endpointLabels(r, f, ep.Labels)
		endpointPorts(r, f, ep.Ports, ports)
	}
	if len(se.Addresses) > 0 && len(se.Hosts) > 1 {
		for i, p := range se.Ports {
			if p != nil && isTCPProtocol(parseProtocol(p.Protocol)) {
				r.warnf(CodeMultiHostAddressTCP, at("spec.ports", i, ""),
					"%d hosts share spec.addresses and TCP-based port %d (%s): traffic to those addresses cannot tell the hosts apart",
					len(se.Hosts), p.Number, describeProtocol(p.Protocol))
				break
			}
		}
	}
}

// staticEndpoint applies Istio's validateWorkloadEntry for STATIC resolution: the address is an IP or
// a unix socket (never a name), and unix sockets take no ports and serve exactly one service port.
func staticEndpoint(r *report, f string, ep *networking.WorkloadEntry, ports servicePorts) {
	if ep == nil {
		r.errorf(CodeEndpointAddressRequired, f, "an endpoint may not be null")
		return
	}
	if ep.Address == "" {
		if ep.Network == "" {
			r.errorf(CodeEndpointAddressRequired, f+".address", "endpoint address is required (or, for an endpoint behind a network gateway, a network)")
			return
		}
		r.warnf(CodeEndpointNetworkOnly, f+".network", "endpoint has network %q but no address: it is reached only through that network's gateway, which meshentry does not provide", ep.Network)
	}
	unix := strings.HasPrefix(ep.Address, unixPrefix)
	switch {
	case unix:
		if p := unixProblem(strings.TrimPrefix(ep.Address, unixPrefix)); p != "" {
			r.errorf(CodeUnixAddressInvalid, f+".address", "unix socket address %q %s", ep.Address, p)
		}
		if len(ep.Ports) > 0 {
			r.errorf(CodeUnixEndpointPorts, f+".ports", "unix socket endpoint %q cannot list ports", ep.Address)
		}
	case ep.Address != "" && !isIP(ep.Address):
		r.errorf(CodeEndpointNotIP, f+".address",
			"endpoint address %q is not an IP address; with resolution STATIC use IPs or unix:// sockets, or use resolution DNS for names", ep.Address)
	}
	endpointPorts(r, f, ep.Ports, ports)
	endpointLabels(r, f, ep.Labels)
	if unix && len(ports.names) != 1 {
		r.errorf(CodeUnixOnePort, f+".address", "a unix socket endpoint needs exactly one service port, but spec.ports declares %d", len(ports.names))
	}
}

// endpointPorts checks an endpoint's port map: every name must be a declared service port.
func endpointPorts(r *report, f string, epPorts map[string]uint32, ports servicePorts) {
	for _, name := range sortedKeys(epPorts) {
		n := epPorts[name]
		pf := f + ".ports." + name
		if !ports.has(name) {
			r.errorf(CodeEndpointPortUndeclared, pf, "port name %q is not declared in spec.ports (declared: %s)", name, ports.declared())
		}
		if !isDNSLabel(name) {
			r.errorf(CodeEndpointPortName, pf, "endpoint port name %q is not a DNS-1123 label", name)
		}
		if n < 1 || n > 65535 {
			r.errorf(CodeEndpointPortRange, pf, "endpoint port %d is out of range (1-65535)", n)
		}
	}
}

func endpointLabels(r *report, f string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		lf := f + ".labels." + k
		if p := labelKeyProblem(k); p != "" {
			r.errorf(CodeLabelKeyInvalid, lf, "label key %q %s", k, p)
		}
		if v := labels[k]; !validLabelValue(v) {
			r.errorf(CodeLabelValueInvalid, lf, "label value %q is not a valid label value (letters, digits, '-', '_' or '.', starting and ending with a letter or digit)", v)
		}
	}
}
