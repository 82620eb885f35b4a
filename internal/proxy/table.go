package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
	vroute "github.com/meshentry/meshentry/internal/route"
)

// table is the proxy's view of one snapshot: the snapshot plus per-port routing state (pickers and
// ready-made upstreams) built the first time a port is used, so nothing is rebuilt per request.
type table struct {
	snap   *registry.Snapshot
	routes sync.Map // *registry.Port -> *route
	// services labels the telemetry of each service port of snap.
	services *services
	// policies says which DestinationRule applies to each service port of snap.
	policies *policy.Index
	// scope is what the Sidecar that applies to this proxy imports from snap.
	scope *registry.Scope
	// subsets holds the route of each DestinationRule subset in use, per port (subset.go).
	subsets sync.Map // subsetKey -> *subsetEntry
	// vs are the VirtualServices that bind this proxy, nil when snap has none (vsroute.go for
	// http routes, l4route.go for tls and tcp); actions holds the engine's Actions of each of
	// their http routes, made on first use.
	vs      *vroute.Table
	actions sync.Map // *vroute.HTTPRoute -> *vsActions
}

// newTable makes the proxy's view of snap, with its DestinationRules indexed once.
func (p *Proxy) newTable(snap *registry.Snapshot) *table {
	sc := registry.NewScope(snap, registry.ScopeProxy{Namespace: p.cfg.Namespace, Labels: p.cfg.Labels, RootNamespace: p.rootNamespace()})
	if d := sc.Sidecar; d != nil {
		// Once per snapshot: which Sidecar narrows this proxy is worth a line at every reload.
		p.log.Info("sidecar scope", "sidecar", d.Namespace+"/"+d.Name, "file", d.File, "line", d.Line, "why", sc.Why,
			"outbound_policy", sc.Policy.String())
	}
	return &table{snap: snap, services: newServices(), policies: policy.Build(snap.Documents, p.cfg.RootNamespace), scope: sc,
		vs: p.buildVirtualServices(snap, sc.ImportFunc())}
}

// route is how one service port reaches its endpoints.
type route struct {
	svc    *registry.Service
	port   *registry.Port
	picker *balance.Picker
	eps    []endpoint
	proto  httpfwd.Protocol
	// policy is the DestinationRule that applies to this port for this proxy, nil when none does.
	policy *policy.Applied
	// newDial makes an upstream's Dial through the proxy's guarded dial.
	newDial func(addr string) func(context.Context) (net.Conn, error)
	// tls is how connections to the endpoints are secured (tls.go); secure wraps a Dial in it.
	tls    routeTLS
	secure func(o *originTLS, cluster string, last *atomic.Pointer[handshakeError], dial func(context.Context) (net.Conn, error)) func(context.Context) (net.Conn, error)
	// health tracks the endpoints' ejections: the proxy's, or the cluster's own when the
	// DestinationRule sets outlierDetection (then outlier is set and answers count by status).
	health  *balance.Health
	outlier bool
	// hash is the consistent-hash key's source when the picker hashes.
	hash balance.HashPolicy
	// limits are the cluster's connection-pool limits, nil when its DestinationRule sets none.
	limits *httpfwd.ClusterLimits
	// table is the table whose routes hold this one (nil for a subset's route), for a hint
	// (loopHTTP.Serves) to prove it is of the table a request is routed by.
	table *table
}

// endpoint is one endpoint of a route with what dialling it needs.
type endpoint struct {
	ep *registry.Endpoint
	// r and i locate the endpoint in its route, for Done (Upstream.Tag points here).
	r *route
	i int
	// key identifies the endpoint for health tracking, across snapshots.
	key string
	// up is the ready-made upstream for IP and unix endpoints; addr is up.Addr parsed, for an
	// IP endpoint, so that a request's guard checks do not parse it again.
	up   httpfwd.Upstream
	addr netip.AddrPort
	// tls secures connections to this endpoint, nil for plaintext; tlsFailed is its latest
	// handshake failure, for the reason of a request that runs out of endpoints.
	tls       *originTLS
	tlsFailed atomic.Pointer[handshakeError]
	// For DNS names: the upstreams of the last answer, reused while the resolver returns the same one.
	resolved atomic.Pointer[resolvedSet]
	rr       resolve.RoundRobin
}

// resolvedSet is the upstreams built from one resolver Answer, reused while its generation holds.
type resolvedSet struct {
	gen uint64
	ups []httpfwd.Upstream
}

func (t *table) route(svc *registry.Service, port *registry.Port, p *Proxy) *route {
	if r, ok := t.routes.Load(port); ok {
		return r.(*route)
	}
	applied, ok := t.policies.For(svc, port.Number, policy.Proxy{Namespace: p.cfg.Namespace, Labels: p.cfg.Labels})
	if !ok {
		applied = nil
	}
	r := newRoute(svc, port, p, applied)
	r.table = t
	actual, _ := t.routes.LoadOrStore(port, r)
	return actual.(*route)
}

