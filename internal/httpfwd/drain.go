package httpfwd

import (
	"context"
	"time"
)

// Draining works as Envoy drains an HTTP connection manager: the server stops accepting, a
// request in flight finishes, and every response written from then on says Connection: close
// and ends its connection; a keep-alive connection waiting for its next request is closed, and
// an HTTP/2 client gets a GOAWAY naming the highest stream it started, so that it sends no new
// stream and the connection closes once its streams are done. Upgraded (101) connections and
// those OnConnect took over have no request boundary: they go on until they end by themselves
// or the caller's deadline closes them.

// drainTick is how often a drain repeats its nudges: a connection that turned idle, or began
// HTTP/2, after the previous pass is reached by the next.
const drainTick = 20 * time.Millisecond

// Drain puts the server in draining mode and returns at once: the listeners are closed before
// it returns, so a new client is refused; what is already open drains as described above.
// Shutdown drains too, and waits; Drain lets a caller stop several servers accepting at the
// same moment before it waits for any of them.
func (s *Server) Drain() {
	s.init()
	s.shutting.Store(true)
	s.closeListeners()
	s.closeIdle()
	s.goAwayHTTP2()
}

// Draining reports whether Drain, Shutdown or Close was called.
func (s *Server) Draining() bool { return s.shutting.Load() }

// Shutdown drains the server and waits until every connection has ended, then closes the
// pooled upstream connections and returns nil. When ctx ends first it closes everything still
// open, waits for the serving goroutines to return, and returns ctx's error.
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

// closeIdle wakes every connection waiting for a request with an expired read deadline, which
// makes it close, and returns how many connections are open.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.active {
		if c.idle.Load() {
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
