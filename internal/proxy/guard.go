package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/ratelog"
)

// DialFunc opens a connection, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// errLoop marks a dial refused because its target is one of the proxy's own listeners: following
// it would make the proxy connect to itself until every descriptor is used.
var errLoop = fmt.Errorf("the destination is one of the proxy's own listening addresses: %w", httpfwd.ErrLoop)

// errNotAddress marks a TCP dial whose target is not an IP and port: every name is resolved before
// the guarded dial, so a name reaching it is a bug that must not bypass the checks.
var errNotAddress = errors.New("refusing to dial a target that is not an IP address and port")

// SecurityStats counts what the proxy refused to protect itself and the registry's boundary.
type SecurityStats struct {
	// Refused counts requests and connections no visible ServiceEntry declares (REGISTRY_ONLY),
	// including IP literals a client put where a declared name belongs.
	Refused uint64
	// Loops counts dials refused because they would reach the proxy's own listeners.
	Loops uint64
	// InvalidHosts counts requests and tunnels whose host is neither a name nor an IP address
	// (zone IDs, stray bytes).
	InvalidHosts uint64
	// LogsSuppressed counts refusal log lines dropped by the rate limit.
	LogsSuppressed uint64
}

// guard is the one gate every upstream dial passes: it knows the proxy's own addresses, counts
// refusals and rate-limits their log lines.
type guard struct {
	dial DialFunc
	log  *slog.Logger
	// mu serializes writers of self; readers load it without locking.
	mu   sync.Mutex
	self atomic.Pointer[selfSet]

	refused, loops, invalid atomic.Uint64
	limit                   *ratelog.Limiter
}

func (g *guard) init(cfg Config, log *slog.Logger) {
	g.dial = cfg.Dial
	if g.dial == nil {
		// No TCP keep-alive unless a cluster's tcpKeepalive asks (ClusterLimits.SetKeepAlive),
		// as Envoy: Go's default costs four setsockopt calls per upstream connection.
		d := net.Dialer{KeepAlive: -1}
		g.dial = d.DialContext
	}
	g.log = log
	rate, burst := cfg.RefusalLogRate, float64(cfg.RefusalLogBurst)
	if rate <= 0 {
		rate = 10
	}
	if burst <= 0 {
		burst = 20
	}
	g.limit = &ratelog.Limiter{Rate: rate, Burst: burst}
	g.self.Store(&selfSet{exact: map[netip.AddrPort]struct{}{}, ports: map[uint16]struct{}{}, wild: map[uint16]struct{}{}})
	for _, ap := range cfg.SelfAddrs {
		g.add(ap)
	}
}

// addListener records a listener's address as the proxy's own.
func (g *guard) addListener(a net.Addr) {
	if ta, ok := a.(*net.TCPAddr); ok {
		g.add(ta.AddrPort())
	}
}

// add records ap as one of the proxy's own addresses. An unspecified address (0.0.0.0 or ::)
// stands for every local address with that port, as the kernel delivers them all to it.
func (g *guard) add(ap netip.AddrPort) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.self.Load()
	next := old.clone()
	addr := ap.Addr().Unmap().WithZone("")
	next.ports[ap.Port()] = struct{}{}
	if addr.IsUnspecified() {
		next.wild[ap.Port()] = struct{}{}
		if next.local == nil {
			next.local = localAddrs()
		}
	} else {
		next.exact[netip.AddrPortFrom(addr, ap.Port())] = struct{}{}
	}
	g.self.Store(next)
}

// isSelf reports whether a connection to ap would reach one of the proxy's own listeners.
func (g *guard) isSelf(ap netip.AddrPort) bool {
	s := g.self.Load()
	port := ap.Port()
	if _, ok := s.ports[port]; !ok {
		return false
	}
	addr := ap.Addr().Unmap().WithZone("")
	if addr.IsUnspecified() {
		// Connecting to 0.0.0.0 or :: reaches the local host, whichever address listens.
		return true
	}
	if _, ok := s.exact[netip.AddrPortFrom(addr, port)]; ok {
		return true
	}
	if _, ok := s.wild[port]; ok {
		if addr.IsLoopback() {
			return true
		}
		// An address the host gained after the list was read is caught once connected
		// (reachedSelf).
		_, ok := s.local[addr]
		return ok
	}
	return false
}

// upstreamAddr is up.Addr parsed: an IP endpoint's as its route parsed it once, any other's
// (a DNS answer's, an original destination's) parsed now. A unix endpoint's (no Addr) is an
// error, so never one of the proxy's own.
func upstreamAddr(up *httpfwd.Upstream) (netip.AddrPort, error) {
	if e, ok := up.Tag.(*endpoint); ok && e.addr.IsValid() && up.Addr == e.up.Addr {
		return e.addr, nil
	}
	return netip.ParseAddrPort(up.Addr)
}

