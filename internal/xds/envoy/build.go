package envoy

import (
	"fmt"
	"sort"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

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

	mu sync.Mutex
	// classes are the translations this Shared made, by kind of node (classKey); prev are those
	// of the Shared it was made from, the reference its Builds reuse pieces of.
	classes map[string]*classCache
	prev    map[string]*classCache
}

// NewShared indexes snap's DestinationRules for all nodes.
func NewShared(snap *registry.Snapshot, opts Options) *Shared {
	return NewSharedFrom(nil, snap, opts)
}

// NewSharedFrom is NewShared for the snapshot that follows prev's (nil for none): each Build
// reuses, as the same proto messages, what prev's Build for the same kind of node made for the
// services that did not change, so that a push after one change translates that change only.
// prev is not kept: only its translations are, until the Builds of the new Shared replace them.
func NewSharedFrom(prev *Shared, snap *registry.Snapshot, opts Options) *Shared {
	root := opts.RootNamespace
	if root == "" {
		root = "istio-system"
	}
	s := &Shared{Snap: snap, Policies: policy.Build(snap.Documents, root), Opts: opts, root: root,
		classes: map[string]*classCache{}, prev: map[string]*classCache{}}
	if prev == nil || prev.Opts != opts {
		return s
	}
	prev.mu.Lock()
	defer prev.mu.Unlock()
	for k, c := range prev.prev {
		if _, rebuilt := prev.classes[k]; !rebuilt && c.stale < maxStale {
			aged := *c
			aged.stale++
			s.prev[k] = &aged
		}
	}
	for k, c := range prev.classes {
		s.prev[k] = c
	}
	return s
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
	// old is the reference translation of this kind of node (empty for none), cur what this
	// Build makes for the next; fresh are the resources made anew, the only ones to validate.
	old, cur *classCache
	fresh    []proto.Message
	// seen caches visible.
	seen []*registry.Service
	// misses counts, per kind of piece, the lookups sameAsBefore made.
	misses [3]int
}

// Build translates the snapshot for node n: the sidecar form, or the API-listener form when the
// node is a proxyless gRPC client. Every resource passes ValidateAll and the set is consistent
// (every RDS and EDS name referenced exists); an error says which check failed.
func (s *Shared) Build(n Node) (Resources, error) { return s.BuildScoped(n, nil) }

// BuildScoped is Build with imp deciding which VirtualServices the node imports (see
// route.Proxy.Import) in place of its Sidecar's egress hosts; imp nil takes the Sidecar's. The
// services, their clusters and the outbound policy follow the node's Sidecar either way, as in
// the proxy and explain. A Build with imp set reuses nothing and is not reused.
func (s *Shared) BuildScoped(n Node, imp func(namespace, host string) bool) (Resources, error) {
	b := &builder{Shared: s, node: n, out: Resources{}}
	key := classKey(n)
	if imp == nil {
		s.mu.Lock()
		b.old = s.classes[key]
		if b.old == nil {
			b.old = s.prev[key]
		}
		s.mu.Unlock()
	}
	b.cur = newClassCache(b.old)
	if b.old == nil {
		b.old = newClassCache(nil)
	}
	b.scope = registry.NewScope(s.Snap, registry.ScopeProxy{Namespace: n.Namespace, Labels: n.Labels, RootNamespace: s.root})
	b.allowAny = b.scope.AllowAny(s.Opts.AllowAny)
	custom := imp != nil
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
		sortByName(list)
	}
	if err := check(b.out, b.fresh, b.routeNames); err != nil {
		return nil, fmt.Errorf("node %s: %w", n.ID, err)
	}
	if !custom {
		s.mu.Lock()
		s.classes[key] = b.cur
		delete(s.prev, key)
		s.mu.Unlock()
	}
	return b.out, nil
}

// sortByName sorts list by resource name, reading each name once.
func sortByName(list []types.Resource) {
	names := make([]string, len(list))
	for i, r := range list {
		names[i] = nameOf(r)
	}
	sort.Sort(byName{names, list})
}

