package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/route"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// Defaults for the zero fields of Config.
const (
	// DefaultMaxConnections caps the connections open at once on one server port.
	DefaultMaxConnections = 1024
	// DefaultHandshakeTimeout bounds reading a ClientHello and a TLS handshake, as Envoy's
	// listener_filters_timeout (15 s) bounds its TLS inspector.
	DefaultHandshakeTimeout = 15 * time.Second
)

// maxHello bounds the bytes read to find a ClientHello's SNI.
const maxHello = 16 << 10

// Config is how the gateway serves; zero fields take the defaults noted.
type Config struct {
	// Bind is the address server ports are bound on ("127.0.0.1" in tests); empty binds every
	// address, as an Envoy gateway listens on 0.0.0.0.
	Bind string
	// Ports maps a server port to the port bound for it, as Istio binds a gateway server to the
	// targetPort of the gateway Service's port of that number (80 → 8080); 0 binds an ephemeral
	// port (tests). A server port not in the map is bound as itself.
	Ports map[uint32]uint16
	// Namespace and Labels are the gateway workload's: Labels pick the Gateways by selector,
	// Namespace is where exportTo is checked.
	Namespace string
	Labels    map[string]string
	// Proxy reaches the destinations routes choose; it must serve the same snapshots.
	Proxy *proxy.Proxy
	// Identity terminates ISTIO_MUTUAL servers; nil refuses them at start.
	Identity *identity.Source
	// Credentials serve the credentialName folders of SIMPLE and MUTUAL servers.
	Credentials *Credentials
	// HTTP bounds the HTTP side as for the sidecar's listeners.
	HTTP httpfwd.Limits
	// Telemetry receives a record of each HTTP request; nil reports none.
	Telemetry telemetry.Sink
	// MaxConnections caps the connections open at once per server port
	// (DefaultMaxConnections); beyond it a connection is closed when accepted, and counted.
	// Negative means no cap.
	MaxConnections int
	// HandshakeTimeout bounds reading a ClientHello and a TLS handshake; DefaultHandshakeTimeout
	// when zero.
	HandshakeTimeout time.Duration
	// Logger receives refusals (at debug level: a port scan must not flood it) and reloads.
	Logger *slog.Logger
	// EventLoop serves the ports on an evloop Group (raw epoll, outside Go's netpoller)
	// instead of package net: the connections of a TCP server whose route the loop can relay
	// as the proxy would (Proxy.GatewayLoopTarget) stay on it, every other one is handed to
	// the same code as without it. Off Linux Listen fails.
	EventLoop bool
}

// Gateway serves the servers of the Gateways selected by its labels.
type Gateway struct {
	cfg  Config
	log  *slog.Logger
	http *httpfwd.Server
	// state is what the current snapshot says: servers per port, their TLS, the route table.
	state atomic.Pointer[state]
	mu    sync.Mutex // serialises rebuilding state
	// pick spreads requests over weighted destinations.
	pick atomic.Uint32

	ctx    context.Context
	cancel context.CancelFunc
	lnMu   sync.Mutex
	lns    map[uint32]net.Listener
	conns  sync.WaitGroup
	open   sync.Map // port -> *atomic.Int64
	stats  Stats
	loop   *eventLoop // with Config.EventLoop, once Listen bound the ports
}

// Stats count what the gateway refused, for metrics and tests.
type Stats struct {
	// Overflow counts connections closed at accept because a port's cap was reached.
	Overflow atomic.Uint64
	// NoServer counts connections no server of their port takes (an SNI no host covers).
	NoServer atomic.Uint64
	// NotFound counts requests and connections answered 404 or closed for want of a route.
	NotFound atomic.Uint64
	// HandshakeFailures counts TLS handshakes that failed or timed out.
	HandshakeFailures atomic.Uint64
}

// state is the gateway's view of one snapshot.
type state struct {
	snap   *registry.Snapshot
	ports  map[uint32]*Listener
	tls    map[*Server]*tls.Config
	table  *route.Table
	tlsErr map[*Server]error
}

