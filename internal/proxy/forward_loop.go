package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/gopool"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
)

// The forward proxy's port may run on an evloop Group (ListenForwardLoop): each connection is
// decided from its first bytes, peeked and left in the socket. A CONNECT the loop can serve
// exactly as handleConnect would (a complete head the engine would hand to OnConnect, to a
// STATIC service with IP endpoints in plaintext, with no tls or tcp route changing the
// destination, the proxy not draining) is tunnelled by the loop, with the gateway loop's
// pick, retries, guard and reports (loopPipe). Everything else (HTTP, and every CONNECT the
// loop does not serve: refusals, DNS or NONE resolution, TLS origination...) is handed to the
// forward engine with all its bytes, which serves it as ServeForward's connections are.

// viaConnect names a CONNECT tunnel's path in the logs.
const viaConnect = "CONNECT"

// ForwardLoopOptions are the evloop Options of the forward port: tunnels timed as pipeConnect
// times them, the head phase bounded as the engine bounds a first request head, and the
// connections the Group holds bounded by the proxy's cap (MaxConnections).
func (p *Proxy) ForwardLoopOptions() evloop.Options {
	o := p.GatewayLoopOptions()
	lim := p.forward.Limits
	o.HeadTimeout = lim.HeaderReadTimeout // 0 takes evloop's default, the engine's too
	if lim.MaxHeaderBytes > 0 {
		// One byte over the engine's bound: a head that fills the peek is one the engine refuses.
		o.MaxHeadBytes = lim.MaxHeaderBytes + 1
	} else {
		o.MaxHeadBytes = evloop.DefaultMaxHeadBytes + 1
	}
	if p.cfg.MaxConnections > 0 {
		o.MaxConnections = p.cfg.MaxConnections
	}
	return o
}

// forwardLoop is the forward port's HeadFunc and its handoff.
type forwardLoop struct {
	p *Proxy
	// ready is set once the bound address is one of the proxy's own (sec): until then every
	// connection goes to the engine, whose dials check it later.
	ready   atomic.Bool
	handoff evloop.Verdict // made once: its Handoff serves a connection on the engine
	// heads holds a CONNECT head per loop (acc.Loop), parsed into again at each connection.
	heads []httpfwd.RequestHead
	// http serves HTTP/1.1 requests on the loop (forward_loop_http.go), nil until listening.
	http *httpfwd.LoopServer
}

// ListenForwardLoop serves the forward proxy on g at addr (ListenHead), as ServeForward serves
// a listener, and returns the bound address, which the proxy never dials. The caller closes g
// when the proxy drains (Shutdown) and when PipeContext ends, as a gateway's event loop.
func (p *Proxy) ListenForwardLoop(g *evloop.Group, addr netip.AddrPort) (netip.AddrPort, error) {
	return p.listenForwardLoop(g, addr, loopHTTP{p: p, lim: p.connLimit})
}

// listenForwardLoop is ListenForwardLoop with the loop engine's LoopRoute, which a test wraps.
func (p *Proxy) listenForwardLoop(g *evloop.Group, addr netip.AddrPort, lr httpfwd.LoopRoute) (netip.AddrPort, error) {
	fl := p.newForwardLoop(g.Loops())
	fl.http = p.forward.NewLoopServer(lr, g.Loops(), fl.serve)
	p.loopHTTP.Store(fl.http)
	bound, err := g.ListenHead(addr, fl.head)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p.sec.addListener(net.TCPAddrFromAddrPort(bound))
	fl.ready.Store(true)
	return bound, nil
}

func (p *Proxy) newForwardLoop(loops int) *forwardLoop {
	fl := &forwardLoop{p: p, heads: make([]httpfwd.RequestHead, loops)}
	fl.handoff = evloop.Verdict{Target: evloop.Target{Handoff: fl.serve}}
	return fl
}

// head decides a connection of the forward port on the loop's thread.
func (fl *forwardLoop) head(acc evloop.Accepted, head []byte, final bool) evloop.Verdict {
	if !fl.ready.Load() {
		return fl.handoff
	}
	p := fl.p
	h, n, more := p.forward.ConnectHeadInto(head, &fl.heads[acc.Loop])
	switch {
	case h != nil:
		lim := p.connLimit
		if !fl.takePlace(acc) {
			return evloop.Verdict{} // closed, as the listener closes a connection over the cap
		}
		if t, ok := p.connectLoopTarget(h, n, acc, lim); ok {
			return evloop.Verdict{Target: t}
		}
		if lim != nil {
			lim.open.Add(-1) // the handoff takes its own
		}
	case more && !final:
		return evloop.Verdict{More: true}
	default:
		return fl.httpHead(acc, head)
	}
	return fl.handoff
}

