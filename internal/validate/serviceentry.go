package validate

import (
	"slices"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// autoAllocateLabel opts a ServiceEntry out of Istio's IP auto-allocation when set to "false".
const autoAllocateLabel = "networking.istio.io/enable-autoallocate-ip"

// servicePorts are the declared port names of a ServiceEntry, in declaration order.
// servicePorts are the names of an entry's ports, each once, in their order.
type servicePorts struct {
	names []string
}

// has reports whether name is one of the ports'. A list, not a set: an entry has a port or
// two, and a map each was a third of the allocations of validating one.
func (p servicePorts) has(name string) bool { return slices.Contains(p.names, name) }

func (p servicePorts) declared() string {
	if len(p.names) == 0 {
		return "none"
	}
	return strings.Join(p.names, ", ")
}

// serviceEntry applies Istio's ValidateServiceEntry, its CRD schema rules, and the few warnings
// meshentry adds (each marked so in codes.go).
func serviceEntry(r *report, se *networking.ServiceEntry) {
	workloadSelector(r, se)
	hosts(r, se)
	addresses(r, se)
	ports := portList(r, se)
	resolution(r, se, ports)
	multipleHosts(r, se)
	exportTo(r, "spec.exportTo", se.ExportTo, true)
	for i, san := range se.SubjectAltNames {
		if strings.TrimSpace(san) == "" {
			r.warnf(CodeSubjectAltEmpty, at("spec.subjectAltNames", i, ""), "an empty subjectAltNames entry matches no certificate")
		}
	}
	serviceEntryLimits(r, se)
}

func workloadSelector(r *report, se *networking.ServiceEntry) {
	sel := se.WorkloadSelector
	if sel == nil {
		return
	}
	for _, k := range sortedKeys(sel.Labels) {
		v := sel.Labels[k]
		f := "spec.workloadSelector.labels." + k
		if k == "" {
			r.errorf(CodeSelectorEmptyKey, f, "workloadSelector label %q has an empty key", k+"="+v)
		}
		if strings.Contains(k, "*") || strings.Contains(v, "*") {
			r.errorf(CodeSelectorWildcard, f, "workloadSelector label %q uses a wildcard, which selectors do not support", k+"="+v)
		}
	}
	if len(sel.Labels) == 0 {
		r.warnf(CodeSelectorNoLabels, "spec.workloadSelector", "workloadSelector has no labels, so it selects every workload in namespace %q", r.doc.Namespace)
	}
	if len(se.Endpoints) > 0 {
		r.errorf(CodeSelectorWithEndpoints, "spec.workloadSelector", "workloadSelector and endpoints cannot both be set: a ServiceEntry either lists its endpoints or selects workloads")
	}
}

func hosts(r *report, se *networking.ServiceEntry) {
	if len(se.Hosts) == 0 {
		r.errorf(CodeHostsRequired, "spec.hosts", "at least one host is required")
	}
	for i, h := range se.Hosts {
		f := at("spec.hosts", i, "")
		if h == "*" {
			r.errorf(CodeHostFullWildcard, f, "host \"*\" is not allowed in a ServiceEntry; use a domain wildcard such as \"*.example.com\"")
			continue
		}
		if p := hostProblem(h, true); p != "" {
			if isIP(h) {
				p += " (IPs belong in spec.addresses)"
			}
			r.errorf(CodeHostInvalid, f, "host %q %s", h, p)
		}
		if isPartialWildcard(h) {
			r.warnf(CodeHostPartialWildcard, f, "host %q has a partial wildcard; only a whole leading label (\"*.example.com\") is a supported wildcard", h)
		}
	}
}

func addresses(r *report, se *networking.ServiceEntry) {
	reported := false
	for i, a := range se.Addresses {
		f := at("spec.addresses", i, "")
		if p := addressProblem(a); p != "" {
			r.errorf(CodeAddressInvalid, f, "address %q %s", a, p)
		}
		cidrOK := se.Resolution == networking.ServiceEntry_NONE || se.Resolution == networking.ServiceEntry_STATIC
		if strings.Contains(a, "/") && !cidrOK && !reported {
			r.errorf(CodeCIDRResolution, f, "CIDR address %q is allowed only with resolution NONE or STATIC, not %s", a, se.Resolution)
			reported = true
		}
	}
}

// maxSearchedPorts is the longest port list searched for a port's name or number; a longer
// one is indexed.
const maxSearchedPorts = 16

// firstPort returns the index of the first of the earlier ports whose key is k, from index
// when not nil, else by searching them.
func firstPort[K comparable](earlier []*networking.ServicePort, index map[K]int, k K, key func(*networking.ServicePort) K) (int, bool) {
	if index != nil {
		j, ok := index[k]
		return j, ok
	}
	for j, q := range earlier {
		if q != nil && key(q) == k {
			return j, true
		}
	}
	return 0, false
}

func portList(r *report, se *networking.ServiceEntry) servicePorts {
	ports := servicePorts{names: make([]string, 0, len(se.Ports))}
	// The first port of each name and number; a short list is searched instead.
	var byNumber map[uint32]int
	var byName map[string]int
	if len(se.Ports) > maxSearchedPorts {
		byNumber, byName = map[uint32]int{}, map[string]int{}
	}
	autoAllocated := autoAllocates(r, se)
	if len(se.Ports) == 0 {
		r.warnf(CodeNoPorts, "spec.ports", "no ports: meshentry matches traffic to an entry by port, so this one receives none")
	}
	for i, p := range se.Ports {
		f := at("spec.ports", i, "")
		if p == nil {
			r.errorf(CodePortNameInvalid, f, "a port may not be null")
			continue
		}
		if j, dup := firstPort(se.Ports[:i], byName, p.Name, (*networking.ServicePort).GetName); dup {
			r.errorf(CodePortNameDuplicate, f+".name", "port name %q is already used by spec.ports[%d]", p.Name, j)
		} else {
			if byName != nil {
				byName[p.Name] = i
			}
			ports.names = append(ports.names, p.Name)
		}
		if j, dup := firstPort(se.Ports[:i], byNumber, p.Number, (*networking.ServicePort).GetNumber); dup {
			r.errorf(CodePortNumberDuplicate, f+".number", "port number %d is already used by spec.ports[%d]", p.Number, j)
		} else if byNumber != nil {
			byNumber[p.Number] = i
		}
		if p.TargetPort != 0 && p.TargetPort > 65535 {
			r.errorf(CodeTargetPortRange, f+".targetPort", "targetPort %d is out of range (1-65535)", p.TargetPort)
		}
		if p.TargetPort != 0 && se.Resolution == networking.ServiceEntry_NONE {
			r.warnf(CodeTargetPortWithNone, f+".targetPort", "targetPort has no effect with resolution NONE: the connection keeps the port the client dialled")
		}
		if len(se.Addresses) == 0 && !autoAllocated && (p.Protocol == "" || strings.EqualFold(p.Protocol, protoTCP)) {
			r.warnf(CodeTCPWithoutAddresses, f, "port %d (%s) has no spec.addresses and %s, so it is matched by port alone, for every destination IP; add addresses",
				p.Number, describeProtocol(p.Protocol), noAutoAllocationReason(r, se))
		}
		if !isDNSLabel(p.Name) {
			if p.Name == "" {
				r.errorf(CodePortNameInvalid, f+".name", "port name is required")
			} else {
				r.errorf(CodePortNameInvalid, f+".name", "port name %q is not a DNS-1123 label (letters, digits and '-', at most 63)", p.Name)
			}
		}
		if p.Protocol != "" && parseProtocol(p.Protocol) == "" {
			r.errorf(CodeProtocolUnknown, f+".protocol", "unknown protocol %q (want one of %s, or none to detect it)", p.Protocol, strings.Join(knownProtocols, ", "))
		}
		if p.Number < 1 || p.Number > 65535 {
			r.errorf(CodePortNumberRange, f+".number", "port number %d is out of range (1-65535)", p.Number)
		}
	}
	return ports
}

// autoAllocates reports whether Istio (with its default PILOT_ENABLE_IP_AUTOALLOCATE) would give the
// entry a virtual IP: not for NONE, not when the user lists addresses, not when the label opts out.
func autoAllocates(r *report, se *networking.ServiceEntry) bool {
	if se.Resolution == networking.ServiceEntry_NONE || len(se.Addresses) > 0 {
		return false
	}
	return !strings.EqualFold(r.doc.Labels[autoAllocateLabel], "false")
}

func noAutoAllocationReason(r *report, se *networking.ServiceEntry) string {
	if se.Resolution == networking.ServiceEntry_NONE {
		return "resolution NONE gets no auto-allocated IP"
	}
	return "label " + autoAllocateLabel + "=" + r.doc.Labels[autoAllocateLabel] + " turns IP auto-allocation off"
}

// multipleHosts rejects several hosts sharing a port the proxy cannot tell them apart on: without a
// Host header or an SNI there is nothing to choose a host by, unless NONE makes hosts irrelevant.
func multipleHosts(r *report, se *networking.ServiceEntry) {
	if se.Resolution == networking.ServiceEntry_NONE || len(se.Hosts) < 2 {
		return
	}
	for i, p := range se.Ports {
		if p == nil {
			continue
		}
		proto := parseProtocol(p.Protocol)
		if !isHTTPProtocol(proto) && !isTLSProtocol(proto) {
			r.errorf(CodeMultiHostOpaquePort, at("spec.ports", i, ".protocol"),
				"%d hosts share port %d (%s), which is neither HTTP nor TLS: with no Host header or SNI to choose by, several hosts need resolution NONE",
				len(se.Hosts), p.Number, describeProtocol(p.Protocol))
			return
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
