package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/gopool"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// A gateway may relay its plain TCP servers on internal/evloop, outside Go's netpoller. These
// hooks pick such a connection's upstream without blocking, on the loop's thread, and only
// when the loop can serve it exactly as GatewayPipe would: a STATIC service whose endpoints
// are IP addresses, reached in plaintext, without connection-pool limits, through the same
// route, picker and health as GatewayPipe. Every other destination is left to GatewayPipe.

// loopNever stands for "no idle timeout" (a negative TCPIdleTimeout): the loop has no
// "never", and a century is past any process's life.
const loopNever = 100 * 365 * 24 * time.Hour

// GatewayLoopOptions are the evloop Options that time a pipe as GatewayPipe does: the
// proxy's connect timeout per attempt and its TCP idle timeout.
func (p *Proxy) GatewayLoopOptions() evloop.Options {
	idle := p.cfg.TCPIdleTimeout
	if idle < 0 {
		idle = loopNever
	}
	return evloop.Options{Loops: p.cfg.EventLoops, ConnectTimeout: p.cfg.ConnectTimeout, IdleTimeout: idle}
}

// PipeContext ends when the byte pipes must end: a drain cut short, or the proxy stopped. A
// gateway's evloop Group closes then, as GatewayPipe's relays do.
func (p *Proxy) PipeContext() context.Context { return p.pipeCtx }

// GatewayLoopTarget is GatewayPipe's destination pick for a connection acc an evloop Group
// accepted: the upstream and the hooks that report health, drain and telemetry as
// GatewayPipe does. False means the loop cannot serve the destination exactly as GatewayPipe
// would (or the proxy is shutting down): the caller hands the connection to GatewayPipe.
// It does not block; the work of the hooks runs on the goroutine pool.
func (p *Proxy) GatewayLoopTarget(host string, port uint32, subset, sni string, acc evloop.Accepted) (evloop.Target, bool) {
	t := p.table.Load()
	m := p.gatewayMatch(t, host, port)
	if m.Outcome != registry.Matched || m.Service.Resolution != registry.ResolutionStatic {
		return evloop.Target{}, false
	}
	r := t.route(m.Service, m.Port, p)
	if subset != "" {
		se, err := t.subsetRoute(m.Service, m.Port, subset, p)
		if err != nil {
			return evloop.Target{}, false
		}
		m.Port, m.Cluster, r = se.port, se.port.Cluster, se.route
	}
	lp := &loopPipe{p: p, r: r, m: m, host: host, port: port, sni: sni, via: "gateway",
		dst: destination{host: registry.NormalizeHost(host), port: port, src: acc.Remote.Addr()}}
	return lp.target(acc)
}

// target begins lp, a pipe to the endpoints of its route, and returns its first endpoint and
// the hooks that report it as the Go path does; false when the loop cannot serve the route
// exactly (loopServes), no endpoint may be picked, or the proxy is closing. The gateway's
// pipes and the forward proxy's CONNECT tunnels share it.
func (lp *loopPipe) target(acc evloop.Accepted) (evloop.Target, bool) {
	p := lp.p
	if !loopServes(lp.r) {
		return evloop.Target{}, false
	}
	addr, ok := lp.pick()
	if !ok || !p.beginLoop() {
		return evloop.Target{}, false
	}
	lp.rec = p.startLoopConn(acc, lp.host, lp.port, lp.sni)
	target := evloop.Target{Addr: addr, Connected: lp.connected, Retry: lp.retry, Done: lp.done}
	if p.sec.hasWildcard() {
		target.Check = lp.checkSelf // one getsockname per connection, only where it can matter
	}
	return target, true
}

// loopServes reports whether the loop can reach r's endpoints as dialRoute would: plaintext
// (no TLS origination, no refusal of it), no connection-pool limits to take and keep, and a
// picker that picks endpoints rather than the original destination.
func loopServes(r *route) bool {
	return r.tls.explicit == nil && r.tls.auto == nil && r.tls.refusal() == nil && r.limits == nil &&
		!r.picker.Passthrough()
}

