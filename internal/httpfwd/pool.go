package httpfwd

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meshentry/meshentry/internal/rawio"
)

// Pool keeps idle keep-alive upstream connections, grouped by Upstream.Key. The zero value is
// ready to use; a Pool may be shared by several Servers.
type Pool struct {
	// MaxIdlePerKey bounds the idle connections kept per key; 0 means 1024, Envoy's default
	// max_connections per cluster. A smaller cap closed a connection after most responses once
	// more clients than that were busy at once (wrk -c256 opened a new upstream connection for
	// a third of its requests at 64), as each finished exchange found the pool full.
	MaxIdlePerKey int
	// IdleTimeout closes connections idle for longer; 0 means 90 seconds.
	IdleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*upConn // per key, most recently used last
	count  int
	closed bool
	// full counts connections closed because their key already had MaxIdlePerKey idle.
	full atomic.Uint64
	// keep is the last Retain's filter: connections handed back under a key it rejects are closed.
	keep func(key string) bool
	// retained changes with each Retain (a new value each time), for the loop engine's pools,
	// which read it per request without the lock and ask keeps once it changed.
	retained atomic.Pointer[retention]
	sweep    *time.Timer
	// sweepAt is when sweep fires, so a connection due earlier can bring it forward.
	sweepAt time.Time
	h2Once  sync.Once
	h2      *http.Transport // shared by all h2c upstreams, created on first use
	// waits holds, per key, the channel closed when a connection of the key comes back idle
	// or closes, for HTTP/2 streams waiting at their upstream's connection cap (h1Upstream).
	waits map[string]chan struct{}
}

// upConn is one upstream connection; the reader and writer belong to the request using it.
type upConn struct {
	key       string
	nc        net.Conn
	idleSince time.Time
	reused    bool // served a request before, so it may have been closed by the server meanwhile
	// lim is the cluster limits the connection counts against, nil when none; served counts
	// the responses it carried, for lim's MaxRequestsPerConn.
	lim    *ClusterLimits
	served int64

	// The socket, when nc has one, and the function peeking at it: made once per connection
	// so that checking an idle connection allocates nothing.
	raw    syscall.RawConn
	peekFn func(fd uintptr) bool
	// tls is nc when it is a TLS connection, whose socket is peeked at as above and whose
	// already-read records are checked by a read that cannot wait.
	tls       *tls.Conn
	peekBuf   [1]byte
	sio       rawio.Socket // the plain socket's reads and writes, when it is one
	peekState peekState
}

// peekState is what a look at an idle socket found.
type peekState uint8

const (
	peekQuiet   peekState = iota // nothing to read: the connection is idle and open
	peekBusy                     // bytes, EOF or an error: the connection cannot be reused
	peekUnknown                  // the descriptor cannot be peeked at (not a socket)
)

// newUpConn wraps a freshly dialled connection.
func newUpConn(key string, nc net.Conn) *upConn {
	uc := &upConn{key: key, nc: nc}
	sock := nc
	if tc, ok := nc.(*tls.Conn); ok {
		uc.tls, sock = tc, tc.NetConn()
	}
	if uc.tls == nil {
		uc.sio.Bind(nc)
		uc.raw = uc.sio.RawConn() // the socket is asked for its descriptor once
	}
	if sc, ok := sock.(syscall.Conn); ok && uc.raw == nil {
		if rc, err := sc.SyscallConn(); err == nil {
			uc.raw = rc
		}
	}
	if canPeek && uc.raw != nil {
		uc.peekFn = uc.peekFD
	} else {
		uc.raw = nil
	}
	return uc
}

// stream is what the request's reader and writer use: the raw socket, or the connection.
func (uc *upConn) stream() io.ReadWriter {
	if uc.sio.Raw() {
		return &uc.sio
	}
	return uc.nc
}

// peekWait bounds the check of an idle connection that has no socket to peek at: a read with
// this deadline returns at once when bytes or EOF are there, and otherwise costs this long.
const peekWait = 200 * time.Microsecond

// quiet reports whether an idle connection can carry a request: nothing arrived on it since
// its last response was read, and it is not closed. Bytes an upstream sends unasked (a second
// response, a body after a HEAD or 204, a 408 before it closes) would otherwise be read as
// the answer to the next request, which may be another client's.
func (uc *upConn) quiet() bool {
	if uc.raw != nil {
		for retried := false; ; retried = true {
			err := uc.raw.Read(uc.peekFn)
			if err == nil {
				break
			}
			if retried || !isTimeout(err) {
				return false
			}
			// The read deadline of the last request ran out while the connection was idle.
			if uc.nc.SetReadDeadline(time.Time{}) != nil {
				return false
			}
		}
		if uc.peekState != peekUnknown {
			return uc.peekState == peekQuiet && uc.tlsQuiet()
		}
		// Not a socket after all: check it as any connection.
	}
	if uc.nc.SetReadDeadline(time.Now().Add(peekWait)) != nil {
		return false
	}
	n, err := uc.nc.Read(uc.peekBuf[:])
	return n == 0 && isTimeout(err)
}

// usable reports whether a pooled connection can carry the next request: its socket, and the
// records a TLS layer already read, hold nothing. The socket is asked every time, however briefly
// the connection was idle: bytes an upstream sends unasked right after an answer (a body longer
// than its Content-Length, a second response) arrive within microseconds, and a reuse that
// skipped the peek read them as the next request's answer, which may be another client's. The
// peek is one non-blocking system call per reuse.
func (uc *upConn) usable() bool { return uc.quiet() }

