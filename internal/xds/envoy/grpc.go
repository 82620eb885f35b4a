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
	// The VirtualService hosts of each port by domain, looked up once per service port.
	byDomain := map[uint32]map[string][]*route.VirtualHost{}
	for _, svc := range b.visible() {
		if svc.Resolution == registry.ResolutionNone || svc.Wildcard {
			continue
		}
		for i := range svc.Ports {
			p := &svc.Ports[i]
			if p.Family&(registry.FamilyHTTP|registry.FamilyAuto) == 0 {
				continue
			}
			vhs, ok := byDomain[p.Number]
			if !ok {
				vhs = map[string][]*route.VirtualHost{}
				all := b.table.VirtualHosts(route.Mesh, p.Number)
				for j := range all {
					vhs[all[j].Domain] = append(vhs[all[j].Domain], &all[j])
				}
				byDomain[p.Number] = vhs
			}
			piece := b.grpcPiece(svc, p)
			b.add(resource.ListenerType, piece.listener)
			rc := piece.defRC
			if routed := vhs[svc.Host]; len(routed) > 0 {
				if own := b.grpcRoutes(piece.listener.Name, svc.Host, p.Number, routed); own != nil {
					rc = own
				}
			}
			b.add(resource.RouteType, rc)
		}
	}
}

// grpcPiece is the API listener of one service port and its route table without
// VirtualService, the last Build's when there was one for the same service.
func (b *builder) grpcPiece(svc *registry.Service, p *registry.Port) *grpcPiece {
	k := svcPort{svc, p.Number}
	if g := b.old.grpc[k]; g != nil {
		b.cur.grpc[k] = g
		return g
	}
	name := svc.Host + ":" + itoa(p.Number)
	r := defaultRoute(p.Cluster)
	// grpc-go applies the route's retry policy itself; Istio's default would retry every call
	// twice on UNAVAILABLE, hiding a failed backend from the test of it.
	r.GetRoute().RetryPolicy = nil
	g := &grpcPiece{
		listener: &listener.Listener{Name: name, ApiListener: &listener.ApiListener{ApiListener: mustAny(httpManager(name, true))}},
		defRC: &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
			Name: name, Domains: []string{name, svc.Host}, Routes: []*routev3.Route{r}}}},
	}
	b.fresh = append(b.fresh, g.listener, g.defRC.VirtualHosts[0], g.defRC)
	b.cur.grpc[k] = g
	return g
}

// grpcRoutes is the route table of a service port a VirtualService routes, rebuilt each Build
// and interned; nil when the VirtualService's rules all miss the port, which leaves the
// service's own cluster in place.
func (b *builder) grpcRoutes(name, host string, port uint32, routed []*route.VirtualHost) *routev3.RouteConfiguration {
	vh := &routev3.VirtualHost{Name: name, Domains: []string{name, host}}
	for _, v := range routed {
		for _, r := range v.Routes {
			vh.Routes = append(vh.Routes, envoyRoutes(r, port, b.node)...)
		}
	}
	if len(vh.Routes) == 0 {
		return nil
	}
	vh = intern(b, "vhost|"+name, vh)
	return intern(b, "route|"+name, &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}})
}
