package validate

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

// trafficPolicy applies Istio's validateTrafficPolicy to the policy at field f (the rule's own or a
// subset's).
func trafficPolicy(r *report, f string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.OutlierDetection == nil && tp.ConnectionPool == nil && tp.LoadBalancer == nil && tp.Tls == nil &&
		tp.PortLevelSettings == nil && tp.Tunnel == nil && tp.ProxyProtocol == nil && tp.RetryBudget == nil {
		r.errorf(CodeTrafficPolicyEmpty, f, "a traffic policy must set at least one field")
		return
	}
	if tp.Tunnel != nil && tp.ProxyProtocol != nil {
		r.errorf(CodeTrafficPolicyEmpty, f, "tunnel and proxyProtocol cannot both be set")
		return
	}
	tunnel(r, f+".tunnel", tp.Tunnel)
	if pp := tp.ProxyProtocol; pp != nil && pp.Version != networking.TrafficPolicy_ProxyProtocol_V1 && pp.Version != networking.TrafficPolicy_ProxyProtocol_V2 {
		r.errorf(CodeTrafficPolicyEmpty, f+".proxyProtocol.version", "proxy protocol version %d is neither V1 nor V2", pp.Version)
	}
	outlierDetection(r, f+".outlierDetection", tp.OutlierDetection)
	connectionPool(r, f+".connectionPool", tp.ConnectionPool)
	loadBalancer(r, f+".loadBalancer", tp.LoadBalancer, tp.OutlierDetection)
	clientTLS(r, f+".tls", tp.Tls)
	portLevelSettings(r, f+".portLevelSettings", tp.PortLevelSettings)
}

// portLevelSettings checks each per-port override: it needs a port and at least one setting.
func portLevelSettings(r *report, f string, pls []*networking.TrafficPolicy_PortTrafficPolicy) {
	seen := map[uint32]int{}
	for i, p := range pls {
		pf := at(f, i, "")
		if p == nil {
			r.errorf(CodePortLevelSettings, pf, "a port traffic policy may not be null")
			continue
		}
		switch n := p.GetPort().GetNumber(); {
		case p.Port == nil:
			r.errorf(CodePortLevelSettings, pf+".port", "a port traffic policy needs port.number")
		case n == 0 || n > 65535:
			r.errorf(CodePortLevelSettings, pf+".port.number", "port number %d is out of range (1-65535)", n)
		default:
			if j, dup := seen[n]; dup {
				// Istio accepts it and uses the first; the second is dead configuration.
				r.warnf(CodePortLevelSettings, pf+".port.number", "port %d already has settings at %s, which win; these are ignored", n, at(f, j, ""))
			} else {
				seen[n] = i
			}
		}
		if p.OutlierDetection == nil && p.ConnectionPool == nil && p.LoadBalancer == nil && p.Tls == nil {
			r.errorf(CodePortLevelSettings, pf, "a port traffic policy must set at least one of connectionPool, loadBalancer, outlierDetection or tls")
			continue
		}
		outlierDetection(r, pf+".outlierDetection", p.OutlierDetection)
		connectionPool(r, pf+".connectionPool", p.ConnectionPool)
		loadBalancer(r, pf+".loadBalancer", p.LoadBalancer, p.OutlierDetection)
		clientTLS(r, pf+".tls", p.Tls)
	}
}

// outlierDetection is Istio's validateOutlierDetection.
func outlierDetection(r *report, f string, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	duration(r, CodeOutlierDetection, f+".baseEjectionTime", od.BaseEjectionTime)
	duration(r, CodeOutlierDetection, f+".interval", od.Interval)
	if od.ConsecutiveErrors != 0 { //nolint:staticcheck // the deprecated field is what is being checked
		r.warnf(CodeOutlierDetection, f+".consecutiveErrors", "consecutiveErrors is deprecated; use consecutiveGatewayErrors or consecutive5xxErrors")
	}
	if !od.SplitExternalLocalOriginErrors && od.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		r.errorf(CodeOutlierDetection, f+".consecutiveLocalOriginFailures", "consecutiveLocalOriginFailures is set but splitExternalLocalOriginErrors is false, so local origin failures are not counted apart")
	}
	percent(r, f+".maxEjectionPercent", od.MaxEjectionPercent)
	percent(r, f+".minHealthPercent", od.MinHealthPercent)
}