// beginLoop is begin for a connection that is no net.Conn: Shutdown waits for it. A drain cut
// short ends it through PipeContext, not through the registered connections.
func (p *Proxy) beginLoop() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.wg.Add(1)
	return true
}

// startLoopConn is startConn for a connection the loop accepted.
func (p *Proxy) startLoopConn(acc evloop.Accepted, host string, port uint32, sni string) *connRecord {
	if p.cfg.Telemetry == nil {
		return nil
	}
	return &connRecord{p: p, rec: telemetry.Conn{Start: time.Now(), Authority: hostPort(host, port), SNI: sni,
		DownstreamRemote: net.TCPAddrFromAddrPort(acc.Remote), DownstreamLocal: net.TCPAddrFromAddrPort(acc.Local)}}
}

// loopPipe is one pipe on an evloop Group, a gateway's or a CONNECT tunnel: what dialRoute's
// loop keeps (the endpoints tried, the errors) and what GatewayPipe or handleConnect reports
// once connected and closed.
type loopPipe struct {
	p         *Proxy
	r         *route
	m         registry.Match
	host, sni string
	port      uint32
	// via names the path in the logs ("gateway", "CONNECT"); id is the CONNECT's request id.
	via      string
	id       []byte
	lim      *connLimit // the place under the proxy's cap a CONNECT tunnel holds, if any
	dst      destination
	rec      *connRecord
	endpoint int // the endpoint being connected to, or connected
	tried    uint64
	errs     []error
	opened   sync.Once
	// upConnected is set on the loop's thread when the upstream connected, before Done.
	upConnected bool
	epCounters  *epCounters
}

// pick picks the next endpoint as dialRoute does, past those tried; false when none is left or
// the one picked is not an IP address the loop may connect to (a unix socket, one of the
// proxy's own listeners, beyond the mask of tried endpoints).
func (lp *loopPipe) pick() (netip.AddrPort, bool) {
	exclude := func(i int) bool { return i < 64 && lp.tried&(1<<i) != 0 }
	i, ok := lp.r.pickPipe(lp.dst, exclude)
	if !ok || i >= 64 {
		return netip.AddrPort{}, false
	}
	e := &lp.r.eps[i]
	if e.ep.Unix || !e.ep.IP.IsValid() || e.up.Addr == "" {
		return netip.AddrPort{}, false
	}
	addr, err := netip.ParseAddrPort(e.up.Addr)
	if err != nil || addr.Addr().Zone() != "" || lp.p.sec.isSelf(addr) {
		return netip.AddrPort{}, false
	}
	lp.endpoint = i
	return addr, true
}

// retry runs on the loop's thread after a failed connect: it records the failure as
// dialRoute does and picks the next endpoint while attempts are left.
func (lp *loopPipe) retry(err error) (netip.AddrPort, bool) {
	e := &lp.r.eps[lp.endpoint]
	lp.errs = append(lp.errs, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(mustAddrPort(e.up.Addr)), Err: err})
	lp.tried |= 1 << lp.endpoint
	key, health := e.up.Key, lp.r.health
	gopool.Go(func() { lp.p.reportFailure(health, key) }) // it may log an ejection
	if len(lp.errs) >= lp.p.cfg.MaxAttempts {
		return netip.AddrPort{}, false
	}
	return lp.pick()
}

// checkSelf is dialGuarded's check once connected (reachedSelf), on the loop's thread: a
// connection to one of the proxy's wildcard listeners through a local address the address
// list does not know ends, as a loop, before a byte is relayed.
func (lp *loopPipe) checkSelf(remote, local netip.AddrPort) error {
	if !lp.p.sec.reachedSelfAddrs(remote, local) {
		return nil
	}
	err := fmt.Errorf("dial %s: %w", remote, errLoop)
	lp.errs = append(lp.errs, err)
	return err
}

