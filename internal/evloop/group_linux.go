package evloop

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Group is a set of event loops that accept, connect and relay TCP connections.
type Group struct {
	loops   []*loop
	open    atomic.Int64 // pairs open across the loops, for MaxConnections and Stats
	maxOpen int64
	// headTimeout is Options.HeadTimeout, for the TCP_DEFER_ACCEPT of head listeners.
	headTimeout time.Duration

	mu       sync.Mutex
	draining bool // Shutdown began: no more Listen
}

// New starts a Group of o.Loops event loops, each on its own goroutine.
func New(o Options) (*Group, error) {
	o = o.withDefaults(runtime.GOMAXPROCS(0))
	g := &Group{maxOpen: int64(o.MaxConnections), headTimeout: o.HeadTimeout}
	for range o.Loops {
		l, err := newLoop(g, o, len(g.loops))
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("evloop: new loop: %w", err)
		}
		g.loops = append(g.loops, l)
		go l.run()
	}
	return g, nil
}

// Listen accepts TCP connections on addr, one SO_REUSEPORT listener per loop, and relays each
// to where route sends it. With port 0 the first listener takes a port from the kernel and
// the others bind to it; Listen returns the bound address.
func (g *Group) Listen(addr netip.AddrPort, route RouteFunc) (netip.AddrPort, error) {
	if route == nil {
		return netip.AddrPort{}, errors.New("evloop: Listen without a route")
	}
	return g.listen(addr, &listener{route: route})
}

// ListenHead is Listen for connections decided from their client's first bytes: each accepted
// connection is peeked at (MSG_PEEK, nothing is read) and head decides, on the loop's thread,
// whether to wait for more, relay it (Target.Consume dropping the head first), hand it off with
// every byte still in its socket, or close it. The listeners defer the accept until the client
// sent something (TCP_DEFER_ACCEPT, for HeadTimeout), so that most heads are there at once and
// a connection handed off on its first peek costs the loop no epoll registration.
func (g *Group) ListenHead(addr netip.AddrPort, head HeadFunc) (netip.AddrPort, error) {
	if head == nil {
		return netip.AddrPort{}, errors.New("evloop: ListenHead without a HeadFunc")
	}
	return g.listen(addr, &listener{head: head})
}

// listen binds a listener like proto per loop.
func (g *Group) listen(addr netip.AddrPort, proto *listener) (netip.AddrPort, error) {
	deferSecs := 0
	if proto.head != nil {
		deferSecs = int((g.headTimeout + time.Second - 1) / time.Second)
	}
	g.mu.Lock()
	draining := g.draining
	g.mu.Unlock()
	if draining {
		return netip.AddrPort{}, ErrShutdown
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	bound := addr
	lis := make([]*listener, 0, len(g.loops))
	for range g.loops {
		fd, got, err := openListener(bound, deferSecs)
		if err != nil {
			for _, li := range lis {
				unix.Close(int(li.fd))
			}
			return netip.AddrPort{}, err
		}
		bound = netip.AddrPortFrom(addr.Addr(), got.Port())
		li := *proto
		li.fd, li.addr, li.wildcard = fd, bound, addr.Addr().IsUnspecified()
		lis = append(lis, &li)
	}
	errs := make(chan error, len(lis))
	for i, l := range g.loops {
		li := lis[i]
		if !l.submit(func() { errs <- l.addListener(li) }) {
			unix.Close(int(li.fd))
			errs <- ErrShutdown
		}
	}
	var err error
	for range lis {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		for i, l := range g.loops {
			li := lis[i]
			l.submit(func() { l.closeListener(li) })
		}
		return netip.AddrPort{}, fmt.Errorf("evloop: listen %s: %w", addr, err)
	}
	return bound, nil
}

// Shutdown closes the listeners, lets the open pairs run until they end or ctx is done, then
// ends those left (Done with ErrShutdown), stops the loops and returns once their goroutines
// did. It returns ctx.Err() when it had to end pairs, nil when they all ended by themselves.
func (g *Group) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	first := !g.draining
	g.draining = true
	g.mu.Unlock()
	if first {
		for _, l := range g.loops {
			l.submit(l.drain)
		}
	}
	var cut error
	if !g.waitLoops(ctx.Done()) {
		cut = ctx.Err()
		for _, l := range g.loops {
			l.submit(func() { l.stopping = true })
		}
	}
	g.waitLoops(nil)
	return cut
}

// waitLoops waits for every loop to end; false if stop came first.
func (g *Group) waitLoops(stop <-chan struct{}) bool {
	for _, l := range g.loops {
		select {
		case <-l.done:
		case <-stop:
			return false
		}
	}
	return true
}

// Close is Shutdown with a done context: the open pairs end at once with ErrShutdown.
func (g *Group) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Stats reads the Group's counters; each is exact, the set is not one instant's.
func (g *Group) Stats() Stats {
	s := Stats{Open: g.open.Load()}
	for _, l := range g.loops {
		c := &l.stats
		s.Accepted += c.accepted.Load()
		s.Overflow += c.overflow.Load()
		s.Rejected += c.rejected.Load()
		s.Handoffs += c.handoffs.Load()
		s.Pairs += c.pairs.Load()
		s.ConnectFailures += c.connectFailures.Load()
		s.ConnectTimeouts += c.connectTimeouts.Load()
		s.IdleTimeouts += c.idleTimeouts.Load()
		s.AcceptErrors += c.acceptErrors.Load()
		s.HeadWaits += c.headWaits.Load()
		s.HeadTimeouts += c.headTimeouts.Load()
		s.HeadFull += c.headFull.Load()
		s.HeadErrors += c.headErrors.Load()
		s.Served += c.served.Load()
		s.Dials += c.dials.Load()
		s.BytesUp += c.bytesUp.Load()
		s.BytesDown += c.bytesDown.Load()
	}
	return s
}
