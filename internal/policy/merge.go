package policy

import (
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// effective is Istio's MergeSubsetTrafficPolicy for one port: the rule's policy for the port, with
// a subset's policy over it. A portLevelSettings entry for the port replaces the whole of
// connectionPool, loadBalancer, outlierDetection and tls, so a field it omits falls back to the
// default rather than to the level above (Istio's documented "not inherited"). Otherwise a field
// the subset sets replaces the rule's. The result is a fresh deep copy without portLevelSettings;
// the inputs are never changed. It is nil only when both policies are nil.
func effective(rule, subset *networking.TrafficPolicy, port uint32) *networking.TrafficPolicy {
	base, _ := forPort(rule, port)
	if subset == nil {
		return cleanCopy(base)
	}
	sub, portLevel := forPort(subset, port)
	if base == nil {
		return cleanCopy(sub)
	}
	out := shallow(base)
	if sub.ConnectionPool != nil || portLevel {
		out.ConnectionPool = sub.ConnectionPool
	}
	if sub.OutlierDetection != nil || portLevel {
		out.OutlierDetection = sub.OutlierDetection
	}
	if sub.LoadBalancer != nil || portLevel {
		out.LoadBalancer = sub.LoadBalancer
	}
	if sub.Tls != nil || portLevel {
		out.Tls = sub.Tls
	}
	if sub.Tunnel != nil {
		out.Tunnel = sub.Tunnel
	}
	if sub.ProxyProtocol != nil {
		out.ProxyProtocol = sub.ProxyProtocol
	}
	if sub.RetryBudget != nil {
		out.RetryBudget = sub.RetryBudget
	}
	return cleanCopy(out)
}

// forPort is Istio's GetPortLevelTrafficPolicy: the port's portLevelSettings entry as a policy of
// its four fields and true, or the policy itself and false when no entry names the port.
func forPort(tp *networking.TrafficPolicy, port uint32) (*networking.TrafficPolicy, bool) {
	if tp == nil {
		return nil, false
	}
	pl := portLevel(tp, port)
	if pl == nil {
		return tp, false
	}
	return &networking.TrafficPolicy{
		ConnectionPool: pl.ConnectionPool, LoadBalancer: pl.LoadBalancer,
		OutlierDetection: pl.OutlierDetection, Tls: pl.Tls,
	}, true
}

// shallow copies a policy's fields except portLevelSettings.
func shallow(tp *networking.TrafficPolicy) *networking.TrafficPolicy {
	return &networking.TrafficPolicy{
		ConnectionPool: tp.ConnectionPool, LoadBalancer: tp.LoadBalancer, OutlierDetection: tp.OutlierDetection,
		Tls: tp.Tls, Tunnel: tp.Tunnel, ProxyProtocol: tp.ProxyProtocol, RetryBudget: tp.RetryBudget,
	}
}

// cleanCopy deep-copies a policy without its portLevelSettings, so that a consumer changing its
// policy cannot change the documents or what other lookups see.
func cleanCopy(tp *networking.TrafficPolicy) *networking.TrafficPolicy {
	if tp == nil {
		return nil
	}
	return proto.Clone(shallow(tp)).(*networking.TrafficPolicy)
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
