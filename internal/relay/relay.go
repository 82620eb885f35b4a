// Package relay moves bytes both ways between two connections (CONNECT tunnels, captured TCP and
// TLS, upgraded HTTP) with half-close, an idle timeout, and no buffer or splice pipe held by a
// tunnel while it is idle.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/gopool"
)

// ErrIdleTimeout is returned by Pipe when it closed both connections because no byte moved either
// way for Options.IdleTimeout.
var ErrIdleTimeout = errors.New("relay: idle timeout")

// Options tunes one relay.
type Options struct {
	// IdleTimeout closes both connections once no byte moved in either direction for this long;
	// zero or less means never (Envoy's tcp_proxy idle_timeout of 0 disables it too).
	IdleTimeout time.Duration
	// Greeting, when set, is written to a before any byte relayed from b: a CONNECT's 200. When
	// b's first bytes are already there once the relay starts, they go in the same write, so a
	// server-first exchange costs the client one wakeup and the relay one write fewer. The caller
	// must not change it until Pipe returns.
	Greeting []byte
}

// ErrGreeting marks the error of a Pipe whose Greeting could not be written: the client left
// before the tunnel was established.
var ErrGreeting = errors.New("relay: writing the greeting")

// Pipe copies a to b and b to a until both directions end, then closes both connections. A clean
// end of stream on one side is passed on as a half-close of the other, so protocols that shut down
// writing still get their answer; an error on either direction tears down both. Pipe returns the
// bytes moved from a to b (up) and from b to a (down), and ErrIdleTimeout, ctx's error, or the first
// read or write error that ended the relay (nil when both sides ended cleanly).
//
// Connections that expose their socket (a *net.TCPConn, also behind a wrapper with Unwrap such as
// sniff.PrefixConn) are waited on without holding anything; each burst then takes a pooled buffer
// for a read and a write, and a bulk stream between TCP sockets is spliced (relay_linux.go).
func Pipe(ctx context.Context, a, b net.Conn, opt Options) (up, down int64, err error) {
	r := &relay{a: a, b: b, start: time.Now(), greeting: opt.Greeting}
	if opt.IdleTimeout > 0 {
		r.idle = opt.IdleTimeout
		r.timer = time.AfterFunc(r.idle, r.checkIdle)
		defer r.timer.Stop()
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { r.abort(ctx.Err()) })
		defer stop()
	}
	r.wg.Add(1)
	gopool.Go(r.runUp)
	down, downErr := r.direction(a, b, r.greeting)
	r.wg.Wait()
	a.Close()
	b.Close()
	if cause := r.cause.Load(); cause != nil {
		return r.up, down, *cause
	}
	return r.up, down, errors.Join(r.upErr, downErr)
}

// relay is the state the two directions and the idle timer share.
type relay struct {
	a, b  net.Conn
	start time.Time
	// last is when a byte last moved, as nanoseconds since start (monotonic).
	last  atomic.Int64
	idle  time.Duration
	timer *time.Timer
	// cause is why the relay closed the connections itself (idle timeout, context), if it did.
	cause atomic.Pointer[error]
	// ended counts the directions that ended with a clean end of stream.
	ended atomic.Int32
	// greeting is Options.Greeting, for the direction from b to a.
	greeting []byte
	// up and upErr are the result of the direction from a to b, which runs on its own goroutine
	// (runUp) and is done once wg is.
	up    int64
	upErr error
	wg    sync.WaitGroup
}

// runUp relays a to b, on a goroutine of its own.
func (r *relay) runUp() {
	defer r.wg.Done()
	r.up, r.upErr = r.direction(r.b, r.a, nil)
}

// touch records that bytes moved now.
func (r *relay) touch() {
	if r.timer != nil {
		r.last.Store(int64(time.Since(r.start)))
	}
}

// checkIdle runs when the idle timer fires: it closes the relay if nothing moved for the whole
// timeout, and otherwise sleeps again until the timeout after the last byte.
func (r *relay) checkIdle() {
	quiet := time.Since(r.start) - time.Duration(r.last.Load())
	if quiet >= r.idle {
		r.abort(ErrIdleTimeout)
		return
	}
	r.timer.Reset(r.idle - quiet)
}

// abort closes both connections for a reason of the relay's own, remembering the first reason.
func (r *relay) abort(err error) {
	r.cause.CompareAndSwap(nil, &err)
	r.a.Close()
	r.b.Close()
}

// direction copies src to dst and ends the direction: a clean end of stream half-closes dst, an
// error closes both, so the other direction does not wait forever.
func (r *relay) direction(dst, src net.Conn, greeting []byte) (int64, error) {
	n, err := r.copy(dst, src, greeting)
	if err != nil {
		dst.Close()
		src.Close()
		return n, err
	}
	if r.ended.Add(1) == 2 {
		// The other direction ended cleanly too, so Pipe closes both connections now: the
		// close sends the FIN a shutdown would, one system call fewer per connection.
		return n, nil
	}
	halfClose(dst)
	return n, nil
}

// copy drains what src buffered before it was handed over (a sniffed prefix), then moves the rest
// by the cheapest means the two connections allow.
func (r *relay) copy(dst, src net.Conn, greeting []byte) (int64, error) {
	var written int64
	if bp, ok := src.(buffered); ok && bp.Buffered() > 0 {
		if err := greet(dst, greeting); err != nil {
			return 0, err
		}
		greeting = nil
		n, err := io.CopyN(dst, src, int64(bp.Buffered()))
		written += n
		r.touch()
		if err != nil {
			return written, err
		}
	}
	n, err := r.move(unwrap(dst, false), unwrap(src, true), greeting)
	return written + n, err
}

// greet writes a greeting (none when empty), its error marked with ErrGreeting.
func greet(dst io.Writer, greeting []byte) error {
	if len(greeting) == 0 {
		return nil
	}
	if _, err := dst.Write(greeting); err != nil {
		return fmt.Errorf("%w: %w", ErrGreeting, err)
	}
	return nil
}

// copyBlocking is the path for connections with no socket to wait on (TLS, in-memory pipes): a
// pooled buffer, held while a read blocks.
func (r *relay) copyBlocking(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var written int64
	for {
		n, err := src.Read(*bp)
		if n > 0 {
			r.touch()
			m, werr := dst.Write((*bp)[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
			r.touch()
		}
		if errors.Is(err, io.EOF) {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
}

// bufSize is the pooled buffer for connections splice cannot serve; io.Copy's size.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// buffered is a connection holding bytes already read from its socket (sniff.PrefixConn).
type buffered interface{ Buffered() int }

// unwrap returns the connection under wrappers that only replay a prefix, so the socket itself can
// be waited on and spliced. A reader keeps a wrapper that still holds bytes; a writer unwraps
// always (writes pass straight through) and must not ask Buffered, which the reading direction
// changes concurrently.
func unwrap(c net.Conn, reader bool) net.Conn {
	for {
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			return c
		}
		if bp, ok := c.(buffered); reader && ok && bp.Buffered() > 0 {
			return c
		}
		c = u.Unwrap()
	}
}

// halfClose sends FIN on c where it can, and closes it otherwise.
func halfClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	c.Close()
}
