package proxy

import (
	"fmt"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
	vroute "github.com/meshentry/meshentry/internal/route"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// buildVirtualServices compiles the VirtualServices of snap that bind this proxy (a sidecar,
// "mesh"); nil when snap has none, so that requests skip the lookup altogether.
func (p *Proxy) buildVirtualServices(snap *registry.Snapshot, imports func(namespace, host string) bool) *vroute.Table {
	for _, d := range snap.Documents {
		if d.Kind != config.KindVirtualService {
			continue
		}
		t := vroute.Build(snap, vroute.Proxy{Namespace: p.cfg.Namespace, Labels: p.cfg.Labels, Import: imports})
		for _, err := range t.Errors() {
			p.log.Warn("VirtualService rule left out", "err", err)
		}
		return t
	}
	return nil
}

// headerView lets the route table read a request's fields without copying them.
type headerView struct{ h *httpfwd.RequestHead }

// Header returns the first value of the field called name.
func (v headerView) Header(name string) ([]byte, bool) {
	b := v.h.Header(name)
	return b, b != nil
}

// viaVirtualService routes req by the VirtualService that binds its host and port, if one does
// (ok false when none does: the host's own service applies). The matched rule's destination
// is picked by weight, it may be another service and a subset, and the rule's actions go
// with the upstream for the engine to carry out.
func (h *httpRouter) viaVirtualService(t *table, req *httpfwd.RequestHead, attempt int, mp *registry.Match, dst destination) (httpfwd.Upstream, *httpfwd.Reject, bool) {
	p := h.p
	hr := h.hintedRule(t, req, attempt)
	if hr == nil {
		hr = p.httpRouteOf(t, req, dst.port)
	}
	if hr == nil {
		return httpfwd.Upstream{}, nil, false
	}
	if hr.NotFound {
		reason := fmt.Sprintf("no http route of VirtualService %s matches the request", hr.VirtualService)
		return httpfwd.Upstream{}, &httpfwd.Reject{Status: 404, Reason: reason, Flags: telemetry.NoRoute, Body: "meshentry: " + reason + "\n"}, true
	}
	va := t.vsActionsFor(hr, p)
	act := va.forRequest(pathOf(req))
	if hr.Redirect != nil || hr.DirectResponse != nil {
		return httpfwd.Upstream{Actions: act, Service: t.services.of(*mp)}, nil, true
	}
	d := hr.Pick(pickNumber(req.RequestID))
	if d == nil {
		reason := fmt.Sprintf("http route %s has no destination", hr)
		return httpfwd.Upstream{}, &httpfwd.Reject{Status: 503, Reason: reason, Flags: telemetry.NoRoute, Body: "meshentry: " + reason + "\n"}, true
	}
	up, rej := h.toDestination(t, req, attempt, mp, dst, d)
	if rej == nil {
		up.Actions = act
		up.Service = t.services.of(*mp)
	}
	return up, rej, true
}

// hintedRule is the rule loopHTTP.Serves matched req with for attempt 0, left in RouteHint
// as its vsActions: nil when there is none, or when it is another table's (a reload came
// between) or this Router routes otherwise (captured requests). The hint serves one Route.
func (h *httpRouter) hintedRule(t *table, req *httpfwd.RequestHead, attempt int) *vroute.HTTPRoute {
	va, _ := req.RouteHint.(*vsActions)
	if va == nil {
		return nil
	}
	req.RouteHint = nil
	if attempt != 0 || h.captured || va.table != t {
		return nil
	}
	return va.hr
}

// httpRouteOf is the http rule of t's VirtualServices that req, asking for port, matches:
// nil when none binds its host and port.
func (p *Proxy) httpRouteOf(t *table, req *httpfwd.RequestHead, port uint32) *vroute.HTTPRoute {
	scheme := req.Scheme
	if scheme == "" {
		scheme = "http"
	}
	// The match wants a Request it may keep a pointer to; pooled ones keep routing from
	// allocating, their Authority string reused while it reads the same.
	rq, _ := p.vsRequests.Get().(*vroute.Request)
	if rq == nil {
		rq = new(vroute.Request)
	}
	rq.Host, rq.Port, rq.Method, rq.Scheme = registry.NormalizeHost(req.Host), port, req.Method, scheme
	if a := authorityOf(req); string(a) != rq.Authority {
		rq.Authority = string(a)
	}
	rq.Path, rq.Headers = pathOf(req), headerView{req}
	hr := t.vs.HTTP(rq)
	rq.Path, rq.Headers = nil, nil
	p.vsRequests.Put(rq)
	return hr
}

// toDestination routes req to a route destination: another ServiceEntry host takes that
// service's endpoints and DestinationRule, a subset narrows them to its own.
func (h *httpRouter) toDestination(t *table, req *httpfwd.RequestHead, attempt int, mp *registry.Match, dst destination, d *vroute.Destination) (httpfwd.Upstream, *httpfwd.Reject) {
	p := h.p
	m := *mp
	other := d.Host != m.Service.Host || d.Port != m.Port.Number
	if other {
		m = t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: d.Host, Port: d.Port, Protocol: registry.TrafficHTTP}, false)
		if m.Outcome != registry.Matched {
			*mp = registry.Match{}
			reason := fmt.Sprintf("the route's destination %s:%d is declared by no ServiceEntry visible to namespace %s", d.Host, d.Port, p.cfg.Namespace)
			return httpfwd.Upstream{}, &httpfwd.Reject{Status: 503, Reason: reason, Flags: telemetry.NoRoute,
				Body: "meshentry: " + reason + "\n", Service: clusterService(d)}
		}
		*mp = m
	}
	endpoints := m.Service.Resolution != registry.ResolutionNone && m.Service.Resolution != registry.ResolutionDynamicDNS
	switch {
	case d.Subset != "" && endpoints:
		se, err := t.subsetRoute(m.Service, m.Port, d.Subset, p)
		if err != nil {
			*mp = registry.Match{}
			reason := fmt.Sprintf("subset %q of %s is not defined by a DestinationRule (cluster %s)", d.Subset, d.Host, d.Cluster)
			p.logRequestFailure(err, req.RequestID, "HTTP", d.Host, d.Port, d.Cluster)
			return httpfwd.Upstream{}, &httpfwd.Reject{Status: 503, Reason: reason, Flags: telemetry.NoRoute,
				Body: "meshentry: " + reason + "\n", Service: clusterService(d)}
		}
		m.Port, m.Cluster = se.port, se.port.Cluster
		*mp = m
		return p.endpointUpstream(se.route, req, attempt)
	case other && !endpoints:
		// Where the application sent it means nothing for another host: that host, by name.
		return p.originalUpstream(destination{host: d.Host, port: d.Port}, m.Cluster, req.RequestID)
	}
	return h.forMatch(t, req, attempt, m, dst)
}

