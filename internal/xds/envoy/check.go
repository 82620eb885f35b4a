package envoy

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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
	names := map[string]map[string]bool{}
	for typ, list := range res {
		names[typ] = map[string]bool{}
		for _, r := range list {
			if v, ok := r.(validator); ok {
				if err := v.ValidateAll(); err != nil {
					return fmt.Errorf("%s %q: %w", typ, nameOf(r), err)
				}
			}
			names[typ][nameOf(r)] = true
		}
	}
	api := map[string]bool{}
	for _, r := range res[resource.ListenerType] {
		l := r.(*listener.Listener)
		for _, rds := range RouteNames(l) {
			if !names[resource.RouteType][rds] {
				return fmt.Errorf("listener %q names route configuration %q, which is missing", nameOf(r), rds)
			}
			api[rds] = api[rds] || l.GetApiListener() != nil
		}
	}
	for _, r := range res[resource.RouteType] {
		if !api[nameOf(r)] {
			// Envoy answers 503 for a sidecar route to an unknown cluster (validate_clusters off),
			// as Istio's does for a destination no ServiceEntry declares; grpc-go NACKs instead.
			continue
		}
		for _, c := range RouteClusters(r.(*routev3.RouteConfiguration)) {
			if !names[resource.ClusterType][c] {
				return fmt.Errorf("route configuration %q names cluster %q, which is missing", nameOf(r), c)
			}
		}
	}
	for _, r := range res[resource.ClusterType] {
		c := r.(*cluster.Cluster)
		if c.GetType() == cluster.Cluster_EDS && !names[resource.EndpointType][c.Name] {
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
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			ra := r.GetRoute()
			if c := ra.GetCluster(); c != "" {
				out = append(out, c)
			}
			for _, wc := range ra.GetWeightedClusters().GetClusters() {
				out = append(out, wc.Name)
			}
		}
	}
	return out
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