func percent(r *report, f string, v int32) {
	if v < 0 || v > 100 {
		r.errorf(CodeOutlierDetection, f, "%d is not a percentage (0-100)", v)
	}
}

// connectionPool is Istio's validateConnectionPool: limits are not negative, durations are whole
// milliseconds of at least 1ms.
func connectionPool(r *report, f string, cp *networking.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if cp.Http == nil && cp.Tcp == nil {
		r.errorf(CodeConnectionPool, f, "a connection pool must set tcp or http")
		return
	}
	if h := cp.Http; h != nil {
		hf := f + ".http"
		nonNegative(r, hf+".http1MaxPendingRequests", h.Http1MaxPendingRequests)
		nonNegative(r, hf+".http2MaxRequests", h.Http2MaxRequests)
		nonNegative(r, hf+".maxRequestsPerConnection", h.MaxRequestsPerConnection)
		nonNegative(r, hf+".maxRetries", h.MaxRetries)
		nonNegative(r, hf+".maxConcurrentStreams", h.MaxConcurrentStreams)
		duration(r, CodeConnectionPool, hf+".idleTimeout", h.IdleTimeout)
		if ka := h.Http2KeepAlive; ka != nil {
			requiredDuration(r, CodeConnectionPool, hf+".http2KeepAlive.interval", ka.Interval)
			requiredDuration(r, CodeConnectionPool, hf+".http2KeepAlive.timeout", ka.Timeout)
		}
		if h.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			r.errorf(CodeConnectionPool, hf+".useClientProtocol", "useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE")
		}
	}
	if t := cp.Tcp; t != nil {
		tf := f + ".tcp"
		nonNegative(r, tf+".maxConnections", t.MaxConnections)
		duration(r, CodeConnectionPool, tf+".connectTimeout", t.ConnectTimeout)
		duration(r, CodeConnectionPool, tf+".maxConnectionDuration", t.MaxConnectionDuration)
		// 0s turns the idle timeout off, as Istio allows.
		if t.IdleTimeout.AsDuration() != 0 {
			duration(r, CodeConnectionPool, tf+".idleTimeout", t.IdleTimeout)
		}
		if ka := t.TcpKeepalive; ka != nil {
			duration(r, CodeConnectionPool, tf+".tcpKeepalive.time", ka.Time)
			duration(r, CodeConnectionPool, tf+".tcpKeepalive.interval", ka.Interval)
		}
	}
}

func nonNegative(r *report, f string, v int32) {
	if v < 0 {
		r.errorf(CodeConnectionPool, f, "%d is negative; limits must be 0 (the default) or more", v)
	}
}

func requiredDuration(r *report, code, f string, d *durationpb.Duration) {
	if d == nil {
		r.errorf(code, f, "required")
		return
	}
	duration(r, code, f, d)
}

// tunnel is Istio's validateTunnelSettings: CONNECT or POST to a valid host and port.
func tunnel(r *report, f string, t *networking.TrafficPolicy_TunnelSettings) {
	if t == nil {
		return
	}
	if t.Protocol != "" && t.Protocol != "CONNECT" && t.Protocol != "POST" {
		r.errorf(CodeTrafficPolicyEmpty, f+".protocol", "tunnel protocol %q must be CONNECT or POST", t.Protocol)
	}
	if !isIP(t.TargetHost) && (t.TargetHost == "" || strings.HasPrefix(t.TargetHost, "*") || hostProblem(t.TargetHost, false) != "") {
		r.errorf(CodeTrafficPolicyEmpty, f+".targetHost", "tunnel targetHost %q is neither a DNS name nor an IP address", t.TargetHost)
	}
	if t.TargetPort == 0 || t.TargetPort > 65535 {
		r.errorf(CodeTrafficPolicyEmpty, f+".targetPort", "tunnel targetPort %d is out of range (1-65535)", t.TargetPort)
	}
}

// duration is Istio's ValidateDuration: at least 1ms and a whole number of milliseconds. An absent
// duration is fine.
func duration(r *report, code, f string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		r.errorf(code, f, "not a valid duration: %v", err)
		return
	}
	switch v := d.AsDuration(); {
	case v < time.Millisecond:
		r.errorf(code, f, "duration %s must be at least 1ms", v)
	case v%time.Millisecond != 0:
		r.errorf(code, f, "duration %s is finer than a millisecond; only whole milliseconds are supported", v)
	}
}
