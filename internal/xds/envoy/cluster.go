package envoy

import (
	"math"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
)

// Istio's cluster names for the catch-alls of the outbound listener.
const (
	BlackHole   = "BlackHoleCluster"
	Passthrough = "PassthroughCluster"
)

// defaultConnectTimeout is Istio's meshConfig.connectTimeout default.
const defaultConnectTimeout = 10 * time.Second

// clusterFor builds the cluster of one service port (and subset, "" for none) for node n. It
// returns the cluster and, for EDS clusters, its load assignment.
func clusterFor(svc *registry.Service, port *registry.Port, sub *policy.Subset, applied *policy.Applied, n Node) (*cluster.Cluster, *endpoint.ClusterLoadAssignment) {
	name := port.Cluster
	var tp *networking.TrafficPolicy
	if applied != nil {
		tp = applied.Traffic
	}
	eps := port.Endpoints
	if sub != nil {
		name = clusterName(port.Number, sub.Name, svc.Host)
		eps = selectEndpoints(eps, sub.Labels)
		if sub.Traffic != nil {
			tp = sub.Traffic
		}
	}
	c := &cluster.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(defaultConnectTimeout),
		CircuitBreakers: &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{
			thresholds(tp.GetConnectionPool()),
		}},
	}
	if ct := tp.GetConnectionPool().GetTcp().GetConnectTimeout(); ct != nil {
		c.ConnectTimeout = durationpb.New(ct.AsDuration())
	}
	lb := lbPolicy(tp.GetLoadBalancer())
	c.LbPolicy = lb
	outlier := outlierDetection(tp.GetOutlierDetection())
	c.OutlierDetection = outlier
	if ts := transportSocket(tp.GetTls(), svc, n); ts != nil {
		c.TransportSocket = ts
	}
	if port.Family == registry.FamilyHTTP && isHTTP2(port.Protocol) {
		c.TypedExtensionProtocolOptions = http2Options()
	}
	var cla *endpoint.ClusterLoadAssignment
	switch svc.Resolution {
	case registry.ResolutionStatic:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_EDS}
		c.EdsClusterConfig = &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource()}
		cla = loadAssignment(name, eps, n, outlier != nil || n.Proxyless())
		if n.Proxyless() && weighted(eps) && lb == cluster.Cluster_ROUND_ROBIN {
			// grpc-go's round_robin ignores endpoint weights; ring_hash (a random hash per
			// call when the route sets no hash policy) honours them.
			c.LbPolicy = cluster.Cluster_RING_HASH
		}
	case registry.ResolutionDNS:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS}
		c.LoadAssignment = loadAssignment(name, eps, n, outlier != nil)
		c.DnsLookupFamily = cluster.Cluster_V4_ONLY
	case registry.ResolutionDNSRoundRobin:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_LOGICAL_DNS}
		c.LoadAssignment = loadAssignment(name, firstEndpoint(eps), n, false)
		c.DnsLookupFamily = cluster.Cluster_V4_ONLY
	default:
		// NONE and DYNAMIC_DNS: the connection's own destination, as Istio's ORIGINAL_DST does.
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
		c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
	}
	return c, cla
}

func clusterName(port uint32, subset, host string) string {
	return "outbound|" + itoa(port) + "|" + subset + "|" + host
}

func isHTTP2(proto string) bool {
	switch proto {
	case "HTTP2", "GRPC", "grpc", "http2", "GRPC-WEB":
		return true
	}
	return false
}

func selectEndpoints(eps []registry.Endpoint, labels map[string]string) []registry.Endpoint {
	var out []registry.Endpoint
	for _, e := range eps {
		ok := true
		for k, v := range labels {
			if e.Labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, e)
		}
	}
	return out
}

func firstEndpoint(eps []registry.Endpoint) []registry.Endpoint {
	if len(eps) > 1 {
		return eps[:1]
	}
	return eps
}

func weighted(eps []registry.Endpoint) bool {
	for _, e := range eps {
		if e.Weight > 1 {
			return true
		}
	}
	return false
}

// thresholds carries connectionPool into Envoy's circuit breakers; what is unset takes Istio's
// default, effectively no limit (2^32-1), as Istio's sidecar does.
func thresholds(cp *networking.ConnectionPoolSettings) *cluster.CircuitBreakers_Thresholds {
	limit := func(v int32) *wrapperspb.UInt32Value {
		if v <= 0 {
			return wrapperspb.UInt32(math.MaxUint32)
		}
		return wrapperspb.UInt32(uint32(v))
	}
	return &cluster.CircuitBreakers_Thresholds{
		MaxConnections:     limit(cp.GetTcp().GetMaxConnections()),
		MaxPendingRequests: limit(cp.GetHttp().GetHttp1MaxPendingRequests()),
		MaxRequests:        limit(cp.GetHttp().GetHttp2MaxRequests()),
		MaxRetries:         limit(cp.GetHttp().GetMaxRetries()),
		TrackRemaining:     true,
	}
}

func lbPolicy(lb *networking.LoadBalancerSettings) cluster.Cluster_LbPolicy {
	if lb.GetConsistentHash() != nil {
		if lb.GetConsistentHash().GetMaglev() != nil {
			return cluster.Cluster_MAGLEV
		}
		return cluster.Cluster_RING_HASH
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_LEAST_REQUEST:
		return cluster.Cluster_LEAST_REQUEST
	case networking.LoadBalancerSettings_RANDOM:
		return cluster.Cluster_RANDOM
	case networking.LoadBalancerSettings_PASSTHROUGH:
		return cluster.Cluster_CLUSTER_PROVIDED
	}
	return cluster.Cluster_ROUND_ROBIN
}

// outlierDetection maps the DestinationRule's settings; nil when it sets none, so that Envoy's
// outlier detection stays off as at an Istio sidecar.
func outlierDetection(od *networking.OutlierDetection) *cluster.OutlierDetection {
	if od == nil {
		return nil
	}
	out := &cluster.OutlierDetection{
		// Istio turns the success-rate and local-origin paths off and drives ejection by the
		// consecutive counters only.
		EnforcingSuccessRate: wrapperspb.UInt32(0),
	}
	if v := od.GetConsecutive_5XxErrors(); v != nil {
		out.Consecutive_5Xx = wrapperspb.UInt32(v.GetValue())
		if v.GetValue() == 0 {
			out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0)
		}
	}
	if v := od.GetConsecutiveGatewayErrors(); v != nil {
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(v.GetValue())
		out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
	}
	if d := od.GetInterval(); d != nil {
		out.Interval = durationpb.New(d.AsDuration())
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		out.BaseEjectionTime = durationpb.New(d.AsDuration())
	}
	if p := od.GetMaxEjectionPercent(); p != 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(p))
	}
	return out
}

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

func itoa(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
