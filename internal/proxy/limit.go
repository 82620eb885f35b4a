package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connLimit caps the downstream connections open at once across the proxy's listeners, as Envoy's
// overload manager does with global_downstream_max_connections: beyond the cap a connection is
// accepted and closed at once, so the kernel's backlog does not fill with clients left waiting.
type connLimit struct {
	p    *Proxy
	max  int64
	open atomic.Int64
	// lastNote is when the refusals were last logged and idle upstreams released (UnixNano).
	lastNote atomic.Int64
	// sinceNote counts refusals since then, for the next log line.
	sinceNote atomic.Uint64
}

// noteEvery rate-limits the log line and idle release done when connections are refused.
const noteEvery = time.Second

// limitedListener applies a connLimit to one listener.
type limitedListener struct {
	net.Listener
	lim *connLimit
}

// limit wraps ln with the proxy's connection cap; with no cap it returns ln.
func (p *Proxy) limit(ln net.Listener) net.Listener {
	if p.connLimit == nil {
		return ln
	}
	return &limitedListener{Listener: ln, lim: p.connLimit}
}

// Accept returns the next connection that fits under the cap, closing those that do not.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c, ok := l.lim.admit(c); ok {
			return c, nil
		}
	}
}

// admit wraps c to hold a place under the cap, or closes it, counted, when none is left.
func (lim *connLimit) admit(c net.Conn) (net.Conn, bool) {
	if lim.open.Add(1) <= lim.max {
		return &limitedConn{Conn: c, lim: lim}, true
	}
	lim.open.Add(-1)
	// Counted before the close, so a client that sees the close also sees the count.
	lim.refused(c)
	c.Close()
	return nil, false
}

// refused counts one connection closed at the cap and, at most once per noteEvery, logs the
// refusals and closes idle pooled upstream connections, whose descriptors the next clients need
// more than a warm pool does.
func (lim *connLimit) refused(c net.Conn) {
	if lim.count() {
		lim.note(c.RemoteAddr().String())
	}
}

// take takes a place under the cap, or counts a refusal and reports whether the note is due;
// for a connection that is no net.Conn yet (the event loop's), which notes on another goroutine.
func (lim *connLimit) take() (ok, noteDue bool) {
	if lim.open.Add(1) <= lim.max {
		return true, false
	}
	lim.open.Add(-1)
	return false, lim.count()
}

// count counts one refusal; true once per noteEvery, when the note is due.
func (lim *connLimit) count() bool {
	lim.p.stats.refusedAtCap.Add(1)
	lim.sinceNote.Add(1)
	now := time.Now().UnixNano()
	last := lim.lastNote.Load()
	return now-last >= int64(noteEvery) && lim.lastNote.CompareAndSwap(last, now)
}

// note logs the refusals since the last note and releases the idle pooled upstreams.
func (lim *connLimit) note(lastRemote string) {
	n := lim.sinceNote.Swap(0)
	lim.p.log.Warn("refused connections at the connection cap", "max_connections", lim.max, "refused", n,
		"last_remote", lastRemote)
	lim.p.pool.CloseIdle()
}

// limitedConn gives its place under the cap back when closed, once however often Close is called.
type limitedConn struct {
	net.Conn
	lim  *connLimit
	once sync.Once
}

// Close closes the connection and frees its place under the cap.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.lim.open.Add(-1) })
	return err
}

// SyscallConn exposes the accepted socket, so the HTTP engine can read what a client already
// sent without waiting (httpfwd's body top-up) and relays can wait for it without a buffer.
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("proxy: connection has no socket")
}

// CloseWrite half-closes the connection, so tunnels still pass a client's end of stream on.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("proxy: connection cannot close its write side")
}

// ReadFrom hands the copy to the accepted connection, so that a *net.TCPConn underneath still
// splices (httpfwd's upgrade copies go through io.Copy).
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(c.Conn, r)
}

// WriteTo copies the accepted connection to w, letting w splice from the socket when it can.
func (c *limitedConn) WriteTo(w io.Writer) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(c.Conn)
	}
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}

// Unwrap returns the accepted connection, for its socket (splice, SO_ORIGINAL_DST).
func (c *limitedConn) Unwrap() net.Conn { return c.Conn }

// tcpConn finds the *net.TCPConn under wrappers that only add behaviour (the cap, a prefix).
func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			return v, true
		case interface{ Unwrap() net.Conn }:
			c = v.Unwrap()
		default:
			return nil, false
		}
	}
}

// reservedFDs are descriptors the connection cap leaves for everything but proxied connections.
const reservedFDs = 128

// fallbackMaxConnections is the cap when the descriptor limit is unknown or unlimited.
const fallbackMaxConnections = 16384

// descriptorsPerConn is what one proxied downstream connection may cost: itself, its upstream, and
// a pooled idle upstream.
const descriptorsPerConn = 3

// capFromFDs is the connection cap for a descriptor limit of nofile.
func capFromFDs(nofile uint64) int {
	if nofile <= 2*reservedFDs {
		return max(1, int(nofile/2/descriptorsPerConn))
	}
	return int(min((nofile-reservedFDs)/descriptorsPerConn, 1<<30))
}
