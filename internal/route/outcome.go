package route

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// builder holds what compiling needs: the snapshot and the proxy.
type builder struct {
	snap *registry.Snapshot
	p    Proxy
	// gateway is set while compiling for a gateway rather than "mesh".
	gateway bool
	// known holds the "ns/name" of every Gateway in the snapshot.
	known map[string]bool
	// headerIDs numbers the header names that matches use.
	headerIDs map[string]int
}

// visible reports whether the proxy sees svc: exported to its namespace and imported.
func (b *builder) visible(svc *registry.Service) bool {
	return svc.VisibleTo(b.p.Namespace) && (b.p.Import == nil || b.p.Import(svc.Namespace, svc.Host))
}

// service returns the service a destination host names for this proxy, or nil.
func (b *builder) service(host string) *registry.Service {
	for _, svc := range b.snap.Services {
		if svc.Host == host && b.visible(svc) {
			return svc
		}
	}
	return nil
}

// destination resolves a route destination: the host completed against the VirtualService's
// namespace, the port from the destination, else (with singlePort) the service's only port, else
// the listener's. Istio's sidecar http routes look services up among those on the listener's
// port only, so there a destination without a port always takes the listener's port.
func (b *builder) destination(d *networking.Destination, weight int32, ns string, listen uint32, singlePort bool) Destination {
	out := Destination{Host: ResolveHost(d.GetHost(), ns), Subset: d.GetSubset(), Weight: weight}
	out.Port = d.GetPort().GetNumber()
	if out.Port == 0 {
		if svc := b.service(out.Host); singlePort && svc != nil && len(svc.Ports) == 1 {
			out.Port = svc.Ports[0].Number
		} else {
			out.Port = listen
		}
	}
	out.Cluster = ClusterName(out.Port, out.Subset, out.Host)
	return out
}

// weighted fills in Istio's weight defaults: a lone destination without a weight takes all. The
// sum is an int64, as int32 weights that Envoy accepts (a sum up to 2^32-1) overflow an int32.
func weighted(ds []Destination) int64 {
	var total int64
	for _, d := range ds {
		total += int64(d.Weight)
	}
	if total == 0 {
		for i := range ds {
			ds[i].Weight = 1
		}
		total = int64(len(ds))
		if len(ds) == 1 {
			ds[0].Weight, total = 100, 100
		}
	}
	return total
}

// outcome builds what a rule does when it matches on listener port listen.
func (b *builder) outcome(doc *config.Document, rule *httpRule, listen uint32) (*HTTPRoute, error) {
	r := rule.spec
	out := &HTTPRoute{
		VirtualService: doc.Namespace + "/" + doc.Name, Doc: doc, Index: rule.index, Name: r.Name,
		Redirect: compileRedirect(r.Redirect), DirectResponse: compileDirect(r.DirectResponse),
		Timeout: r.Timeout.AsDuration(), Fault: compileFault(r.Fault),
	}
	var err error
	if out.Rewrite, err = compileRewrite(r.Rewrite); err != nil {
		return nil, err
	}
	if out.CORS, err = compileCORS(r.CorsPolicy); err != nil {
		return nil, err
	}
	fieldOps(r.Headers.GetRequest(), &out.Headers.Request)
	fieldOps(r.Headers.GetResponse(), &out.Headers.Response)
	for _, d := range r.Route {
		out.Route = append(out.Route, b.destination(d.Destination, d.Weight, doc.Namespace, listen, b.gateway))
		fieldOps(d.Headers.GetRequest(), &out.Headers.Request)
		fieldOps(d.Headers.GetResponse(), &out.Headers.Response)
	}
	out.total = weighted(out.Route)
	if len(out.Route) > 0 {
		if out.Retries, err = compileRetries(r.Retries); err != nil {
			return nil, err
		}
	}
	b.mirror(out, r, doc.Namespace, listen)
	return out, nil
}

// mirror takes the first of mirror / mirrors; an unset percentage mirrors everything, as Istio.
func (b *builder) mirror(out *HTTPRoute, r *networking.HTTPRoute, ns string, listen uint32) {
	switch {
	case r.Mirror != nil:
		d := b.destination(r.Mirror, 0, ns, listen, b.gateway)
		out.Mirror, out.MirrorPercent = &d, 100
		if r.MirrorPercentage != nil {
			out.MirrorPercent = r.MirrorPercentage.Value
		} else if r.MirrorPercent != nil {
			out.MirrorPercent = float64(r.MirrorPercent.Value)
		}
	case len(r.Mirrors) > 0:
		d := b.destination(r.Mirrors[0].Destination, 0, ns, listen, b.gateway)
		out.Mirror, out.MirrorPercent = &d, 100
		if pc := r.Mirrors[0].Percentage; pc != nil {
			out.MirrorPercent = pc.Value
		}
	}
}

// Pick returns the destination for n, a random number or counter from the caller, by weight.
func (r *HTTPRoute) Pick(n uint32) *Destination {
	return pick(r.Route, r.total, n)
}

// Pick returns the destination for n by weight, as HTTPRoute.Pick.
func (r *L4Route) Pick(n uint32) *Destination {
	return pick(r.Route, r.total, n)
}

func pick(ds []Destination, total int64, n uint32) *Destination {
	if len(ds) == 0 {
		return nil
	}
	if total <= 0 {
		return &ds[0]
	}
	v := int64(n) % total
	for i := range ds {
		if v < int64(ds[i].Weight) {
			return &ds[i]
		}
		v -= int64(ds[i].Weight)
	}
	return &ds[len(ds)-1]
}

// String names the route for logs: "ns/name http[i]".
func (r *HTTPRoute) String() string {
	return fmt.Sprintf("%s http[%d]", r.VirtualService, r.Index)
}