// tlsQuiet reports whether a TLS connection whose socket is quiet holds no record it already read
// from the socket: a read whose deadline has passed returns such data, and otherwise fails at once
// (crypto/tls keeps no error from a timeout, so the connection stays usable).
func (uc *upConn) tlsQuiet() bool {
	if uc.tls == nil {
		return true
	}
	if uc.nc.SetReadDeadline(pastDeadline) != nil {
		return false
	}
	n, err := uc.nc.Read(uc.peekBuf[:])
	if n != 0 || !isTimeout(err) || uc.nc.SetReadDeadline(time.Time{}) != nil {
		return false
	}
	return true
}

// pastDeadline is a read deadline that has always passed.
var pastDeadline = time.Unix(1, 0)

func (p *Pool) maxIdle() int {
	if p.MaxIdlePerKey > 0 {
		return p.MaxIdlePerKey
	}
	return defaultMaxIdlePerKey
}

// defaultMaxIdlePerKey is Pool.MaxIdlePerKey's default.
const defaultMaxIdlePerKey = 1024

func (p *Pool) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return 90 * time.Second
}

// get returns the most recently used idle connection for key that is still quiet, or nil. The
// others are closed. The check reads the socket, so it runs outside the lock.
func (p *Pool) get(key string, now time.Time) *upConn {
	timeout := p.idleTimeout()
	for {
		p.mu.Lock()
		list := p.idle[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[key] = list[:len(list)-1]
		p.count--
		p.mu.Unlock()
		if idle := now.Sub(uc.idleSince); idle < uc.idleTimeout(timeout) && uc.usable() {
			uc.reused = true
			return uc
		}
		uc.nc.Close()
	}
}

// put offers a connection whose last response was read completely; it is closed when the pool
// is full or closed.
func (p *Pool) put(uc *upConn, now time.Time) {
	if uc.sio.Holding() {
		// A request never sent: a path that skipped the response read; the next request
		// must not follow it out.
		uc.nc.Close()
		return
	}
	if uc.lim != nil && uc.lim.Settings.MaxRequestsPerConn > 0 && uc.served >= uc.lim.Settings.MaxRequestsPerConn {
		uc.nc.Close() // frees the slot and wakes a waiter
		return
	}
	p.mu.Lock()
	list := p.idle[uc.key]
	if full := len(list) >= p.maxIdle(); p.closed || full || p.retiredLocked(uc.key) {
		if full && !p.closed {
			p.full.Add(1)
		}
		p.mu.Unlock()
		uc.nc.Close()
		return
	}
	if p.idle == nil {
		p.idle = make(map[string][]*upConn)
	}
	uc.idleSince = now
	p.idle[uc.key] = append(list, uc)
	p.count++
	due := now.Add(uc.idleTimeout(p.idleTimeout()))
	switch {
	case p.sweep == nil:
		p.sweep = time.AfterFunc(due.Sub(now), p.expire)
		p.sweepAt = due
	case due.Before(p.sweepAt):
		// A cluster with a shorter idleTimeout: sweep for it in time.
		p.sweep.Reset(due.Sub(now))
		p.sweepAt = due
	}
	p.wakeLocked(uc.key)
	p.mu.Unlock()
	if uc.lim != nil {
		uc.lim.notify() // a request waiting for a connection of the cluster may take this one
	}
}

// idleTimeout is the connection's idle timeout: its cluster's, else def.
func (uc *upConn) idleTimeout(def time.Duration) time.Duration {
	if uc.lim != nil && uc.lim.Settings.IdleTimeout > 0 {
		return uc.lim.Settings.IdleTimeout
	}
	return def
}

// expire closes connections idle for too long, so a key no longer used does not hold sockets.
func (p *Pool) expire() {
	timeout := p.idleTimeout()
	now := time.Now()
	next := timeout / 2
	var stale []*upConn
	p.mu.Lock()
	for key, list := range p.idle {
		keep := list[:0]
		for _, uc := range list {
			t := uc.idleTimeout(timeout)
			if left := t - now.Sub(uc.idleSince); left <= 0 {
				stale = append(stale, uc)
			} else {
				keep = append(keep, uc)
				next = min(next, max(left, time.Millisecond))
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, key)
		} else {
			p.idle[key] = keep
		}
	}
	p.count -= len(stale)
	if p.count > 0 && !p.closed {
		p.sweep.Reset(next)
		p.sweepAt = now.Add(next)
	} else {
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, uc := range stale {
		uc.nc.Close()
	}
}

// IdleFull returns how many reusable connections were closed because their key already had
// MaxIdlePerKey idle ones: a count that grows under steady load says the cap is too small.
func (p *Pool) IdleFull() uint64 { return p.full.Load() }

// Idle returns the number of idle connections held.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// CloseIdle closes every idle connection; the pool stays usable.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.count = 0
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, list := range idle {
		for _, uc := range list {
			uc.nc.Close()
		}
	}
	p.mu.Lock()
	h2 := p.h2
	p.mu.Unlock()
	if h2 != nil {
		h2.CloseIdleConnections()
	}
}

// Close closes every idle connection and refuses to keep any more.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CloseIdle()
	return nil
}
