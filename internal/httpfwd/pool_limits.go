package httpfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// ErrOverflow means a cluster's connection-pool limit refused the request (Envoy's UO): it is
// answered 503 at once and is not the upstream's fault.
var ErrOverflow = errors.New("upstream connection pool limit reached")

// PoolSettings are a DestinationRule's connectionPool for one cluster; zero fields impose
// nothing, which is Istio's default (its circuit breakers are 2^32-1, effectively unlimited).
type PoolSettings struct {
	// MaxConnections bounds the upstream connections open to the cluster (tcp.maxConnections).
	MaxConnections int64
	// MaxPending bounds the requests waiting for a connection when MaxConnections are open
	// (http.http1MaxPendingRequests); 0 with MaxConnections set refuses them at once.
	MaxPending int64
	// MaxRequests bounds the requests in flight to the cluster (http.http2MaxRequests).
	MaxRequests int64
	// MaxRequestsPerConn closes a pooled connection after this many requests
	// (http.maxRequestsPerConnection).
	MaxRequestsPerConn int64
	// IdleTimeout replaces the pool's idle timeout for the cluster's connections (http.idleTimeout).
	IdleTimeout time.Duration
	// ConnectTimeout replaces Limits.ConnectTimeout (tcp.connectTimeout).
	ConnectTimeout time.Duration
	// MaxAttempts, when set, bounds the connect attempts below Limits.MaxAttempts
	// (http.maxRetries + 1).
	MaxAttempts int
	// KeepAlive, when Enable is set, is applied to each new upstream socket (tcp.tcpKeepalive).
	KeepAlive net.KeepAliveConfig
}

// ClusterLimits are one cluster's settings and counters, shared by the Upstreams of all its
// endpoints (Upstream.Limits), so that the limits hold per cluster as Envoy's circuit breakers do.
// Settings must not change once the value is in use: make a new one for new settings.
type ClusterLimits struct {
	// Settings are the limits; they are fixed once the value is in use.
	Settings PoolSettings

	conns, pending, requests atomic.Int64
	overflows                atomic.Uint64

	mu   sync.Mutex
	wake chan struct{} // closed when a connection or slot frees; made by the first waiter
}

// Conns returns the upstream connections open to the cluster that the limits count.
func (l *ClusterLimits) Conns() int64 { return l.conns.Load() }

// Overflows counts the requests and connections a limit refused.
func (l *ClusterLimits) Overflows() uint64 { return l.overflows.Load() }

// TakeConn claims a connection slot without waiting; false means MaxConnections are open (and
// counts an overflow). Each true must be paired with ReleaseConn.
func (l *ClusterLimits) TakeConn() bool {
	if l.takeConn() {
		return true
	}
	l.overflows.Add(1)
	return false
}

func (l *ClusterLimits) takeConn() bool {
	max := l.Settings.MaxConnections
	for {
		n := l.conns.Load()
		if max > 0 && n >= max {
			return false
		}
		if l.conns.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// ReleaseConn frees a slot TakeConn claimed and wakes a waiting request.
func (l *ClusterLimits) ReleaseConn() {
	l.conns.Add(-1)
	l.notify()
}

// beginRequest claims an in-flight request slot; false means MaxRequests are in flight.
func (l *ClusterLimits) beginRequest() bool {
	if n := l.requests.Add(1); l.Settings.MaxRequests > 0 && n > l.Settings.MaxRequests {
		l.requests.Add(-1)
		l.overflows.Add(1)
		return false
	}
	return true
}

// endRequest frees a slot beginRequest claimed; nil holds none.
func (l *ClusterLimits) endRequest() {
	if l != nil {
		l.requests.Add(-1)
	}
}

// admit claims the stream's in-flight request slot in up's cluster, once per stream, into
// *held; false means http2MaxRequests refused it, and the stream was answered 503 UO.
func (st *h2Stream) admit(up *Upstream, held **ClusterLimits) bool {
	if up.Limits == nil || *held != nil {
		return true
	}
	if !up.Limits.beginRequest() {
		err := fmt.Errorf("%w: %d requests in flight to the cluster", ErrOverflow, up.Limits.Settings.MaxRequests)
		st.hc.s.Router.Done(*up, err)
		st.tel.flags |= telemetry.UpstreamOverflow
		st.fail(503, "upstream connection pool limit reached", err)
		return false
	}
	*held = up.Limits
	return true
}

func (l *ClusterLimits) waitChan() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	return l.wake
}

// notify wakes every waiter; they recheck the pool and the count.
func (l *ClusterLimits) notify() {
	l.mu.Lock()
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
	l.mu.Unlock()
}

// connectTimeout is the cluster's connect timeout, def when it sets none.
func (l *ClusterLimits) connectTimeout(def time.Duration) time.Duration {
	if l != nil && l.Settings.ConnectTimeout > 0 {
		return l.Settings.ConnectTimeout
	}
	return def
}

// maxAttempts is the cluster's attempt bound, def when it sets none or a larger one.
func (l *ClusterLimits) maxAttempts(def int) int {
	if l != nil && l.Settings.MaxAttempts > 0 && l.Settings.MaxAttempts < def {
		return l.Settings.MaxAttempts
	}
	return def
}

// limitedConn releases its cluster's connection slot once, when closed.
type limitedConn struct {
	net.Conn
	lim  *ClusterLimits
	done atomic.Bool
}

// Close closes the connection and frees its slot.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.done.CompareAndSwap(false, true) {
		c.lim.ReleaseConn()
	}
	return err
}

