package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
)

// drState is what the proxy keeps across snapshots for the DestinationRules it applies: each
// cluster's outlier detection and connection-pool limits.
type drState struct {
	once    sync.Once
	healths *balance.HealthSet
	limits  poolLimits
}

// healthSet returns the per-cluster health trackers, made on first use.
func (d *drState) healthSet() *balance.HealthSet {
	d.once.Do(func() { d.healths = balance.NewHealthSet(balance.HealthConfig{}, 0) })
	return d.healths
}

// routePolicy is how a DestinationRule shapes one route: built once per snapshot and port.
type routePolicy struct {
	cfg    balance.PolicyConfig
	health *balance.Health
	// outlier is set when the rule's outlierDetection applies: outcomes are then reported by
	// status to health, which is the cluster's own.
	outlier bool
	limits  *httpfwd.ClusterLimits
}

// policyFor turns the DestinationRule that applies to a port into the route's policy. A rule the
// balancer cannot apply is logged and its load balancing and outlier detection fall back to the
// defaults, as Istio keeps serving when a rule is rejected.
func (p *Proxy) policyFor(port *registry.Port, applied *policy.Applied) routePolicy {
	rp := routePolicy{health: p.health}
	if applied == nil || applied.Traffic == nil {
		return rp
	}
	// Applied.Traffic is already the port's effective policy; passing the port again is harmless.
	cfg, err := balance.FromTrafficPolicyPort(applied.Traffic, port.Number)
	if err != nil {
		p.log.Warn("DestinationRule traffic policy not applied; keeping the default load balancing",
			"cluster", port.Cluster, "host", applied.Host, "err", err)
		cfg = balance.PolicyConfig{LB: balance.LBLeastRequest}
	} else if cfg.LB == balance.LBDefault {
		// A DestinationRule that names no algorithm gets Istio's default.
		cfg.LB = balance.LBLeastRequest
	}
	rp.cfg = cfg
	if cfg.Outlier != nil {
		rp.health = p.dr.healthSet().For(port.Cluster, cfg.Outlier)
		rp.outlier = true
	}
	if s, ok := poolSettings(applied.Traffic.GetConnectionPool()); ok {
		rp.limits = p.dr.limits.forCluster(port.Cluster, s)
	}
	return rp
}

// healthOf is the health tracker of port's cluster in the current snapshot: its own under
// outlierDetection once a route was built for it, else the proxy's.
func (p *Proxy) healthOf(port *registry.Port) *balance.Health {
	if t := p.table.Load(); t != nil {
		if r, ok := t.routes.Load(port); ok {
			return r.(*route).health
		}
	}
	return p.health
}

// drRetain keeps the per-cluster state of the clusters the serving snapshot still has. The
// state is of the clusters that have a DestinationRule and were used, so the walk is short.
func (p *Proxy) drRetain() {
	keep := func(c string) bool { _, ok := p.live.clusters[c]; return ok }
	p.dr.healthSet().Retain(keep)
	p.dr.limits.retain(keep)
}

// hashKey is the consistent-hash key of req under r's policy, and the Set-Cookie value to send
// when the policy made the cookie up.
func (r *route) hashKey(req *httpfwd.RequestHead) (key uint64, ok bool, setCookie string) {
	hp := r.hash
	hr := balance.HashRequest{Header: func(name string) string { return string(req.Header(name)) }}
	if hp.Query != "" {
		if _, q, found := cutByte(req.Path, '?'); found {
			hr.RawQuery = string(q)
		}
	}
	if hp.SourceIP {
		hr.Source = addrOf(req.RemoteAddr)
	}
	if hp.Cookie != nil && req.RemoteAddr != nil && req.LocalAddr != nil {
		hr.Conn = req.RemoteAddr.String() + "|" + req.LocalAddr.String()
	}
	return hp.Key(hr)
}

// cutByte splits b at the first c.
func cutByte(b []byte, c byte) (before, after []byte, found bool) {
	for i := range b {
		if b[i] == c {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// addrOf is a connection address's IP, the zero Addr when it has none.
func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// pickFor picks an endpoint of r for req, by its hash key when r hashes; setCookie is the
// cookie to set on the response.
func (r *route) pickFor(req *httpfwd.RequestHead, exclude func(int) bool) (i int, ok bool, setCookie string) {
	if !r.picker.Hashing() {
		i, ok = r.picker.Pick(exclude)
		return i, ok, ""
	}
	key, has, cookie := r.hashKey(req)
	if !has {
		i, ok = r.picker.Pick(exclude)
		return i, ok, ""
	}
	i, ok = r.picker.PickHash(key, exclude)
	return i, ok, cookie
}

// pickPipe picks an endpoint of r for a pipe to dst: by the client's address under
// consistentHash useSourceIp, else as the policy picks (a pipe has no header, cookie or query
// to hash, so those policies pick at random, as Envoy does without a key).
func (r *route) pickPipe(dst destination, exclude func(int) bool) (int, bool) {
	if r.picker.Hashing() && r.hash.SourceIP && dst.src.IsValid() {
		if key, ok, _ := r.hash.Key(balance.HashRequest{Source: dst.src}); ok {
			return r.picker.PickHash(key, exclude)
		}
	}
	return r.picker.Pick(exclude)
}

// Responded implements httpfwd.StatusReporter: under outlierDetection an answer's status counts
// (5xx and gateway errors), as Envoy's outlier detection counts them.
func (h *httpRouter) Responded(up httpfwd.Upstream, status int) {
	e, _ := up.Tag.(*endpoint)
	if e == nil || !e.r.outlier {
		return
	}
	ep, addr := splitKey(up.Key)
	h.p.reportOutcome(e.r.health, ep, ep, balance.Status(status))
	if addr != "" {
		h.p.reportOutcome(e.r.health, ep, addr, balance.Status(status))
	}
}

// reportOutcome reports one outcome for key (an endpoint or a DNS endpoint's address, ep naming
// the endpoint) to h, counting and logging an ejection it causes.
func (p *Proxy) reportOutcome(h *balance.Health, ep, key string, o balance.Outcome) {
	if h.Report(key, o) {
		p.counts.ejected(ep)
		p.log.Warn("endpoint ejected by outlier detection", "endpoint", ep, "address", key, "outcome", int(o))
	}
}

// policyDone settles a request to a route a DestinationRule shapes; it reports whether it did,
// leaving the default handling otherwise.
func (h *httpRouter) policyDone(up httpfwd.Upstream, err error) bool {
	e, _ := up.Tag.(*endpoint)
	if e == nil || e.r.policy == nil {
		return false
	}
	r := e.r
	r.picker.End(e.i)
	if errors.Is(err, httpfwd.ErrOverflow) {
		// The cluster is busy, not failing: Envoy does not hold an overflow against a host.
		h.p.counts.requestDone(up.Key, nil)
		return true
	}
	if !r.outlier {
		return false
	}
	h.p.counts.requestDone(up.Key, err)
	if err != nil {
		ep, addr := splitKey(up.Key)
		if errors.Is(err, httpfwd.ErrConnect) {
			h.p.counts.connectFailed(ep)
		}
		h.p.reportOutcome(r.health, ep, ep, balance.LocalFailure)
		if addr != "" {
			h.p.reportOutcome(r.health, ep, addr, balance.LocalFailure)
		}
	}
	return true
}