type byName struct {
	names []string
	list  []types.Resource
}

func (s byName) Len() int           { return len(s.list) }
func (s byName) Less(i, j int) bool { return s.names[i] < s.names[j] }
func (s byName) Swap(i, j int) {
	s.names[i], s.names[j] = s.names[j], s.names[i]
	s.list[i], s.list[j] = s.list[j], s.list[i]
}

// routeNames are l's RDS names, decoded once per listener message.
func (b *builder) routeNames(l *listener.Listener) []string {
	names, ok := b.old.routeNames[l]
	if !ok {
		names = RouteNames(l)
	}
	b.cur.routeNames[l] = names
	return names
}

func (b *builder) add(typ string, r types.Resource) { b.out[typ] = append(b.out[typ], r) }

// visible lists the services the node may use, one per host (the first in precedence order).
func (b *builder) visible() []*registry.Service {
	if b.seen != nil {
		return b.seen
	}
	seen := make(map[string]bool, len(b.Snap.Services))
	out := make([]*registry.Service, 0, len(b.Snap.Services))
	for _, svc := range b.Snap.Services {
		if svc.VisibleTo(b.node.Namespace) && !seen[svc.Host] {
			seen[svc.Host] = true
			out = append(out, svc)
		}
	}
	b.seen = out
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
			p := b.clusterPiece(svc, port, applied)
			b.out[resource.ClusterType] = append(b.out[resource.ClusterType], p.clusters...)
			b.out[resource.EndpointType] = append(b.out[resource.EndpointType], p.clas...)
		}
	}
	if !b.node.Proxyless() {
		b.add(resource.ClusterType, intern(b, "cluster|"+BlackHole, &cluster.Cluster{Name: BlackHole, ConnectTimeout: durationOf(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}}))
		b.add(resource.ClusterType, intern(b, "cluster|"+Passthrough, &cluster.Cluster{Name: Passthrough, ConnectTimeout: durationOf(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}, LbPolicy: cluster.Cluster_CLUSTER_PROVIDED}))
	}
}

// clusterPiece returns the clusters of one service port under applied: the last Build's when
// it made them from the same service and an equal rule, else new ones.
func (b *builder) clusterPiece(svc *registry.Service, port *registry.Port, applied *policy.Applied) *clusterPiece {
	k := svcPort{svc, port.Number}
	if p := b.old.clusters[k]; p != nil && appliedEqual(p.applied, applied) {
		b.cur.clusters[k] = p
		return p
	}
	p := &clusterPiece{applied: applied}
	p.addCluster(b, svc, port, nil, applied)
	if applied != nil {
		for j := range applied.Subsets {
			p.addCluster(b, svc, port, &applied.Subsets[j], applied)
		}
	}
	b.cur.clusters[k] = p
	return p
}

func (p *clusterPiece) addCluster(b *builder, svc *registry.Service, port *registry.Port, sub *policy.Subset, applied *policy.Applied) {
	c, cla := clusterFor(svc, port, sub, applied, b.node)
	if b.node.Proxyless() && c.GetType() == cluster.Cluster_STRICT_DNS {
		// grpc-go takes EDS, LOGICAL_DNS and aggregate clusters only.
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_LOGICAL_DNS}
		c.LoadAssignment.Endpoints = c.LoadAssignment.Endpoints[:min(1, len(c.LoadAssignment.Endpoints))]
		if len(c.LoadAssignment.Endpoints) == 1 {
			c.LoadAssignment.Endpoints[0].LbEndpoints = c.LoadAssignment.Endpoints[0].LbEndpoints[:1]
		}
	}
	p.clusters = append(p.clusters, sameAsBefore(b, kindClusters, svcPort{svc, port.Number}, c))
	if cla != nil {
		p.clas = append(p.clas, sameAsBefore(b, kindClusters, svcPort{svc, port.Number}, cla))
	}
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
