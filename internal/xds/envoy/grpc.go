package envoy

import (
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/route"
)

// grpcListeners gives a proxyless client one API listener per service port, named host:port as
// its xds:///host:port target asks, with a route table of the same name.
func (b *builder) grpcListeners() {
	for _, svc := range b.visible() {
		if svc.Resolution == registry.ResolutionNone || svc.Wildcard {
			continue
		}
		for _, p := range svc.Ports {
			if p.Family&(registry.FamilyHTTP|registry.FamilyAuto) == 0 {
				continue
			}
			name := svc.Host + ":" + itoa(p.Number)
			b.add(resource.ListenerType, &listener.Listener{
				Name:        name,
				ApiListener: &listener.ApiListener{ApiListener: mustAny(httpManager(name))},
			})
			vh := &routev3.VirtualHost{Name: name, Domains: []string{name, svc.Host}}
			for _, v := range b.table.VirtualHosts(route.Mesh, p.Number) {
				if v.Domain == svc.Host {
					for _, r := range v.Routes {
						vh.Routes = append(vh.Routes, envoyRoutes(r, p.Number, b.node)...)
					}
				}
			}
			if len(vh.Routes) == 0 {
				r := defaultRoute(p.Cluster)
				// grpc-go applies the route's retry policy itself; Istio's default would retry
				// every call twice on UNAVAILABLE, hiding a failed backend from the test of it.
				r.GetRoute().RetryPolicy = nil
				vh.Routes = []*routev3.Route{r}
			}
			b.add(resource.RouteType, &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}})
		}
	}
}