// dialErr is the error dialRoute would have returned for the attempts of lp, which ended with
// last: a loop as it is, other failures joined under the cluster's name.
func (lp *loopPipe) dialErr(last error) error {
	if len(lp.errs) == 0 {
		return fmt.Errorf("%s: %w", lp.r.port.Cluster, last)
	}
	for _, err := range lp.errs {
		if errors.Is(err, errLoop) {
			return err
		}
	}
	return fmt.Errorf("%s: %w", lp.r.port.Cluster, errors.Join(lp.errs...))
}

func mustAddrPort(s string) netip.AddrPort {
	a, _ := netip.ParseAddrPort(s)
	return a
}

// connected runs on the loop's thread once the upstream answered: the endpoint's health and
// open count as GatewayPipe reports them once dialled, both lock-free loads and atomics; the
// telemetry record and its log, which may block, go to the pool, and only when someone reads
// them, so that a pipe costs the loop one hand-off (done's), not two.
func (lp *loopPipe) connected(netip.AddrPort) {
	p, key := lp.p, lp.r.eps[lp.endpoint].up.Key
	p.reportSuccess(lp.r.health, key)
	lp.upConnected = true
	lp.epCounters = p.counts.connOpened(key)
	if lp.rec != nil || p.log.Enabled(p.pipeCtx, slog.LevelDebug) {
		gopool.Go(func() { lp.opened.Do(lp.reportOpened) })
	}
}

// reportOpened is the telemetry's opened record of the upstream connected.
func (lp *loopPipe) reportOpened() {
	p, key := lp.p, lp.r.eps[lp.endpoint].up.Key
	lp.rec.opened(p.serviceOf(lp.m), key)
	if !p.log.Enabled(p.pipeCtx, slog.LevelDebug) {
		return
	}
	if lp.via == viaConnect {
		p.log.Debug("tunnel", "host", lp.host, "port", lp.port, "cluster", lp.m.Cluster, "upstream", key, "event_loop", true)
		return
	}
	p.log.Debug("gateway pipe", "host", lp.host, "port", lp.port, "sni", lp.sni, "cluster", lp.m.Cluster,
		"upstream", key, "event_loop", true)
}

// done runs on the loop's thread when the pair ended. A pipe that connected and ended with
// nothing to log or record finishes there: its reports are atomics, and a hand-off to the
// pool would cost more than they do (a wakeup of another thread per pipe). The others'
// reports, which may block, wait on the pool.
func (lp *loopPipe) done(res evloop.Result) {
	if lp.lim != nil {
		lp.lim.open.Add(-1)
	}
	if res.ConnectErr == nil && lp.upConnected && lp.rec == nil && !lp.p.log.Enabled(lp.p.pipeCtx, slog.LevelDebug) {
		lp.finish(res)
		return
	}
	gopool.Go(func() { lp.finish(res) })
}

// finish reports the end of the pipe as GatewayPipe does and lets Shutdown's wait go on.
func (lp *loopPipe) finish(res evloop.Result) {
	p := lp.p
	defer p.wg.Done()
	if res.ConnectErr != nil {
		err := lp.dialErr(res.ConnectErr)
		p.logRequestFailure(err, lp.requestID(), lp.via, lp.host, lp.port, lp.m.Cluster)
		lp.rec.failed(p.serviceOf(lp.m), dialFlags(err))
		return
	}
	if !lp.upConnected {
		// Never connected: the client reset while the connect was under way (evloop ends the
		// pair then), reported as the engine reports a client gone before its tunnel opened.
		p.log.Debug("client left before its upstream connected", "host", lp.host, "port", lp.port, "err", res.Err)
		lp.rec.failed(p.serviceOf(lp.m), telemetry.DownstreamClosed)
		return
	}
	lp.opened.Do(lp.reportOpened) // connected's task, if any, may not have run yet
	idle := errors.Is(res.Err, evloop.ErrIdleTimeout)
	if idle {
		p.stats.idleClosed.Add(1)
		p.log.Debug("closed an idle tunnel", "host", lp.host, "port", lp.port, "idle_timeout", p.cfg.TCPIdleTimeout)
	}
	lp.epCounters.connClosed()
	lp.rec.closed(res.Up, res.Down, idle)
}