// newRoute builds a port's route under applied, the DestinationRule for it (nil for none).
func newRoute(svc *registry.Service, port *registry.Port, p *Proxy, applied *policy.Applied) *route {
	rp := p.policyFor(port, applied)
	r := &route{svc: svc, port: port, policy: applied, eps: make([]endpoint, len(port.Endpoints)), newDial: p.guardedDialer,
		health: rp.health, outlier: rp.outlier, hash: rp.cfg.Hash, limits: rp.limits}
	r.tls, r.secure = p.newRouteTLS(svc, port, applied), p.withTLS
	switch strings.ToUpper(port.Protocol) {
	case "HTTP2", "GRPC":
		r.proto = httpfwd.H2C
	}
	targets := make([]balance.Target, len(port.Endpoints))
	for i := range port.Endpoints {
		ep := &port.Endpoints[i]
		e := &r.eps[i]
		e.ep, e.r, e.i = ep, r, i
		e.key = healthKey(ep)
		e.tls = r.tls.forEndpoint(ep)
		switch {
		case ep.Unix:
			path := ep.Dial()
			e.up = httpfwd.Upstream{Key: r.poolKey(e, e.key), Endpoint: ep.Address, Protocol: r.proto, Dial: p.withTLS(e.tls, port.Cluster, &e.tlsFailed, func(ctx context.Context) (net.Conn, error) {
				return p.dialGuarded(ctx, "unix", path)
			})}
		case ep.IP.IsValid():
			e.up = httpfwd.Upstream{Addr: e.key, Key: r.poolKey(e, e.key), Protocol: r.proto, Dial: p.withTLS(e.tls, port.Cluster, &e.tlsFailed, p.guardedDialer(e.key))}
			e.addr, _ = netip.ParseAddrPort(e.key)
		}
		e.up.Tag, e.up.Limits = e, r.limits
		targets[i] = balance.Target{Key: e.key, Weight: ep.Weight, Locality: ep.Locality, Network: ep.Network, Labels: ep.Labels}
	}
	if applied == nil {
		r.picker = balance.NewPicker(targets, p.locality, p.cfg.Network, p.health)
	} else {
		r.picker = balance.NewPolicyPicker(targets, balance.Client{Locality: p.locality, Network: p.cfg.Network, Labels: p.cfg.Labels}, r.health, rp.cfg)
	}
	return r
}

// healthKey is the key passive health checking tracks an endpoint under, across snapshots: the
// socket path of a unix endpoint, "host:port" of the others.
func healthKey(ep *registry.Endpoint) string {
	if ep.Unix {
		return ep.Address
	}
	return ep.Dial()
}

// upstream returns the upstream for endpoint i, resolving a DNS name through the resolver's cache.
// Of a name's addresses it takes the next in turn, passing over ejected ones and, on a retry, those
// whose last connect failed, so one dead address of a name costs a retry, then nothing once ejected.
func (r *route) upstream(ctx context.Context, i int, res *resolve.Resolver, h *balance.Health, retry bool) (httpfwd.Upstream, error) {
	e := &r.eps[i]
	if e.up.Key != "" {
		return e.up, nil
	}
	ans, err := res.Resolve(ctx, e.ep.Address)
	if err != nil {
		return httpfwd.Upstream{}, err // it names the name already
	}
	if len(ans.Addrs) == 0 {
		return httpfwd.Upstream{}, fmt.Errorf("resolve %s: no addresses", e.ep.Address)
	}
	set := e.resolved.Load()
	if set == nil || set.gen != ans.Gen {
		set = &resolvedSet{gen: ans.Gen, ups: make([]httpfwd.Upstream, len(ans.Addrs))}
		for j, a := range ans.Addrs {
			hp := netip.AddrPortFrom(a, uint16(e.ep.Port)).String()
			// The pool key carries the address so pooled connections follow the DNS answer when it
			// changes; it is "name:port|ip:port", both halves health keys (see splitKey).
			set.ups[j] = httpfwd.Upstream{Addr: hp, Key: r.poolKey(e, e.key+"|"+hp), Protocol: r.proto,
				Dial: r.tlsDial(e, r.newDial(hp)), Tag: e, Limits: r.limits}
		}
		e.resolved.Store(set)
	}
	if len(set.ups) == 1 {
		return set.ups[0], nil
	}
	first := e.rr.NextIndex(len(set.ups))
	for k := range set.ups {
		up := set.ups[(first+k)%len(set.ups)]
		_, addrKey := splitKey(up.Key)
		if !h.Ejected(addrKey) && !(retry && h.Failing(addrKey)) {
			return up, nil
		}
	}
	return set.ups[first], nil
}

// exhausted reports whether a DNS endpoint has no address left worth a retry: every address it
// resolved to is ejected or failed its last connect. Single-address endpoints are tracked by the
// caller's per-request mask instead, so they never count as exhausted here.
func (r *route) exhausted(i int, h *balance.Health) bool {
	e := &r.eps[i]
	if e.up.Key != "" {
		return false
	}
	set := e.resolved.Load()
	if set == nil {
		return false
	}
	for _, up := range set.ups {
		_, addr := splitKey(up.Key)
		if !h.Failing(addr) && !h.Ejected(addr) {
			return false
		}
	}
	return true
}

// splitKey splits a pool key into the endpoint's health key and, for a DNS endpoint, the resolved
// address's own health key.
func splitKey(key string) (endpoint, addr string) {
	key = strings.TrimSuffix(key, tlsKeyMark)
	if i := strings.IndexByte(key, '|'); i >= 0 {
		return key[:i], key[i+1:]
	}
	return key, ""
}

// hostPort joins a host and port for dialling.
func hostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// rootNamespace is the mesh root namespace, istio-system when the config leaves it empty.
func (p *Proxy) rootNamespace() string {
	if p.cfg.RootNamespace == "" {
		return policy.DefaultRootNamespace
	}
	return p.cfg.RootNamespace
}
