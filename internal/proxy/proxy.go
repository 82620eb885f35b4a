// Package proxy is meshentry's data plane: it accepts an application's connections (as an HTTP
// forward proxy, or transparently captured by iptables), matches them against the current registry
// snapshot the way an Istio sidecar does, and forwards them to the chosen endpoint.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/gopool"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/origdst"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// Config is how the proxy behaves; zero durations take the defaults noted.
type Config struct {
	// MaxIdleUpstreamConns bounds the idle connections kept per upstream (0: the pool's
	// default, 1024).
	MaxIdleUpstreamConns int
	// Namespace is the workload's namespace: only services exported to it are matched.
	Namespace string
	// RootNamespace is the mesh root namespace, whose exported DestinationRules apply everywhere
	// (istio-system when empty); Labels are the workload's, matched by workloadSelectors.
	RootNamespace string
	Labels        map[string]string
	// Locality (region/zone/subzone) and Network rank endpoints.
	Locality string
	Network  string
	// AllowAny passes unmatched traffic through (ALLOW_ANY) instead of refusing it (REGISTRY_ONLY).
	AllowAny bool
	// Resolver resolves DNS endpoints and, for NONE and passthrough via the forward proxy, hosts.
	Resolver *resolve.Resolver
	// Health tracks passive ejection; nil gives the proxy its own (5 failures eject for 30 s).
	Health *balance.Health
	Logger *slog.Logger
	// ConnectTimeout bounds one connect attempt (5 s); MaxAttempts bounds attempts per connection (3).
	ConnectTimeout time.Duration
	MaxAttempts    int
	// SniffTimeout is how long a captured connection to a port without a declared protocol may
	// stay silent before it is taken as server-first TCP (200 ms); declared ports are not sniffed.
	SniffTimeout time.Duration
	// TCPIdleTimeout closes a CONNECT tunnel or captured TCP/TLS pipe once no byte moved either way
	// for this long (1 h, Envoy's tcp_proxy idle_timeout); negative means never.
	TCPIdleTimeout time.Duration
	// EventLoops is the number of loops of each evloop Group the proxy's listeners run on
	// (GatewayLoopOptions, ForwardLoopOptions); 0 is one per GOMAXPROCS.
	EventLoops int
	// MaxConnections caps the downstream connections open at once across the forward and capture
	// listeners (Envoy's global_downstream_max_connections); beyond it a connection is closed as
	// soon as it is accepted, and counted. Zero derives it from RLIMIT_NOFILE: 128 descriptors are
	// kept free and each connection is allowed three (itself, its upstream, a pooled upstream), so
	// (RLIMIT_NOFILE-128)/3; negative means no cap.
	MaxConnections int
	// HTTP bounds header sizes and timeouts of the HTTP engine.
	HTTP httpfwd.Limits
	// SelfAddrs are further addresses of this process (the admin listener) that the proxy must never
	// dial; the forward and capture listeners are added when served.
	SelfAddrs []netip.AddrPort
	// Dial opens every upstream connection, after the proxy's own checks; nil is a net.Dialer.
	Dial DialFunc
	// RefusalLogRate and RefusalLogBurst bound refusal log lines: lines a second and at once (10, 20).
	RefusalLogRate  float64
	RefusalLogBurst int
	// Telemetry receives a record of each HTTP request and piped connection; nil reports none.
	Telemetry telemetry.Sink
	// Identity is the proxy's workload identity for ISTIO_MUTUAL and auto mTLS; nil means none,
	// so ISTIO_MUTUAL routes refuse and auto mTLS stays plaintext.
	Identity *identity.Source
}

// Proxy routes connections by the current snapshot; Update swaps the snapshot atomically.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	health   *balance.Health
	locality balance.Locality
	table    atomic.Pointer[table]
	// updateMu keeps Updates from overlapping (see update.go).
	updateMu sync.Mutex
	// live is what the serving snapshot holds, for Update's carry-over (live.go).
	live    liveState
	pool    *httpfwd.Pool
	forward *httpfwd.Server
	// loopHTTP is the forward engine's loop engine, once ListenForwardLoop serves the port.
	loopHTTP atomic.Pointer[httpfwd.LoopServer]
	capture  *httpfwd.Server
	sec      guard
	stats    counters
	// counts are the per-endpoint counters the admin API shows (Clusters).
	counts endpointCounts
	// connLimit is the cap shared by every listener; nil when there is none.
	connLimit *connLimit
	// origDst finds a captured connection's destination before iptables redirected it; tests that
	// cannot redirect put a fixed answer here and still use real sockets.
	origDst func(*net.TCPConn) (netip.AddrPort, error)

	// ctx aborts the dials and DNS lookups of HTTP requests; Shutdown cancels it once they drained.
	ctx    context.Context
	cancel context.CancelFunc
	// pipeCtx aborts the dials and relays of byte pipes (CONNECT, captured TLS and TCP); Shutdown
	// cancels it when the drain is cut short.
	pipeCtx    context.Context
	cancelPipe context.CancelFunc
	// mu guards draining, closing, lns and conns; wg counts the goroutines serving L4
	// connections. draining is set when Shutdown begins, closing when its ctx ends first.
	mu       sync.Mutex
	draining bool
	closing  bool
	lns      map[net.Listener]struct{}
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	// drainClosed counts connections still open when a drain was cut short.
	drainClosed atomic.Uint64
	// dr is the per-cluster state DestinationRules need across snapshots (lbpolicy.go).
	dr drState
	// vsRequests holds *route.Request values for matching requests against VirtualServices
	// without allocating (vsroute.go).
	vsRequests sync.Pool
}

