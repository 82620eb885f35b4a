package policy

import (
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// mergeTraffic is Istio's MergeTrafficPolicy: the fields an override sets (connectionPool,
// loadBalancer, outlierDetection, tls, tunnel, proxyProtocol) replace the base's whole, then the
// override's portLevelSettings entry for port, if any, replaces connectionPool, loadBalancer,
// outlierDetection and tls again. A base's own portLevelSettings are applied to it first. The result
// is a fresh message with no portLevelSettings; the inputs are never changed. It returns nil only
// when both policies are nil.
func mergeTraffic(base, override *networking.TrafficPolicy, port uint32) *networking.TrafficPolicy {
	if base != nil && len(base.PortLevelSettings) > 0 {
		base = mergeTraffic(nil, base, port)
	}
	if override == nil {
		if base == nil {
			return nil
		}
		return proto.Clone(base).(*networking.TrafficPolicy)
	}
	out := &networking.TrafficPolicy{}
	if base != nil {
		out.ConnectionPool, out.LoadBalancer, out.OutlierDetection, out.Tls = base.ConnectionPool, base.LoadBalancer, base.OutlierDetection, base.Tls
		out.Tunnel, out.ProxyProtocol, out.RetryBudget = base.Tunnel, base.ProxyProtocol, base.RetryBudget
	}
	if override.ConnectionPool != nil {
		out.ConnectionPool = override.ConnectionPool
	}
	if override.LoadBalancer != nil {
		out.LoadBalancer = override.LoadBalancer
	}
	if override.OutlierDetection != nil {
		out.OutlierDetection = override.OutlierDetection
	}
	if override.Tls != nil {
		out.Tls = override.Tls
	}
	if override.Tunnel != nil {
		out.Tunnel = override.Tunnel
	}
	if override.ProxyProtocol != nil {
		out.ProxyProtocol = override.ProxyProtocol
	}
	if override.RetryBudget != nil {
		out.RetryBudget = override.RetryBudget
	}
	if pl := portLevel(override, port); pl != nil {
		if pl.ConnectionPool != nil {
			out.ConnectionPool = pl.ConnectionPool
		}
		if pl.LoadBalancer != nil {
			out.LoadBalancer = pl.LoadBalancer
		}
		if pl.OutlierDetection != nil {
			out.OutlierDetection = pl.OutlierDetection
		}
		if pl.Tls != nil {
			out.Tls = pl.Tls
		}
	}
	// The fields above still point into the documents; a deep copy keeps a consumer that changes
	// its policy from changing the configuration every other lookup sees.
	return proto.Clone(out).(*networking.TrafficPolicy)
}

// portLevel returns the first portLevelSettings entry for port, as Istio takes the first.
func portLevel(tp *networking.TrafficPolicy, port uint32) *networking.TrafficPolicy_PortTrafficPolicy {
	if port == 0 {
		return nil
	}
	for _, pl := range tp.GetPortLevelSettings() {
		if pl != nil && pl.GetPort().GetNumber() == port {
			return pl
		}
	}
	return nil
}

// portsNamed lists the port numbers a policy's portLevelSettings mention, so that a merged policy
// can be computed once for each of them and once for every other port.
func portsNamed(tp *networking.TrafficPolicy, into map[uint32]bool) {
	for _, pl := range tp.GetPortLevelSettings() {
		if n := pl.GetPort().GetNumber(); n != 0 {
			into[n] = true
		}
	}
}
