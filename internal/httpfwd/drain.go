package httpfwd

import (
	"context"
	"time"
)

// Draining works as Envoy drains an HTTP connection manager: the server stops accepting, a
// request in flight finishes, and every response written from then on says Connection: close
// and ends its connection. A keep-alive connection waiting for its next request is closed; one
// that has not sent its first request yet has firstRequestGrace to do so; an HTTP/2 client gets
// a GOAWAY naming the highest stream it started, so that it sends no new stream, and the
// connection closes once its streams are done. Upgraded (101) connections and those OnConnect
// took over have no request boundary: they go on until they end by themselves or the caller's
// deadline closes them.

// firstRequestGrace is how long after the drain began a connection that had sent nothing yet
// may take to send its first request head. Its client connected before the listener closed and
// may be writing the request at that moment; closing it at once would fail a request that
// reached the proxy in time. net/http gives new connections 5 s; a drain wants less.
const firstRequestGrace = time.Second

// drainTick is how often a drain repeats its nudges: a connection that turned idle, or began
// HTTP/2, after the previous pass is reached by the next.
const drainTick = 20 * time.Millisecond

// Drain puts the server in draining mode and returns at once: the listeners are closed before
// it returns, so a new client is refused; what is already open drains as described above.
// Shutdown drains too, and waits; Drain lets a caller stop several servers accepting at the
// same moment before it waits for any of them.
func (s *Server) Drain() {
	s.init()
	s.drainStart.CompareAndSwap(0, time.Now().UnixNano())
	s.shutting.Store(true)
	s.closeListeners()
	s.closeIdle()
	s.goAwayHTTP2()
}

// firstRequestDeadline is when a connection that has not sent its first request is closed.
func (s *Server) firstRequestDeadline() time.Time {
	return time.Unix(0, s.drainStart.Load()).Add(firstRequestGrace)
}

// Draining reports whether Drain, Shutdown or Close was called.
func (s *Server) Draining() bool { return s.shutting.Load() }

// Shutdown drains the server and waits until every connection has ended, then closes the
// pooled upstream connections and returns nil. A connection handed to ServeConn after it
// returned is still served, as a draining one, until Close. When ctx ends first it closes
// everything still open, waits for the serving goroutines to return (an OnConnect handler must
// return once its ctx is canceled), and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	tick := time.NewTicker(drainTick)
	defer tick.Stop()
	for {
		if s.closeIdle() == 0 {
			s.serveGroup.Wait()
			s.closePool()
			return nil
		}
		s.goAwayHTTP2()
		select {
		case <-ctx.Done():
			s.Close()
			s.waitClosed(tick)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle wakes every keep-alive connection waiting for its next request with an expired
// read deadline, which makes it close, gives one still waiting for its first request until the
// grace ends, and returns how many connections are open.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.active {
		switch {
		case !c.idle.Load():
		case c.fresh.Load():
			c.nc.SetReadDeadline(s.firstRequestDeadline())
		default:
			c.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
	return len(s.active)
}

// waitClosed waits, after Close, for the connections to notice: those Serve accepted are
// counted by serveGroup, those handed to ServeConn only by the active set.
func (s *Server) waitClosed(tick *time.Ticker) {
	for {
		s.mu.Lock()
		n := len(s.active)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		<-tick.C
	}
	s.serveGroup.Wait()
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.init()
	s.drainStart.CompareAndSwap(0, time.Now().UnixNano())
	s.closed.Store(true)
	s.shutting.Store(true)
	s.closeListeners()
	s.cancel()
	s.mu.Lock()
	for c := range s.active {
		c.abort()
	}
	s.mu.Unlock()
	s.closePool()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		ln.Close()
	}
}

func (s *Server) closePool() {
	s.closeHTTP2()
	if s.ownPool {
		s.pool.Close()
	}
}