// New makes a proxy serving snap until Update gives it another.
func New(cfg Config, snap *registry.Snapshot) *Proxy {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.SniffTimeout <= 0 {
		cfg.SniffTimeout = 200 * time.Millisecond
	}
	if cfg.TCPIdleTimeout == 0 {
		cfg.TCPIdleTimeout = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	p := &Proxy{
		cfg:      cfg,
		log:      cfg.Logger,
		health:   cfg.Health,
		locality: balance.ParseLocality(cfg.Locality),
		pool:     &httpfwd.Pool{MaxIdlePerKey: cfg.MaxIdleUpstreamConns},
		lns:      map[net.Listener]struct{}{},
		conns:    map[net.Conn]struct{}{},
		origDst:  origdst.OriginalDst,
	}
	if cfg.MaxConnections == 0 {
		p.cfg.MaxConnections = defaultMaxConnections()
	}
	if p.cfg.MaxConnections > 0 {
		p.connLimit = &connLimit{p: p, max: int64(p.cfg.MaxConnections)}
	}
	if p.health == nil {
		p.health = balance.NewHealth(balance.HealthConfig{})
	}
	p.sec.init(cfg, p.log)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.pipeCtx, p.cancelPipe = context.WithCancel(p.ctx)
	lim := cfg.HTTP
	lim.ConnectTimeout = cfg.ConnectTimeout
	lim.MaxAttempts = cfg.MaxAttempts
	// Both Servers take the process's Via token, so a request that leaves by one listener and
	// comes back by the other is a loop too.
	p.forward = &httpfwd.Server{Router: &httpRouter{p: p}, Pool: p.pool, Limits: lim, Logger: p.log, OnConnect: p.handleConnect,
		Telemetry: cfg.Telemetry}
	p.capture = &httpfwd.Server{Router: &httpRouter{p: p, captured: true}, Pool: p.pool, Limits: lim, Logger: p.log,
		Telemetry: cfg.Telemetry}
	p.Update(snap)
	return p
}

// Snapshot returns the snapshot in use.
func (p *Proxy) Snapshot() *registry.Snapshot { return p.table.Load().snap }

// ServeForward serves HTTP forward-proxy clients (absolute-form requests, CONNECT tunnels and
// origin-form requests routed by Host) on ln until Shutdown.
func (p *Proxy) ServeForward(ln net.Listener) error {
	p.sec.addListener(ln.Addr())
	err := p.forward.Serve(p.limit(ln))
	if errors.Is(err, httpfwd.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeCapture serves connections that iptables redirected to ln, finding each one's original
// destination with SO_ORIGINAL_DST, until Shutdown.
func (p *Proxy) ServeCapture(ln net.Listener) error {
	p.sec.addListener(ln.Addr())
	if !p.trackListener(ln) {
		ln.Close()
		return nil
	}
	defer p.untrackListener(ln)
	ln = p.limit(ln)
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.isDraining() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.log.Warn("capture accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !p.begin(c) {
			c.Close()
			return nil
		}
		gopool.Go(func() {
			defer p.end(c)
			p.serveCaptured(c)
		})
	}
}

func (p *Proxy) closeConnsLocked() {
	for c := range p.conns {
		c.Close()
	}
}

func (p *Proxy) isDraining() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.draining
}

// trackListener registers a capture listener for the drain to close, and its accept loop in wg;
// it reports false once the drain began.
func (p *Proxy) trackListener(ln net.Listener) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.draining {
		return false
	}
	p.lns[ln] = struct{}{}
	p.wg.Add(1)
	return true
}

func (p *Proxy) untrackListener(ln net.Listener) {
	p.mu.Lock()
	delete(p.lns, ln)
	p.mu.Unlock()
	p.wg.Done()
}

// begin registers a connection whose serving goroutine Shutdown must wait for; it reports false
// once the drain was cut short. Every true begin is paired with one end.
//
// No Add races Shutdown's Wait: a captured connection begins in a capture accept loop, which
// itself counts in wg while it runs, and a CONNECT tunnel inside a forward-proxy connection,
// which Shutdown waits for before it waits for wg.
func (p *Proxy) begin(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	return true
}

// hold registers a further connection (an upstream) of a begun one, so Shutdown closes it too if
// the drain is cut short; it closes c and reports false once that happened.
func (p *Proxy) hold(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// holdUpstream holds up as hold does and counts it open against addr; the caller defers the
// returned func, which closes and forgets up and then counts it closed. It reports false, with
// up closed, when the proxy is shutting down.
func (p *Proxy) holdUpstream(up net.Conn, addr string) (func(), bool) {
	if !p.hold(up) {
		return nil, false
	}
	ep := p.counts.connOpened(addr)
	return func() {
		up.Close()
		p.release(up)
		ep.connClosed()
	}, true
}

// release forgets a held connection.
func (p *Proxy) release(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// end closes and forgets the connection begin registered and lets Shutdown's wait go on.
func (p *Proxy) end(c net.Conn) {
	c.Close()
	p.release(c)
	p.wg.Done()
}