// New selects the servers of snap's Gateways that cfg.Labels match; a server whose TLS cannot be
// set up (a credential folder missing, ISTIO_MUTUAL without identity) is an error naming it.
func New(cfg Config, snap *registry.Snapshot) (*Gateway, error) {
	if cfg.Proxy == nil {
		return nil, errors.New("gateway: a proxy is required")
	}
	if cfg.Credentials == nil {
		cfg.Credentials = NewCredentials("", cfg.Logger)
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, lns: map[uint32]net.Listener{}}
	st, err := g.build(snap)
	if err != nil {
		return nil, err
	}
	for s, err := range st.tlsErr {
		return nil, fmt.Errorf("%s: %w", s.Where(), err)
	}
	if len(st.ports) == 0 {
		return nil, fmt.Errorf("gateway: no Gateway's selector matches the labels %v", cfg.Labels)
	}
	for _, l := range st.ports {
		for _, s := range l.Servers {
			if s.Doc.Gateway().GetServers()[s.Index].GetBind() != "" {
				g.log.Warn("a Gateway server's bind is not read; it listens on --gateway-bind", "server", s.Where())
			}
		}
	}
	g.state.Store(st)
	// Its own Via token: a sidecar in the same process forwards to the gateway without it
	// counting as a loop, while a request that comes back to the gateway still does.
	g.http = &httpfwd.Server{Router: &router{g: g}, Limits: cfg.HTTP, Logger: cfg.Logger, Telemetry: cfg.Telemetry,
		ViaToken: "meshentry-gateway-" + strconv.FormatUint(uint64(time.Now().UnixNano()), 36)}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g, nil
}

// build makes the state of snap.
func (g *Gateway) build(snap *registry.Snapshot) (*state, error) {
	ls, err := Select(snap.Documents, g.cfg.Labels)
	if err != nil {
		return nil, err
	}
	st := &state{snap: snap, ports: map[uint32]*Listener{}, tls: map[*Server]*tls.Config{}, tlsErr: map[*Server]error{}}
	var names []string
	seen := map[string]bool{}
	for _, l := range ls {
		st.ports[l.Port] = l
		for _, s := range l.Servers {
			if !seen[s.Gateway] {
				seen[s.Gateway] = true
				names = append(names, s.Gateway)
			}
			if !s.Kind.terminates() {
				continue
			}
			cfg, err := serverTLS(s, g.cfg.Credentials, g.cfg.Identity)
			if err != nil {
				st.tlsErr[s] = err
				continue
			}
			st.tls[s] = cfg
		}
	}
	st.table = route.Build(snap, route.Proxy{Namespace: g.cfg.Namespace, Labels: g.cfg.Labels, Gateways: names})
	return st, nil
}

// current returns the state of the proxy's snapshot, rebuilding it after a reload. A reload
// whose Gateways no longer make sense keeps the previous servers and is logged.
func (g *Gateway) current() *state {
	snap := g.cfg.Proxy.Snapshot()
	st := g.state.Load()
	if st.snap == snap {
		return st
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if st = g.state.Load(); st.snap == snap {
		return st
	}
	next, err := g.build(snap)
	if err != nil {
		g.log.Error("gateway servers of the new config refused; the routes follow it, the servers stay", "err", err)
		next = &state{snap: snap, ports: st.ports, tls: st.tls, tlsErr: st.tlsErr,
			table: route.Build(snap, route.Proxy{Namespace: g.cfg.Namespace, Labels: g.cfg.Labels, Gateways: gatewayNames(st)})}
	}
	for s, err := range next.tlsErr {
		g.log.Error("gateway server refuses connections: its TLS cannot be set up", "server", s.Where(), "err", err)
	}
	for port := range next.ports {
		if !g.bound(port) {
			g.log.Warn("a Gateway server port appeared after start; restart the gateway to listen on it", "port", port)
		}
	}
	g.state.Store(next)
	return next
}

func gatewayNames(st *state) []string {
	var names []string
	seen := map[string]bool{}
	for _, l := range st.ports {
		for _, s := range l.Servers {
			if !seen[s.Gateway] {
				seen[s.Gateway] = true
				names = append(names, s.Gateway)
			}
		}
	}
	return names
}

func (g *Gateway) bound(port uint32) bool {
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	_, ok := g.lns[port]
	if g.loop != nil {
		_, ok = g.loop.addrs[port]
	}
	return ok
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() *Stats { return &g.stats }

// Ports lists the server ports in order, for logs and tests.
func (g *Gateway) Ports() []uint32 {
	st := g.state.Load()
	var out []uint32
	for p := range st.ports {
		out = append(out, p)
	}
	sortPorts(out)
	return out
}
