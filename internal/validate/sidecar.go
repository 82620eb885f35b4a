package validate

import (
	networking "istio.io/api/networking/v1alpha3"
)

// sidecar applies the cheap, certain part of Istio's ValidateSidecar: it must configure something,
// and every egress listener names hosts as namespace/host. Ports, binds and TLS are left for later.
func sidecar(r *report, sc *networking.Sidecar) {
	if len(sc.Egress) == 0 && len(sc.Ingress) == 0 && sc.OutboundTrafficPolicy == nil && sc.InboundConnectionPool == nil {
		r.errorf(CodeSidecarEmpty, "spec", "a Sidecar must configure egress, ingress, outboundTrafficPolicy or inboundConnectionPool")
	}
	for i, e := range sc.Egress {
		f := at("spec.egress", i, "")
		if e == nil {
			r.errorf(CodeSidecarEgressHost, f, "an egress listener may not be null")
			continue
		}
		if len(e.Hosts) == 0 {
			r.errorf(CodeSidecarEgressHost, f+".hosts", "an egress listener needs at least one host")
		}
		for j, h := range e.Hosts {
			if p := namespacedHostProblem(h, false); p != "" {
				r.errorf(CodeSidecarEgressHost, at(f+".hosts", j, ""), "host %q: %s", h, p)
			}
		}
	}
}
