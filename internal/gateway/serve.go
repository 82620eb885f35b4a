package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/gopool"
)

// Listen binds every server port on cfg.Bind before anything serves, so a port that cannot be
// bound fails the start with the server's name; nothing stays bound on failure.
func (g *Gateway) Listen() error {
	if g.cfg.EventLoop {
		return g.listenLoop()
	}
	st := g.state.Load()
	for _, port := range g.Ports() {
		bind := uint64(port)
		if p, ok := g.cfg.Ports[port]; ok {
			bind = uint64(p)
		}
		addr := net.JoinHostPort(g.cfg.Bind, strconv.FormatUint(bind, 10))
		// No TCP keep-alive on accepted connections, as Envoy's listeners and the forward one:
		// Go's default costs four setsockopt calls per connection.
		ln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", addr)
		if err != nil {
			g.Close()
			return fmt.Errorf("%s: listen on %s: %w", st.ports[port].Servers[0].Where(), addr, err)
		}
		g.lnMu.Lock()
		g.lns[port] = ln
		g.lnMu.Unlock()
	}
	return nil
}

// Addrs returns the bound address of each server port, by server port.
func (g *Gateway) Addrs() map[uint32]net.Addr {
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	out := map[uint32]net.Addr{}
	if g.loop != nil {
		for p, a := range g.loop.addrs {
			out[p] = net.TCPAddrFromAddrPort(a)
		}
	}
	for p, ln := range g.lns {
		out[p] = ln.Addr()
	}
	return out
}

// Serve accepts on every bound port until Shutdown or Close; it returns the first accept
// failure that is not the listener closing.
func (g *Gateway) Serve() error {
	if g.loop != nil {
		<-g.loop.ended // the Group serves since Listen
		return nil
	}
	lns := g.Listeners()
	errs := make(chan error, len(lns))
	for port, ln := range lns {
		go func() { errs <- g.ServeListener(port, ln) }()
	}
	var first error
	for range lns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Listeners returns the bound listener of each server port, for a caller that runs each
// ServeListener itself; none with Config.EventLoop, whose Group serves from Listen on.
func (g *Gateway) Listeners() map[uint32]net.Listener {
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	out := make(map[uint32]net.Listener, len(g.lns))
	for p, ln := range g.lns {
		out[p] = ln
	}
	return out
}

// ServeListener serves the connections of server port on ln, each under the port's cap, until
// ln closes; it returns nil when that was Shutdown or Close.
func (g *Gateway) ServeListener(port uint32, ln net.Listener) error {
	open := g.openCount(port)
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: back off rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.Warn("gateway accept failed", "port", port, "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if n := open.Add(1); g.cfg.MaxConnections > 0 && n > int64(g.cfg.MaxConnections) {
			open.Add(-1)
			g.stats.Overflow.Add(1)
			c.Close()
			continue
		}
		g.conns.Add(1)
		gopool.Go(func() {
			defer g.conns.Done()
			defer open.Add(-1)
			g.handle(c, port)
		})
	}
}

func (g *Gateway) openCount(port uint32) *atomic.Int64 {
	v, _ := g.open.LoadOrStore(port, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// Open returns the connections open on a port now.
func (g *Gateway) Open(port uint32) int64 { return g.openCount(port).Load() }

// Shutdown stops accepting, lets HTTP connections finish their requests until ctx ends, then
// closes what is left. Byte pipes handed to the proxy are drained by the proxy's Shutdown.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.closeListeners()
	loopDone := g.shutdownLoop(ctx)
	err := g.http.Shutdown(ctx)
	g.cancel()
	// Once the loops ended no connection is handed off any more, so conns is not added to
	// while it is waited for.
	err = errors.Join(err, <-loopDone)
	done := make(chan struct{})
	go func() { g.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.http.Close()
		<-done
	}
	return err
}

// Close closes the listeners and every HTTP connection at once.
func (g *Gateway) Close() error {
	g.closeListeners()
	g.closeLoop()
	if g.cancel != nil {
		g.cancel()
	}
	if g.http != nil {
		return g.http.Close()
	}
	return nil
}

func (g *Gateway) closeListeners() {
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	for _, ln := range g.lns {
		ln.Close()
	}
}

func sortPorts(p []uint32) { slices.Sort(p) }
