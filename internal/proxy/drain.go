package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshentry/meshentry/internal/httpfwd"
)

// Shutdown drains the proxy as Envoy drains its listeners, and returns once everything ended:
// the listeners stop accepting at once; HTTP requests in flight finish, each response written
// from then on says Connection: close and ends its connection, idle keep-alive connections are
// closed and HTTP/2 clients get GOAWAY; CONNECT tunnels and captured TCP/TLS pipes, which have no
// request boundary to stop at, go on until they end by themselves. Shutdown returns nil when all
// of that ended; when ctx ends first (the drain timeout), it closes whatever is still open and
// returns an error wrapping ctx's. Either way it returns only after every serving goroutine did,
// with the pooled upstream connections closed.
//
// A connection accepted just before the drain began is served as the rest are: a captured one
// still being sniffed is piped, or handed to the draining HTTP engine, which gives a connection
// that has not sent its first request a short grace to send it.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.draining = true
	for ln := range p.lns {
		ln.Close()
	}
	p.mu.Unlock()
	// Both engines stop accepting before either is waited for.
	p.forward.Drain()
	p.capture.Drain()
	drained := make(chan error, 1)
	go func() { drained <- p.waitDrained(ctx) }()
	var err error
	select {
	case err = <-drained:
	case <-ctx.Done():
		n := p.cutDrainShort()
		// The engines saw ctx end too and close their own connections; wait for them.
		<-drained
		err = fmt.Errorf("drain cut short, %d pipe connections closed: %w", n, ctx.Err())
	}
	p.cancel()
	p.pool.Close()
	return err
}

// waitDrained waits for both HTTP engines to drain (ctx ending closes theirs) and then for the
// goroutines serving byte pipes and captured connections.
func (p *Proxy) waitDrained(ctx context.Context) error {
	errs := make(chan error, 2)
	for _, s := range []*httpfwd.Server{p.forward, p.capture} {
		go func() { errs <- s.Shutdown(ctx) }()
	}
	err := errors.Join(<-errs, <-errs)
	// The forward connections, inside which tunnels begin, have ended; captured connections,
	// those handed to the capture engine after it drained included, and the capture accept
	// loops count in wg.
	p.wg.Wait()
	return err
}

// cutDrainShort ends the drain at its deadline: dials and relays of byte pipes are canceled,
// every connection still registered is closed, and so is every HTTP connection. It returns how
// many pipe connections were closed.
func (p *Proxy) cutDrainShort() int {
	p.mu.Lock()
	p.closing = true
	p.cancelPipe()
	p.cancel()
	n := len(p.conns)
	p.closeConnsLocked()
	p.mu.Unlock()
	p.drainClosed.Add(uint64(n))
	// Either engine may have drained already and still be handed a captured connection.
	p.forward.Close()
	p.capture.Close()
	return n
}

// DrainClosed counts the connections (CONNECT tunnels, captured pipes and their upstreams) that
// were still open when a drain timed out and were closed by it.
func (p *Proxy) DrainClosed() uint64 { return p.drainClosed.Load() }
