package envoy

import (
	"fmt"
	"sort"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/route"
)

// Options are the mesh-wide settings a translation needs beyond the snapshot.
type Options struct {
	// AllowAny is outboundTrafficPolicy ALLOW_ANY (PassthroughCluster) rather than REGISTRY_ONLY.
	AllowAny bool
	// RootNamespace is the mesh root for DestinationRule lookup ("" means istio-system).
	RootNamespace string
}

// Shared is what every node's translation of one snapshot reads: build it once per snapshot.
type Shared struct {
	Snap     *registry.Snapshot
	Policies *policy.Index
	Opts     Options
	// root is the mesh root namespace, where a default Sidecar applies to every proxy.
	root string
}

// NewShared indexes snap's DestinationRules for all nodes.
func NewShared(snap *registry.Snapshot, opts Options) *Shared {
	root := opts.RootNamespace
	if root == "" {
		root = "istio-system"
	}
	return &Shared{Snap: snap, Policies: policy.Build(snap.Documents, root), Opts: opts, root: root}
}

// Resources are one node's resources, by type URL, each list sorted by name.
type Resources map[string][]types.Resource

type builder struct {
	*Shared
	node  Node
	table *route.Table
	out   Resources
	// scope is what the Sidecar that applies to the node imports, as the proxy and explain
	// narrow it; allowAny is the outbound policy under it.
	scope    *registry.Scope
	allowAny bool
}

// Build translates the snapshot for node n: the sidecar form, or the API-listener form when the
// node is a proxyless gRPC client. Every resource passes ValidateAll and the set is consistent
// (every RDS and EDS name referenced exists); an error says which check failed.
func (s *Shared) Build(n Node) (Resources, error) { return s.BuildScoped(n, nil) }

// BuildScoped is Build with imp deciding which VirtualServices the node imports (see
// route.Proxy.Import) in place of its Sidecar's egress hosts; imp nil takes the Sidecar's. The
// services, their clusters and the outbound policy follow the node's Sidecar either way, as in
// the proxy and explain.
func (s *Shared) BuildScoped(n Node, imp func(namespace, host string) bool) (Resources, error) {
	b := &builder{Shared: s, node: n, out: Resources{}}
	b.scope = registry.NewScope(s.Snap, registry.ScopeProxy{Namespace: n.Namespace, Labels: n.Labels, RootNamespace: s.root})
	b.allowAny = b.scope.AllowAny(s.Opts.AllowAny)
	if imp == nil {
		imp = b.scope.ImportFunc()
	}
	b.table = route.Build(s.Snap, route.Proxy{Namespace: n.Namespace, Labels: n.Labels, Import: imp})
	b.clusters()
	if n.Proxyless() {
		b.grpcListeners()
	} else {
		b.listeners()
	}
	for _, list := range b.out {
		sort.Slice(list, func(i, j int) bool { return nameOf(list[i]) < nameOf(list[j]) })
	}
	if err := Check(b.out); err != nil {
		return nil, fmt.Errorf("node %s: %w", n.ID, err)
	}
	return b.out, nil
}

func (b *builder) add(typ string, r types.Resource) { b.out[typ] = append(b.out[typ], r) }

// visible lists the services the node may use, one per host (the first in precedence order).
func (b *builder) visible() []*registry.Service {
	seen := map[string]bool{}
	var out []*registry.Service
	for _, svc := range b.Snap.Services {
		if svc.VisibleTo(b.node.Namespace) && !seen[svc.Host] {
			seen[svc.Host] = true
			out = append(out, svc)
		}
	}
	return out
}

func (b *builder) clusters() {
	pp := policy.Proxy{Namespace: b.node.Namespace, Labels: b.node.Labels}
	// The destinations of imported VirtualServices get clusters too, though no routes.
	imported := b.scope.Clusters()
	for _, svc := range b.visible() {
		if b.node.Proxyless() && svc.Resolution == registry.ResolutionNone {
			continue // grpc-go has no ORIGINAL_DST clusters
		}
		for i := range svc.Ports {
			port := &svc.Ports[i]
			if port.Family == registry.FamilyUDP || !b.node.Proxyless() && imported.Excluded(svc, port.Number) != "" {
				continue
			}
			applied, _ := b.Policies.For(svc, port.Number, pp)
			b.addCluster(clusterFor(svc, port, nil, applied, b.node))
			if applied == nil {
				continue
			}
			for j := range applied.Subsets {
				b.addCluster(clusterFor(svc, port, &applied.Subsets[j], applied, b.node))
			}
		}
	}
	if !b.node.Proxyless() {
		b.add(resource.ClusterType, &cluster.Cluster{Name: BlackHole, ConnectTimeout: durationOf(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}})
		b.add(resource.ClusterType, &cluster.Cluster{Name: Passthrough, ConnectTimeout: durationOf(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}, LbPolicy: cluster.Cluster_CLUSTER_PROVIDED})
	}
}

