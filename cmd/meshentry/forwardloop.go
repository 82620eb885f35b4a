package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/proxy"
)

// forwardLoopFlags put the forward proxy port on raw epoll event loops.
type forwardLoopFlags struct {
	enabled bool
	flag    *pflag.Flag // its Changed tells a flag given from the default
}

func (f *forwardLoopFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.enabled, "forward-event-loop", true, "serve the forward proxy port (--listen, an IP address) on raw epoll event loops (Linux), one per CPU, outside Go's netpoller: CONNECT tunnels to a STATIC service with IP endpoints in plaintext are relayed by the loops, and HTTP/1.1 keep-alive requests without a body to such a service, whose VirtualService rule (if one binds the host and port) does nothing but route and retry, are served by them; every other connection, or a connection at its first request the loops do not serve, is handed to the usual path with all its unread bytes. Off Linux, or with a host name in --listen, the usual path serves the port unless the flag is given; =false serves it on the usual path always")
	f.flag = fl.Lookup("forward-event-loop")
}

// on reports whether the loops serve the forward port (--listen): when the flag is on, unless
// it was left at its default and the loops cannot bind --listen (off Linux, or a host name
// rather than an IP address), which the Go path then serves as it always did. Given
// explicitly, it holds, and a --listen the loops cannot bind is an error.
func (f *forwardLoopFlags) on(listen string) bool {
	if !f.enabled || listen == "" {
		return false
	}
	if f.flag != nil && f.flag.Changed {
		return true
	}
	_, err := loopListenAddr(listen)
	return runtime.GOOS == "linux" && err == nil
}

// forwardLoopRun is the forward proxy port on an evloop Group; a nil one (no
// --forward-event-loop) does nothing.
type forwardLoopRun struct {
	group *evloop.Group
	addr  net.Addr
	// stopCut ends the watch that closes the Group when the proxy cuts its pipes.
	stopCut func() bool
}

// startForwardLoop binds the forward proxy port on a Group for p (exit 2 when it cannot be
// bound); the loops serve from here on, as the gateway's do.
func startForwardLoop(f *runFlags, p *proxy.Proxy) (*forwardLoopRun, error) {
	if !f.forwardLoop.on(f.listen) {
		return nil, nil
	}
	addr, err := loopListenAddr(f.listen)
	if err != nil {
		return nil, err
	}
	group, err := evloop.New(p.ForwardLoopOptions())
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--forward-event-loop: %w", err)}
	}
	bound, err := p.ListenForwardLoop(group, addr)
	if err != nil {
		group.Close()
		return nil, &exitError{code: 2, err: fmt.Errorf("forward proxy listener: %w", err)}
	}
	// A drain cut short cancels the proxy's pipes; the loop's tunnels end with them.
	stopCut := context.AfterFunc(p.PipeContext(), func() { group.Close() })
	return &forwardLoopRun{group: group, addr: net.TCPAddrFromAddrPort(bound), stopCut: stopCut}, nil
}

// loopListenAddr is --listen as the address a Group binds: an IP address, or none for every
// address, IPv4 and IPv6 alike, as net.Listen takes ":port".
func loopListenAddr(listen string) (netip.AddrPort, error) {
	host, portText, err := net.SplitHostPort(listen)
	port, perr := strconv.ParseUint(portText, 10, 16)
	if err != nil || perr != nil {
		return netip.AddrPort{}, usageError("--listen %q is not HOST:PORT", listen)
	}
	if host == "" {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port)), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, usageError("--forward-event-loop binds an IP address, not %q (--listen)", host)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// serve announces the port the loops serve since startForwardLoop.
func (r *forwardLoopRun) serve(g *serveGroup) {
	if r != nil {
		g.announce("forward proxy", r.addr)
	}
}

// drain starts the Group's drain beside the proxy's and returns the wait for it: the loops
// stop accepting, the heads not yet decided are decided (the proxy, draining, hands them to
// its engine) and the tunnels run until they end, or until the proxy cuts its pipes.
func (r *forwardLoopRun) drain(log *slog.Logger, timeout time.Duration) func() {
	if r == nil {
		return func() {}
	}
	return drainAside(log, "forward proxy event loop drain cut short", timeout, r.group.Shutdown, func() { r.stopCut() })
}

// close ends the Group's tunnels at once, for a run that stops without a drain.
func (r *forwardLoopRun) close() {
	if r != nil {
		r.group.Close()
		r.stopCut()
	}
}
