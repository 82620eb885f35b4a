package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshentry/meshentry/internal/xds/envoy"
)

// xdsClusterName is the bootstrap's static cluster for the xDS server, as Istio names it.
const xdsClusterName = "xds-grpc"

func newBootstrapCommand() *cobra.Command {
	var addr, nodeID, namespace, adminAddr string
	cmd := &cobra.Command{
		Use:   "bootstrap --xds ADDR --node-id ID [--namespace NS]",
		Short: "Print an Envoy bootstrap (JSON) that takes all its config from `meshentry xds` over ADS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := bootstrapFor(addr, nodeID, namespace, adminAddr)
			if err != nil {
				return err
			}
			out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
			if err != nil {
				return fmt.Errorf("bootstrap: encode: %w", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "xds", "127.0.0.1:15010", "the meshentry xds server, HOST:PORT")
	f.StringVar(&nodeID, "node-id", "", "Envoy's node id; Istio's form sidecar~IP~NAME.NS~NS.svc.cluster.local names the proxy and its namespace")
	f.StringVar(&namespace, "namespace", "", "the proxy's namespace (NAMESPACE metadata); default: the one in --node-id, else default")
	f.StringVar(&adminAddr, "admin", "127.0.0.1:15000", "Envoy's admin address")
	return cmd
}

// bootstrapFor builds the bootstrap: node with Istio's metadata, one static cluster for the xDS
// server (HTTP/2, as gRPC needs), and ADS for listeners and clusters.
func bootstrapFor(addr, nodeID, namespace, adminAddr string) (*bootstrapv3.Bootstrap, error) {
	if nodeID == "" {
		return nil, usageError("--node-id is required")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usageError("--xds %q: %v", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, usageError("--xds %q: bad port", addr)
	}
	ahost, aportStr, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return nil, usageError("--admin %q: %v", adminAddr, err)
	}
	aport, err := strconv.ParseUint(aportStr, 10, 16)
	if err != nil {
		return nil, usageError("--admin %q: bad port", adminAddr)
	}
	node := &core.Node{Id: nodeID}
	if namespace == "" {
		namespace = envoy.ParseNode(node).Namespace
	}
	node.Metadata = envoy.NodeMetadata(namespace, nil, "")
	node.Cluster = envoy.ParseNode(node).Name + "." + namespace
	h2, err := anypb.New(&upstreamhttp.HttpProtocolOptions{UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &core.Http2ProtocolOptions{}}}}})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	ads := &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3, ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
	b := &bootstrapv3.Bootstrap{
		Node:  node,
		Admin: &bootstrapv3.Admin{Address: sockAddr(ahost, uint32(aport))},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*cluster.Cluster{{
			Name:                          xdsClusterName,
			ConnectTimeout:                durationpb.New(time.Second),
			ClusterDiscoveryType:          &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS},
			TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
			LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: xdsClusterName, Endpoints: []*endpoint.LocalityLbEndpoints{{
				LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: sockAddr(host, uint32(port))}}}},
			}}},
		}}},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &core.ApiConfigSource{ApiType: core.ApiConfigSource_GRPC, TransportApiVersion: core.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices:              []*core.GrpcService{{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: xdsClusterName}}}}},
			LdsConfig: ads,
			CdsConfig: ads,
		},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return b, nil
}

func sockAddr(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}
}