// httpHead decides a connection whose first bytes are no CONNECT: a complete head goes to the
// loop engine, which serves its requests while it can and hands the connection to the engine
// at the first it cannot; anything else, a head not all there at the first peek included (the
// accept waited for the first bytes), goes to the engine at once.
func (fl *forwardLoop) httpHead(acc evloop.Accepted, head []byte) evloop.Verdict {
	p := fl.p
	if fl.http == nil || p.isDraining() {
		return fl.handoff
	}
	if !p.forward.LoopHead(head) {
		// Not waited for: the engine's HeaderReadTimeout then bounds the head from the
		// accept, as the head phase did not hold it first.
		return fl.handoff
	}
	lim := p.connLimit
	if !fl.takePlace(acc) {
		return evloop.Verdict{}
	}
	// Shutdown waits for the connection as for a tunnel: its requests in flight finish before
	// the proxy's context ends, which cuts the Group.
	if !p.beginLoop() {
		if lim != nil {
			lim.open.Add(-1)
		}
		return fl.handoff
	}
	return evloop.Verdict{Target: evloop.Target{Serve: fl.http.Handler(acc.Loop)}}
}

// takePlace takes the place under the proxy's cap (when set) that the engine's connection
// would hold, from here on; false when the cap is reached, which is noted (at most so often,
// on the pool) as the listener notes a connection it closes over the cap.
func (fl *forwardLoop) takePlace(acc evloop.Accepted) bool {
	lim := fl.p.connLimit
	if lim == nil {
		return true
	}
	ok, noteDue := lim.take()
	if !ok && noteDue {
		remote := acc.Remote.String()
		gopool.Go(func() { lim.note(remote) })
	}
	return ok
}

// serve is the handoff: the engine serves c under the cap, as ServeForward's connections.
func (fl *forwardLoop) serve(c net.Conn) {
	p := fl.p
	if lim := p.connLimit; lim != nil {
		var ok bool
		if c, ok = lim.admit(c); !ok {
			return
		}
	}
	p.forward.ServeConn(p.ctx, c)
}

// connectLoopTarget is handleConnect's tunnel for a CONNECT head h (n bytes long) on the loop:
// false when the loop cannot serve it exactly as handleConnect would, which then does. It
// holds lim's place (when set) until the tunnel ends.
func (p *Proxy) connectLoopTarget(h *httpfwd.RequestHead, n int, acc evloop.Accepted, lim *connLimit) (evloop.Target, bool) {
	port := uint32(h.Port)
	if port == 0 {
		port = 443
	}
	host := h.Host
	if !validHost(host) || p.isDraining() {
		return evloop.Target{}, false
	}
	t := p.table.Load()
	m := t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: host, Port: port, Protocol: registry.TrafficAny, Scope: t.scope}, p.cfg.AllowAny)
	if m.Outcome != registry.Matched || m.Service.Resolution != registry.ResolutionStatic {
		return evloop.Target{}, false
	}
	dst, err := requested(m, host, port)
	if err != nil {
		return evloop.Target{}, false
	}
	if _, d, err := p.l4Routed(t, m, host, port, connectAddr(m, host)); d != nil || err != nil {
		// A route holds: handleConnect picks its destination (a random pick either way).
		return evloop.Target{}, false
	}
	dst.src = acc.Remote.Addr()
	lp := &loopPipe{p: p, r: t.route(m.Service, m.Port, p), m: m, host: host, port: port, via: viaConnect,
		id: bytes.Clone(h.RequestID), dst: dst, lim: lim}
	target, ok := lp.target(acc)
	if !ok {
		return evloop.Target{}, false
	}
	target.Consume = n
	target.Reply = connectEstablished // what pipeConnect writes first
	target.Refuse = lp.refuse
	return target, true
}

// refuse is the answer connectFailed writes for a tunnel whose connect failed for good.
func (lp *loopPipe) refuse(err error) []byte {
	return connectRefusal(nil, lp.dialErr(err), lp.requestID(), lp.host, lp.port, lp.m.Cluster)
}

// requestID is the tunnel's request id: the client's, else one made when first needed (by a
// refusal, whose log line then shows the same), as most tunnels never need one.
func (lp *loopPipe) requestID() []byte {
	if lp.id == nil && lp.via == viaConnect {
		lp.id = httpfwd.NewRequestID()
	}
	return lp.id
}

// ForwardLoopHTTPStats are the counters of the loop engine that serves the forward port's
// HTTP requests on its event loop; zero without ListenForwardLoop.
func (p *Proxy) ForwardLoopHTTPStats() httpfwd.LoopStats {
	if ls := p.loopHTTP.Load(); ls != nil {
		return ls.Stats()
	}
	return httpfwd.LoopStats{}
}
