package envoy

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"time"
)

type validator interface{ ValidateAll() error }

// Check validates every resource (ValidateAll) and the references between them: each RDS name a
// listener's HTTP connection manager names, API listeners included (go-control-plane's
// Consistent does not follow those), each cluster an API listener's routes name, and each EDS
// cluster's load assignment must be present.
func Check(res Resources) error {
	for _, list := range res {
		for _, r := range list {
			if v, ok := r.(validator); ok {
				if err := v.ValidateAll(); err != nil {
					return fmt.Errorf("%s %q: %w", typeName(r), nameOf(r), err)
				}
			}
		}
	}
	var eds []proto.Message
	for _, r := range res[resource.ClusterType] {
		eds = append(eds, r)
	}
	return refs(res, eds, RouteNames)
}

// check is Check validating only fresh, the messages not validated before (a Build reuses
// validated ones), each without the parts listed in fresh on their own (validateShallow), and
// reading RDS names through routeNames. A reused cluster comes with its load assignment, so
// only fresh clusters are looked up for one.
func check(res Resources, fresh []proto.Message, routeNames func(*listener.Listener) []string) error {
	for _, r := range fresh {
		if err := validateShallow(r); err != nil {
			return fmt.Errorf("%s %q: %w", typeName(r), nameOf(r), err)
		}
	}
	return refs(res, fresh, routeNames)
}

// refs checks the references between resources: RDS names of listeners, clusters of API
// listeners' routes, and the load assignment of each EDS cluster among clusters.
func refs(res Resources, clusters []proto.Message, routeNames func(*listener.Listener) []string) error {
	set := func(typ string) map[string]bool {
		m := make(map[string]bool, len(res[typ]))
		for _, r := range res[typ] {
			m[nameOf(r)] = true
		}
		return m
	}
	routes := set(resource.RouteType)
	api := map[string]bool{}
	for _, r := range res[resource.ListenerType] {
		l := r.(*listener.Listener)
		for _, rds := range routeNames(l) {
			if !routes[rds] {
				return fmt.Errorf("listener %q names route configuration %q, which is missing", nameOf(r), rds)
			}
			if l.GetApiListener() != nil {
				api[rds] = true
			}
		}
	}
	var known map[string]bool
	for _, r := range res[resource.RouteType] {
		if !api[nameOf(r)] {
			// Envoy answers 503 for a sidecar route to an unknown cluster (validate_clusters off),
			// as Istio's does for a destination no ServiceEntry declares; grpc-go NACKs instead.
			continue
		}
		if known == nil {
			known = set(resource.ClusterType)
		}
		missing := ""
		eachRouteCluster(r.(*routev3.RouteConfiguration), func(c string) {
			if missing == "" && !known[c] {
				missing = c
			}
		})
		if missing != "" {
			return fmt.Errorf("route configuration %q names cluster %q, which is missing", nameOf(r), missing)
		}
	}
	var cla map[string]bool
	for _, r := range clusters {
		c, ok := r.(*cluster.Cluster)
		if !ok || c.GetType() != cluster.Cluster_EDS {
			continue
		}
		if cla == nil {
			cla = set(resource.EndpointType)
		}
		if !cla[c.Name] {
			return fmt.Errorf("EDS cluster %q has no load assignment", c.Name)
		}
	}
	return nil
}

// RouteNames lists the RDS names a listener's connection managers ask for.
func RouteNames(l *listener.Listener) []string {
	var out []string
	if api := l.GetApiListener().GetApiListener(); api != nil {
		m := &hcm.HttpConnectionManager{}
		if api.UnmarshalTo(m) == nil && m.GetRds() != nil {
			out = append(out, m.GetRds().RouteConfigName)
		}
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			m := &hcm.HttpConnectionManager{}
			if f.GetTypedConfig().UnmarshalTo(m) == nil && m.GetRds() != nil {
				out = append(out, m.GetRds().RouteConfigName)
			}
		}
	}
	return out
}

// RouteClusters lists the clusters a route configuration's routes send to.
func RouteClusters(rc *routev3.RouteConfiguration) []string {
	var out []string
	eachRouteCluster(rc, func(c string) { out = append(out, c) })
	return out
}

// eachRouteCluster calls f with each cluster rc's routes send to, without making a list: a
// proxyless client's 10,000 tables are walked on every Build.
func eachRouteCluster(rc *routev3.RouteConfiguration, f func(string)) {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			ra := r.GetRoute()
			if c := ra.GetCluster(); c != "" {
				f(c)
			}
			for _, wc := range ra.GetWeightedClusters().GetClusters() {
				f(wc.Name)
			}
		}
	}
}

func nameOf(r types.Resource) string {
	return resourceName(r)
}

func resourceName(r types.Resource) string {
	type named interface{ GetName() string }
	if n, ok := r.(named); ok {
		return n.GetName()
	}
	if c, ok := r.(interface{ GetClusterName() string }); ok {
		return c.GetClusterName()
	}
	return ""
}

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func boolOf(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }

// validateShallow is r.ValidateAll without descending into a route table's virtual hosts or a
// listener's filter chains, which a Build validates on their own when it makes them (and only
// then): a table of 10,000 hosts is not checked again for one that changed. r is fresh, seen by
// no one yet, so its lists may be set aside for the call.
func validateShallow(r proto.Message) error {
	switch m := r.(type) {
	case *routev3.RouteConfiguration:
		vhs := m.VirtualHosts
		m.VirtualHosts = nil
		defer func() { m.VirtualHosts = vhs }()
	case *listener.Listener:
		chains := m.FilterChains
		m.FilterChains = nil
		defer func() { m.FilterChains = chains }()
	}
	if v, ok := r.(validator); ok {
		return v.ValidateAll()
	}
	return nil
}

// typeName is the type URL of r, as errors name resource types.
func typeName(r proto.Message) string {
	return resource.APITypePrefix + string(proto.MessageName(r))
}