// clusterService labels a refusal with the cluster a route named.
func clusterService(d *vroute.Destination) *telemetry.Service {
	return &telemetry.Service{Host: d.Host, Name: d.Host, Namespace: "unknown", Cluster: d.Cluster}
}

// pickNumber is the number a request's weighted destination is picked by: a hash of its
// request id, random across requests and the same for every try of one, so that retries stay
// in the cluster the first try chose, as Envoy's do.
func pickNumber(id []byte) uint32 {
	h := uint32(2166136261) // FNV-1a, inline so that it does not allocate
	for _, b := range id {
		h ^= uint32(b)
		h *= 16777619
	}
	// murmur3's finalizer spreads the bits, so that a small total of weights picks evenly.
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	return h ^ h>>16
}

// authorityOf is the Host field of req, or the authority of an absolute-form target.
func authorityOf(req *httpfwd.RequestHead) []byte {
	if req.Absolute {
		if a := req.Authority(); a != nil {
			return a
		}
	}
	return req.Header("host")
}

// pathOf is the path and query of req as the upstream gets it.
func pathOf(req *httpfwd.RequestHead) []byte {
	if !req.Absolute {
		return req.Target
	}
	if len(req.Path) == 0 || req.Path[0] != '/' {
		return append([]byte{'/'}, req.Path...)
	}
	return req.Path
}