// NetConn returns the wrapped connection, as tls.Conn's does.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }

// Unwrap returns the wrapped connection, for callers that look for the socket underneath.
func (c *limitedConn) Unwrap() net.Conn { return c.Conn }

// CloseWrite half-closes the connection, so a pipe passes the client's end of stream on.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("httpfwd: upstream connection cannot close its write side")
}

// SyscallConn exposes the socket, so a relay can wait for it to be readable without a buffer.
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("httpfwd: upstream connection has no socket")
}

// ReadFrom and WriteTo let copies reach the wrapped connection's own, which may splice.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

// WriteTo copies the wrapped connection to w.
func (c *limitedConn) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}

// LimitConn wraps a connection whose slot TakeConn claimed so that closing it frees the slot.
func LimitConn(nc net.Conn, l *ClusterLimits) net.Conn {
	return &limitedConn{Conn: nc, lim: l}
}

// SetKeepAlive applies the cluster's tcpKeepalive to nc's TCP socket (under any wrapping that
// has NetConn), when the cluster sets one.
func (l *ClusterLimits) SetKeepAlive(nc net.Conn) error {
	if l == nil || !l.Settings.KeepAlive.Enable {
		return nil
	}
	for {
		switch c := nc.(type) {
		case *net.TCPConn:
			if err := c.SetKeepAliveConfig(l.Settings.KeepAlive); err != nil {
				return fmt.Errorf("set TCP keepalive: %w", err)
			}
			return nil
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		case interface{ Unwrap() net.Conn }:
			nc = c.Unwrap()
		default:
			return nil
		}
	}
}

// connect returns a connection for up: an idle pooled one, or a new one within the cluster's
// MaxConnections, waiting as a pending request when they are all open (up to MaxPending, and for
// at most StreamIdleTimeout, as HTTP/2 streams wait for MaxUpstreamConns).
func (c *conn) connect(ctx context.Context, up *Upstream, now time.Time) (*upConn, error) {
	s := c.s
	if uc := s.pool.get(up.Key, now); uc != nil {
		return uc, nil
	}
	lim := up.Limits
	if lim == nil || lim.takeConn() {
		return c.dial(ctx, up)
	}
	if n := lim.pending.Add(1); n > lim.Settings.MaxPending {
		lim.pending.Add(-1)
		lim.overflows.Add(1)
		return nil, fmt.Errorf("%w: %d connections open to the cluster and %d requests pending", ErrOverflow, lim.Settings.MaxConnections, lim.Settings.MaxPending)
	}
	defer lim.pending.Add(-1)
	timer := time.NewTimer(s.lim.StreamIdleTimeout)
	defer timer.Stop()
	for {
		wake := lim.waitChan()
		if uc := s.pool.get(up.Key, time.Now()); uc != nil {
			return uc, nil
		}
		if lim.takeConn() {
			return c.dial(ctx, up)
		}
		if s.pool.closeIdleOf(lim) {
			// An idle connection to another endpoint of the cluster held the slot.
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrConnect, ctx.Err())
		case <-timer.C:
			lim.overflows.Add(1)
			return nil, fmt.Errorf("%w: no connection free within %v", ErrOverflow, s.lim.StreamIdleTimeout)
		}
	}
}

// closeIdleOf closes one idle connection counted by lim and reports whether it found one.
func (p *Pool) closeIdleOf(lim *ClusterLimits) bool {
	p.mu.Lock()
	var found *upConn
	for key, list := range p.idle {
		for i, uc := range list {
			if uc.lim == lim {
				found = uc
				p.idle[key] = append(list[:i:i], list[i+1:]...)
				p.count--
				break
			}
		}
		if found != nil {
			break
		}
	}
	p.mu.Unlock()
	if found == nil {
		return false
	}
	found.nc.Close()
	return true
}
