package proxy

import (
	"fmt"
	"net/netip"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
	vroute "github.com/meshentry/meshentry/internal/route"
)

// loopHTTP is the forward port's httpfwd.LoopRoute: which HTTP requests the loop engine serves
// on the loop's threads, exactly as the forward engine would. Those are the requests whose
// Route is, with no side effect differing, a Reject (an invalid host, a host no ServiceEntry
// declares) or an endpoint of a STATIC service whose endpoints are all IP addresses, reached
// in plaintext over HTTP/1.1, without connection-pool limits or a PASSTHROUGH picker; when a
// VirtualService binds the host and port, its rule the request matches must have no action
// but retries (httpfwd.Actions.LoopServes) and every destination such endpoints, or answer
// 404. Everything else goes to the engine: DNS and NONE resolution, whose Route may block on
// the resolver, unix endpoints, TLS origination, h2c, limits, actions.
type loopHTTP struct {
	p   *Proxy
	lim *connLimit // the proxy's cap, whose place a loop connection holds while on the loop
}

// Serves implements httpfwd.LoopRoute.
func (lh loopHTTP) Serves(req *httpfwd.RequestHead) bool {
	p := lh.p
	if !validHost(req.Host) {
		return true // Route refuses it, before any match
	}
	t := p.table.Load()
	port := requestPort(req) // as Route's
	m := t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: req.Host, Port: port, Protocol: registry.TrafficHTTP, Scope: t.scope}, p.cfg.AllowAny)
	if t.vs != nil && m.Outcome == registry.Matched && t.vs.Binds(registry.NormalizeHost(req.Host), port) {
		if hr := p.httpRouteOf(t, req, port); hr != nil {
			return lh.servesRule(t, req, m, hr) // Route's viaVirtualService
		}
	}
	switch {
	case m.Outcome == registry.BlackHole:
		return true
	case m.Outcome != registry.Matched || m.Service.Resolution != registry.ResolutionStatic:
		return false
	}
	r := t.route(m.Service, m.Port, p)
	if !loopReaches(r) {
		return false
	}
	if m.Cluster == m.Port.Cluster {
		req.RouteHint = r // what Route would find again (httpRouter.hinted)
	}
	return true
}

// servesRule is Serves for a request that matched hr, an http rule of a VirtualService, and
// m: the rule's answer of 404, or a rule without actions but retries whose every destination
// (the one picked goes by the request id, not known yet) the loop reaches, as toDestination
// routes it; a destination Route refuses (undeclared, no such subset) is answered by the loop.
func (lh loopHTTP) servesRule(t *table, req *httpfwd.RequestHead, m registry.Match, hr *vroute.HTTPRoute) bool {
	p := lh.p
	switch {
	case hr.NotFound:
		return true
	case hr.Redirect != nil || hr.DirectResponse != nil || len(hr.Route) == 0:
		return false
	}
	va := t.vsActionsFor(hr, p)
	if !va.forRequest(pathOf(req)).LoopServes() {
		return false
	}
	for i := range hr.Route {
		d, dm := &hr.Route[i], m
		if d.Host != m.Service.Host || d.Port != m.Port.Number {
			dm = t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: d.Host, Port: d.Port, Protocol: registry.TrafficHTTP}, false)
			if dm.Outcome != registry.Matched {
				continue // refused
			}
		}
		if dm.Service.Resolution != registry.ResolutionStatic {
			return false
		}
		r := t.route(dm.Service, dm.Port, p)
		if d.Subset != "" {
			se, err := t.subsetRoute(dm.Service, dm.Port, d.Subset, p)
			if err != nil {
				continue // refused
			}
			r = se.route
		}
		if !loopReaches(r) {
			return false
		}
	}
	req.RouteHint = va // the rule Route would match again (hintedRule)
	return true
}

// loopReaches reports whether every endpoint Route may pick from r is one the loop connects to
// as the engine's guarded dial would: an IP address over HTTP/1.1 in plaintext.
func loopReaches(r *route) bool {
	if r.proto != httpfwd.HTTP1 || !loopServes(r) {
		return false
	}
	for i := range r.eps {
		e := &r.eps[i]
		if e.ep.Unix || !e.ep.IP.IsValid() || e.up.Addr == "" || e.tls != nil {
			return false
		}
	}
	return true
}

// Addr implements httpfwd.LoopRoute: the endpoint's address, never one of the proxy's own
// (Route refuses those already; this is the guard's second look).
func (lh loopHTTP) Addr(up *httpfwd.Upstream) (netip.AddrPort, bool) {
	if e, ok := up.Tag.(*endpoint); !ok || e.up.Addr != up.Addr || up.Dial == nil {
		return netip.AddrPort{}, false // not an endpoint of a route of ours
	}
	a, err := upstreamAddr(up)
	if err != nil || a.Addr().Zone() != "" || lh.p.sec.isSelf(a) {
		return netip.AddrPort{}, false
	}
	return a, true
}

// Check implements httpfwd.LoopRoute: dialGuarded's check once connected, as loopPipe's.
func (lh loopHTTP) Check(remote, local netip.AddrPort) error {
	g := &lh.p.sec
	if !g.hasWildcard() || !g.reachedSelfAddrs(remote, local) {
		return nil
	}
	return fmt.Errorf("dial %s: %w", remote, errLoop)
}

// Released implements httpfwd.LoopRoute: the connection's place under the cap is free, and
// Shutdown waits for it no more.
func (lh loopHTTP) Released() {
	if lh.lim != nil {
		lh.lim.open.Add(-1)
	}
	lh.p.wg.Done()
}
