package envoy

import (
	"net/netip"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origdst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshentry/meshentry/internal/registry"
)

// VirtualOutbound is the name Istio gives the capture listener on 15001.
const VirtualOutbound = "virtualOutbound"

// virtualOutbound is the listener iptables redirects to: it hands each connection to the listener
// of its original destination and, when none takes it, to the catch-all of the outbound policy.
func virtualOutbound(allowAny bool) *listener.Listener {
	catchAll := BlackHole
	if allowAny {
		catchAll = Passthrough
	}
	return &listener.Listener{
		Name:           VirtualOutbound,
		Address:        socketAddress("0.0.0.0", 15001),
		UseOriginalDst: wrapperspb.Bool(true),
		ListenerFilters: []*listener.ListenerFilter{{Name: "envoy.filters.listener.original_dst",
			ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&origdst.OriginalDst{})}}},
		FilterChains: []*listener.FilterChain{tcpChain(catchAll, catchAll, nil)},
	}
}

// portListener is Istio's 0.0.0.0_PORT listener (bind_to_port false: only the virtual listener
// hands connections to it).
func portListener(port uint32, chains []*listener.FilterChain, catchAll string) *listener.Listener {
	l := &listener.Listener{
		Name:               "0.0.0.0_" + itoa(port),
		Address:            socketAddress("0.0.0.0", port),
		BindToPort:         wrapperspb.Bool(false),
		FilterChains:       chains,
		DefaultFilterChain: tcpChain(catchAll, catchAll, nil),
	}
	for _, c := range chains {
		if len(c.GetFilterChainMatch().GetServerNames()) > 0 {
			l.ListenerFilters = []*listener.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
				ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspector.TlsInspector{})}}}
			break
		}
	}
	return l
}

// tcpChain proxies to cluster, for connections the match selects.
func tcpChain(name, cluster string, match *listener.FilterChainMatch) *listener.FilterChain {
	tp := &tcpproxy.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpproxy.TcpProxy_Cluster{Cluster: cluster}}
	return &listener.FilterChain{
		Name:             name,
		FilterChainMatch: match,
		Filters: []*listener.Filter{{Name: "envoy.filters.network.tcp_proxy",
			ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(tp)}}},
	}
}

// httpManager is the HCM that finds its routes by RDS name over ADS.
func httpManager(rdsName string, proxyless bool) *hcm.HttpConnectionManager {
	return &hcm.HttpConnectionManager{
		StatPrefix: "outbound_0.0.0.0_" + rdsName,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			RouteConfigName: rdsName, ConfigSource: adsSource()}},
		HttpFilters: httpFilters(proxyless),
	}
}

func httpChain(rdsName string) *listener.FilterChain {
	return &listener.FilterChain{
		Name: "http",
		Filters: []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager",
			ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(httpManager(rdsName, false))}}},
	}
}

func prefixes(ps []netip.Prefix) []*core.CidrRange {
	out := make([]*core.CidrRange, 0, len(ps))
	for _, p := range ps {
		out = append(out, &core.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))})
	}
	return out
}

func firstAddr(svc *registry.Service) netip.Addr {
	if len(svc.Addresses) > 0 {
		return svc.Addresses[0].Addr()
	}
	return netip.Addr{}
}
