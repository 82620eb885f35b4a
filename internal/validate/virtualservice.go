package validate

import (
	networking "istio.io/api/networking/v1alpha3"
)

// meshGateway is the reserved gateway name for the sidecars of the mesh.
const meshGateway = "mesh"

// virtualService applies Istio's ValidateVirtualService: host syntax, destination hosts and
// exportTo here, the routes' matches, actions and weights in virtualServiceRules.
func virtualService(r *report, vs *networking.VirtualService) {
	if len(vs.Hosts) == 0 {
		r.warnf(CodeVirtualServiceNoHosts, "spec.hosts",
			"a VirtualService without hosts is a delegate, used only through another VirtualService's delegate; meshentry does not follow delegation yet")
	}
	for i, h := range vs.Hosts {
		f := at("spec.hosts", i, "")
		switch {
		case h == "":
			r.errorf(CodeVirtualServiceHost, f, "host may not be empty")
		case h == "*" || isIP(h):
		default:
			if p := hostProblem(h, true); p != "" {
				r.errorf(CodeVirtualServiceHost, f, "host %q %s", h, p)
			}
		}
	}
	for _, d := range routeDestinations(vs) {
		switch {
		case d.host == "":
			r.errorf(CodeRouteDestination, d.field, "destination host is required")
		case d.host == "*":
			r.errorf(CodeRouteDestination, d.field, "destination host \"*\" names no service")
		default:
			if p := hostProblem(d.host, true); p != "" {
				r.errorf(CodeRouteDestination, d.field, "destination host %q %s", d.host, p)
			}
		}
	}
	exportTo(r, "spec.exportTo", vs.ExportTo, false)
	virtualServiceRules(r, vs)
}

// hostRef is a host named by a route, with the field path that names it.
type hostRef struct {
	field  string
	host   string
	subset string
}

// routeDestinations lists every destination host of a VirtualService's http, tcp and tls routes,
// including HTTP mirrors.
func routeDestinations(vs *networking.VirtualService) []hostRef {
	var refs []hostRef
	dest := func(field string, d *networking.Destination) {
		if d != nil {
			refs = append(refs, hostRef{field: field + ".host", host: d.Host, subset: d.Subset})
		}
	}
	for i, h := range vs.Http {
		if h == nil {
			continue
		}
		for j, rd := range h.Route {
			if rd != nil {
				dest(at(at("spec.http", i, ".route"), j, ".destination"), rd.Destination)
			}
		}
		dest(at("spec.http", i, ".mirror"), h.Mirror)
		for j, m := range h.Mirrors {
			if m != nil {
				dest(at(at("spec.http", i, ".mirrors"), j, ".destination"), m.Destination)
			}
		}
	}
	for i, t := range vs.Tcp {
		if t == nil {
			continue
		}
		for j, rd := range t.Route {
			if rd != nil {
				dest(at(at("spec.tcp", i, ".route"), j, ".destination"), rd.Destination)
			}
		}
	}
	for i, t := range vs.Tls {
		if t == nil {
			continue
		}
		for j, rd := range t.Route {
			if rd != nil {
				dest(at(at("spec.tls", i, ".route"), j, ".destination"), rd.Destination)
			}
		}
	}
	return refs
}

// boundToMesh reports whether a VirtualService applies to sidecars: no gateways, or "mesh" listed.
func boundToMesh(vs *networking.VirtualService) bool {
	if len(vs.Gateways) == 0 {
		return true
	}
	for _, g := range vs.Gateways {
		if g == meshGateway {
			return true
		}
	}
	return false
}