// dialGuarded is the proxy's only way to open an upstream connection: network "tcp" takes an IP
// and port, never a name, and never one of the proxy's own addresses.
func (p *Proxy) dialGuarded(ctx context.Context, network, addr string) (net.Conn, error) {
	g := &p.sec
	if network == "unix" {
		// Only unix:// endpoints a ServiceEntry declares get here.
		return g.dial(ctx, network, addr)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Addr().Zone() != "" {
		return nil, fmt.Errorf("dial %q: %w", addr, errNotAddress)
	}
	if g.isSelf(ap) {
		// Counted and logged by the caller that answers the client (logFailure).
		return nil, fmt.Errorf("dial %s: %w", addr, errLoop)
	}
	c, err := g.dial(ctx, "tcp", addr)
	if err == nil && g.reachedSelf(c) {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, errLoop)
	}
	return c, err
}

// reachedSelf reports whether c, just connected, ended at one of the proxy's wildcard listeners
// through a local address the address list does not know (or, in a network namespace, cannot
// see): the kernel sends traffic to a local address from that same address, so a connection
// whose two ends share an IP, on a port a wildcard listener holds, is the proxy talking to itself.
func (g *guard) reachedSelf(c net.Conn) bool {
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	return ok1 && ok2 && g.reachedSelfAddrs(remote.AddrPort(), local.AddrPort())
}

// reachedSelfAddrs is reachedSelf for a connection from local to remote.
func (g *guard) reachedSelfAddrs(remote, local netip.AddrPort) bool {
	if _, wild := g.self.Load().wild[remote.Port()]; !wild {
		return false
	}
	return remote.Addr().Unmap() == local.Addr().Unmap()
}

// hasWildcard reports whether one of the proxy's listeners is on an unspecified address, the
// only case in which a connection can reach the proxy through an address it does not know.
func (g *guard) hasWildcard() bool { return len(g.self.Load().wild) > 0 }

// refusalLog logs one refusal at info level unless refusals are arriving faster than the rate
// limit allows. What it drops is summed up in a "suppressed N refusals" line: before the next line
// it lets through, or a second after the first drop if none comes, so a flood that stops is
// still accounted for.
func (g *guard) refusalLog(msg string, args ...any) {
	ok, suppressed := g.limit.Allow(time.Now())
	if !ok {
		if g.limit.StartFlush() {
			time.AfterFunc(time.Second, g.flushSuppressed)
		}
		return
	}
	g.logSuppressed(suppressed)
	g.log.Info(msg, args...)
}

// flushSuppressed logs the refusals dropped since the last line, if any.
func (g *guard) flushSuppressed() { g.logSuppressed(g.limit.TakePending()) }

func (g *guard) logSuppressed(n uint64) {
	if n > 0 {
		g.log.Info(fmt.Sprintf("suppressed %d refusals", n), "count", n)
	}
}

// SecurityStats returns the counts of refusals since the proxy started.
func (p *Proxy) SecurityStats() SecurityStats {
	g := &p.sec
	return SecurityStats{
		Refused:        g.refused.Load(),
		Loops:          g.loops.Load(),
		InvalidHosts:   g.invalid.Load(),
		LogsSuppressed: g.limit.Dropped(),
	}
}

// AddSelfAddr records another of the proxy's own addresses (an admin or debug listener opened
// after New) that the proxy must never dial.
func (p *Proxy) AddSelfAddr(ap netip.AddrPort) { p.sec.add(ap) }

// selfSet is an immutable set of the proxy's listening addresses.
type selfSet struct {
	exact map[netip.AddrPort]struct{}
	// ports holds every port the proxy listens on, for a quick miss; wild the ports of listeners on
	// an unspecified address, which any local address in local reaches.
	ports, wild map[uint16]struct{}
	local       map[netip.Addr]struct{}
}

func (s *selfSet) clone() *selfSet {
	n := &selfSet{exact: map[netip.AddrPort]struct{}{}, ports: map[uint16]struct{}{}, wild: map[uint16]struct{}{}, local: s.local}
	for k := range s.exact {
		n.exact[k] = struct{}{}
	}
	for k := range s.ports {
		n.ports[k] = struct{}{}
	}
	for k := range s.wild {
		n.wild[k] = struct{}{}
	}
	return n
}

// localAddrs lists the addresses of the host's interfaces, which a wildcard listener answers on.
func localAddrs() map[netip.Addr]struct{} {
	out := map[netip.Addr]struct{}{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				out[ip.Unmap()] = struct{}{}
			}
		}
	}
	return out
}

// netipAddrPort joins a resolved address and a port.
func netipAddrPort(a netip.Addr, port uint32) netip.AddrPort {
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

// guardedDialer returns an upstream Dial for addr through dialGuarded. Routes build one per
// endpoint address when they are made, so a request on a keep-alive path allocates nothing.
func (p *Proxy) guardedDialer(addr string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		return p.dialGuarded(ctx, "tcp", addr)
	}
}
