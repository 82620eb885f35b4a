package envoy

import (
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// ConfigDump lays resources out as Envoy's /config_dump does (dynamic clusters, listeners,
// route configurations and endpoints), all at version.
func ConfigDump(res Resources, version string) *adminv3.ConfigDump {
	cd := &adminv3.ClustersConfigDump{VersionInfo: version}
	for _, r := range res[resource.ClusterType] {
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: version, Cluster: pack(r)})
	}
	ld := &adminv3.ListenersConfigDump{VersionInfo: version}
	for _, r := range res[resource.ListenerType] {
		ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{Name: nameOf(r),
			ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: version, Listener: pack(r)}})
	}
	rd := &adminv3.RoutesConfigDump{}
	for _, r := range res[resource.RouteType] {
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: version, RouteConfig: pack(r)})
	}
	ed := &adminv3.EndpointsConfigDump{}
	for _, r := range res[resource.EndpointType] {
		ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: version, EndpointConfig: pack(r)})
	}
	return &adminv3.ConfigDump{Configs: []*anypb.Any{mustAny(cd), mustAny(ld), mustAny(rd), mustAny(ed)}}
}

func pack(r types.Resource) *anypb.Any { return mustAny(r) }