func (b *builder) addCluster(c *cluster.Cluster, cla *endpoint.ClusterLoadAssignment) {
	if b.node.Proxyless() && c.GetType() == cluster.Cluster_STRICT_DNS {
		// grpc-go takes EDS, LOGICAL_DNS and aggregate clusters only.
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_LOGICAL_DNS}
		c.LoadAssignment.Endpoints = c.LoadAssignment.Endpoints[:min(1, len(c.LoadAssignment.Endpoints))]
		if len(c.LoadAssignment.Endpoints) == 1 {
			c.LoadAssignment.Endpoints[0].LbEndpoints = c.LoadAssignment.Endpoints[0].LbEndpoints[:1]
		}
	}
	b.add(resource.ClusterType, c)
	if cla != nil {
		b.add(resource.EndpointType, cla)
	}
}

// listeners builds the sidecar's outbound listeners and their route tables.
func (b *builder) listeners() {
	catchAll := BlackHole
	if b.allowAny {
		catchAll = Passthrough
	}
	b.add(resource.ListenerType, virtualOutbound(b.allowAny))
	byPort := map[uint32][]*registry.Service{}
	for _, svc := range b.visible() {
		for _, p := range svc.Ports {
			if b.scope.Excluded(svc, p.Number) == "" {
				byPort[p.Number] = append(byPort[p.Number], svc)
			}
		}
	}
	ports := sortedKeys32(byPort)
	for _, port := range ports {
		var chains []*listener.FilterChain
		var httpSvcs []*registry.Service
		for _, svc := range byPort[port] {
			if svc.Port(port).Family&(registry.FamilyHTTP|registry.FamilyAuto) != 0 {
				httpSvcs = append(httpSvcs, svc)
			}
		}
		if len(httpSvcs) > 0 || len(b.table.VirtualHosts(route.Mesh, port)) > 0 {
			chains = append(chains, httpChain(itoa(port)))
			b.add(resource.RouteType, b.routeConfig(itoa(port), port, httpSvcs, catchAll))
		}
		chains = append(chains, b.l4Chains(port, byPort[port])...)
		if len(chains) > 0 {
			b.add(resource.ListenerType, portListener(port, chains, catchAll))
		}
	}
}

// routeConfig is the RDS table of one port: a virtual host per service (its own cluster, or the
// VirtualService that binds its host), one per VirtualService host that names no service, and
// the catch-all of the outbound policy.
func (b *builder) routeConfig(name string, port uint32, svcs []*registry.Service, catchAll string) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name, ValidateClusters: boolOf(false)}
	taken := map[string]bool{}
	addVH := func(vh *routev3.VirtualHost, domains ...string) {
		for _, d := range domains {
			if !taken[d] {
				taken[d] = true
				vh.Domains = append(vh.Domains, d)
			}
		}
		if len(vh.Domains) > 0 {
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	for _, vh := range b.table.VirtualHosts(route.Mesh, port) {
		evh := &routev3.VirtualHost{Name: vh.Domain + ":" + itoa(port)}
		for _, r := range vh.Routes {
			evh.Routes = append(evh.Routes, envoyRoutes(r, port, b.node)...)
		}
		addVH(evh, domainVariants(vh.Domain, port)...)
	}
	for _, svc := range svcs {
		vh := &routev3.VirtualHost{Name: svc.Host + ":" + itoa(port), Routes: []*routev3.Route{defaultRoute(svc.Port(port).Cluster)}}
		addVH(vh, domainVariants(svc.Host, port)...)
	}
	name2 := "block_all"
	if catchAll == Passthrough {
		name2 = "allow_any"
	}
	addVH(&routev3.VirtualHost{Name: name2, Routes: []*routev3.Route{catchAllRoute(catchAll)}}, "*")
	return rc
}

// domainVariants are the Host values a request for host on port may carry.
func domainVariants(host string, port uint32) []string {
	if host == "*" {
		return []string{"*"}
	}
	return []string{host, host + ":" + itoa(port)}
}

func catchAllRoute(catchAll string) *routev3.Route {
	if catchAll == BlackHole {
		return &routev3.Route{Name: "block_all", Match: prefixAll(),
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}}}
	}
	r := defaultRoute(Passthrough)
	r.Name = "allow_any"
	r.GetRoute().RetryPolicy = nil
	return r
}

func sortedKeys32[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
