package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// listeners are the sockets `run` serves; a nil one is disabled.
type listeners struct {
	forward, capture, admin net.Listener
	// forwardLoop is the forward proxy's address when an event loop serves it (forward is nil).
	forwardLoop net.Addr
}

// openListeners binds every configured address before anything serves, so the proxy knows all of
// its own addresses (it must never dial them) and a port in use fails the start (exit status 2).
func openListeners(f *runFlags) (listeners, error) {
	var lns listeners
	var opened []net.Listener
	for _, l := range []struct {
		name, addr string
		dst        *net.Listener
	}{
		{"forward proxy", f.listen, &lns.forward},
		{"capture", f.captureListen, &lns.capture},
		{"admin", f.adminAddr, &lns.admin},
	} {
		if l.addr == "" || l.dst == &lns.forward && f.forwardLoop.on(f.listen) {
			continue // the event loop binds the forward port once the proxy exists
		}
		// No TCP keep-alive on accepted client sockets, as Envoy's listeners: Go's default
		// (15 s) costs four setsockopt calls per connection, a quarter of a short one's.
		ln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", l.addr)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return listeners{}, &exitError{code: 2, err: fmt.Errorf("%s listener: %w", l.name, err)}
		}
		opened = append(opened, ln)
		*l.dst = ln
	}
	return lns, nil
}

// closeListeners closes the listeners openListeners bound, for a start that fails after it.
func closeListeners(lns listeners) {
	for _, ln := range []net.Listener{lns.forward, lns.capture, lns.admin} {
		if ln != nil {
			ln.Close()
		}
	}
}

// serveGroup runs the listeners' serve loops; the first one to fail stops them all and is
// reported by /ready and in the exit status.
type serveGroup struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	out    io.Writer
	bound  map[string]net.Addr
	wg     sync.WaitGroup

	mu       sync.Mutex
	failures []string
}

// serve runs fn on ln in the background; a nil ln is skipped.
func (g *serveGroup) serve(name string, ln net.Listener, fn func(net.Listener) error) {
	if ln == nil {
		return
	}
	g.bound[name] = ln.Addr()
	fmt.Fprintf(g.out, "meshentry: %s listening on %s\n", name, ln.Addr())
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := fn(ln)
		if err == nil && g.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped serving")
		}
		g.log.Error("listener failed; shutting down", "listener", name, "err", err)
		g.mu.Lock()
		g.failures = append(g.failures, fmt.Sprintf("%s listener: %v", name, err))
		g.mu.Unlock()
		g.cancel()
	}()
}

// notReady lists what keeps the proxy from being ready: failed listeners, or draining.
func (g *serveGroup) notReady() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	pending := append([]string(nil), g.failures...)
	if g.ctx.Err() != nil {
		pending = append(pending, "draining")
	}
	return pending
}
