package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/route"
)

// eventLoop is the evloop Group that serves the ports under Config.EventLoop: the connections
// of TCP servers it can relay as the proxy would stay on its loops, every other one is handed
// to handle, as ServeListener would.
type eventLoop struct {
	group *evloop.Group
	addrs map[uint32]netip.AddrPort // bound address by server port
	// stopCut ends the watch that closes the Group when the proxy cuts its pipes.
	stopCut func() bool
	ended   chan struct{} // closed once the Group's loops all ended
	endOnce sync.Once
}

// listenLoop binds every server port on one evloop Group; nothing stays bound on failure.
// The Group accepts from here on, where ServeListener would wait for Serve: the routes read
// the current state, which New set.
func (g *Gateway) listenLoop() error {
	bind, err := loopBindAddr(g.cfg.Bind)
	if err != nil {
		return err
	}
	group, err := evloop.New(g.cfg.Proxy.GatewayLoopOptions())
	if err != nil {
		return fmt.Errorf("gateway: event loop: %w", err)
	}
	loop := &eventLoop{group: group, addrs: map[uint32]netip.AddrPort{}, ended: make(chan struct{})}
	st := g.state.Load()
	for _, port := range g.Ports() {
		bindPort := uint16(port)
		if p, ok := g.cfg.Ports[port]; ok {
			bindPort = p
		}
		addr := netip.AddrPortFrom(bind, bindPort)
		got, err := group.Listen(addr, g.loopRoute(port))
		if err != nil {
			group.Close()
			return fmt.Errorf("%s: listen on %s: %w", st.ports[port].Servers[0].Where(), addr, err)
		}
		loop.addrs[port] = got
	}
	// A drain cut short cancels the proxy's pipes; the loop's pairs end with them.
	loop.stopCut = context.AfterFunc(g.cfg.Proxy.PipeContext(), func() { group.Close() })
	g.lnMu.Lock()
	g.loop = loop
	g.lnMu.Unlock()
	return nil
}

// loopBindAddr is Config.Bind as an address; empty binds every address, IPv4 and IPv6 alike.
func loopBindAddr(bind string) (netip.Addr, error) {
	if bind == "" {
		return netip.IPv6Unspecified(), nil
	}
	a, err := netip.ParseAddr(bind)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("gateway: the event loop binds an IP address, not %q", bind)
	}
	return a.Unmap(), nil
}

// loopRoute routes the connections of server port on a loop's thread: under the port's cap as
// ServeListener does, through the proxy's fast path when the port's first server is plain TCP
// and the loop can serve its route, else handed off to handle.
func (g *Gateway) loopRoute(port uint32) evloop.RouteFunc {
	open := g.openCount(port)
	return func(acc evloop.Accepted) (evloop.Target, bool) {
		if n := open.Add(1); g.cfg.MaxConnections > 0 && n > int64(g.cfg.MaxConnections) {
			open.Add(-1)
			g.stats.Overflow.Add(1)
			return evloop.Target{}, false
		}
		return g.loopTarget(port, open, acc), true
	}
}

// handoff hands a connection to serve on a pooled goroutine, counted open and waited for as
// ServeListener's are.
func (g *Gateway) handoff(open *atomic.Int64, serve func(net.Conn)) evloop.Target {
	g.conns.Add(1)
	return evloop.Target{Handoff: func(c net.Conn) {
		defer g.conns.Done()
		defer open.Add(-1)
		serve(c)
	}}
}

// loopTarget is pipeTCP's route lookup for a plain TCP server, the proxy's fast path after
// it; every other case is handed off to handle, and a destination the fast path refuses to
// GatewayPipe.
func (g *Gateway) loopTarget(port uint32, open *atomic.Int64, acc evloop.Accepted) evloop.Target {
	st := g.current()
	l := st.ports[port]
	var r *route.L4Route
	if l != nil && l.Servers[0].Kind == KindTCP {
		r = st.table.TCP(port, netip.Addr{}, l.Servers[0].Gateway)
	}
	var d *route.Destination
	if r != nil {
		d = r.Pick(g.pick.Add(1))
	}
	if d == nil {
		// No server, another kind, or no route: handle serves, or counts and logs the refusal.
		return g.handoff(open, func(c net.Conn) { g.handle(c, port) })
	}
	t, ok := g.cfg.Proxy.GatewayLoopTarget(d.Host, destPort(d, port), d.Subset, "", acc)
	if !ok {
		// The destination is picked: handle would pick again, and skew the weights.
		return g.handoff(open, func(c net.Conn) { g.cfg.Proxy.GatewayPipe(c, d.Host, destPort(d, port), d.Subset, "") })
	}
	done := t.Done
	t.Done = func(r evloop.Result) {
		open.Add(-1)
		done(r)
	}
	return t
}

// shutdownLoop starts the Group's drain under ctx; the channel delivers its outcome (nil
// without an event loop).
func (g *Gateway) shutdownLoop(ctx context.Context) <-chan error {
	out := make(chan error, 1)
	loop := g.eventLoop()
	if loop == nil {
		out <- nil
		return out
	}
	go func() {
		err := loop.group.Shutdown(ctx)
		loop.stopCut()
		loop.closeEnded()
		out <- err
	}()
	return out
}

// closeLoop ends the Group's pairs at once.
func (g *Gateway) closeLoop() {
	if loop := g.eventLoop(); loop != nil {
		loop.group.Close()
		loop.stopCut()
		loop.closeEnded()
	}
}

func (g *Gateway) eventLoop() *eventLoop {
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	return g.loop
}

// closeEnded closes ended once, whichever of Shutdown and Close ends the Group first.
func (l *eventLoop) closeEnded() { l.endOnce.Do(func() { close(l.ended) }) }

// LoopStats are the event loop's counters, zero without one.
func (g *Gateway) LoopStats() evloop.Stats {
	if loop := g.eventLoop(); loop != nil {
		return loop.group.Stats()
	}
	return evloop.Stats{}
}

// EventLoop reports whether an evloop Group serves the ports (Config.EventLoop, after Listen):
// then Listeners is empty and Serve only waits.
func (g *Gateway) EventLoop() bool { return g.eventLoop() != nil }
