package httpfwd

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshentry/meshentry/internal/sniff"
)

// Clients that know the proxy speaks HTTP/2 (grpc-go, curl --http2-prior-knowledge) open
// with the connection preface instead of an HTTP/1.1 request. The engine spots the preface
// in the bytes it already buffered for the first request head and hands the connection to
// golang.org/x/net/http2's server, which does the framing, flow control and HPACK; each
// stream is then routed by its :authority as an HTTP/1.1 request is by its Host, and gets
// what an HTTP/1.1 request gets: our Via and a 508 for a loop, the cap on header fields,
// the trailer filter both ways, and error answers that name only the reason and request id.

// HTTP2Limits bounds what one HTTP/2 client connection may cost. Zero fields take the
// defaults shown.
type HTTP2Limits struct {
	// MaxConcurrentStreams bounds the streams a client may have open at once on one
	// connection (100). Envoy's own default is 2^31-1, but its edge-proxy guidance, like
	// most deployments, sets 100; the excess is refused by the protocol (SETTINGS), and a
	// client ignoring it gets its streams reset.
	MaxConcurrentStreams uint32
	// IdleTimeout closes a connection that had no open stream for this long, with a GOAWAY
	// (1h, Envoy's connection idle_timeout).
	IdleTimeout time.Duration
}

func (l HTTP2Limits) withDefaults() HTTP2Limits {
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = 100
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = time.Hour
	}
	return l
}

// HTTP2Stats counts what the HTTP/2 side of a Server did since it started.
type HTTP2Stats struct {
	// Conns counts connections served as HTTP/2 with prior knowledge.
	Conns uint64
	// Streams counts requests (streams) handed to the router or refused before it.
	Streams uint64
	// BadRequests counts streams refused before routing for their head (a 400 for an invalid
	// or zoned authority, a 431 for too many fields, which Stats also counts).
	BadRequests uint64
	// ProtocolErrors counts frames or streams the HTTP/2 server found malformed.
	ProtocolErrors uint64
	// RefusedStreams counts streams reset for exceeding MaxConcurrentStreams.
	RefusedStreams uint64
	// UpstreamOverflows counts streams that found every connection Limits.MaxUpstreamConns
	// allows their HTTP/1.1 upstream open and busy, and so waited for one (Envoy's
	// upstream_cx_overflow); those whose wait outlasted StreamIdleTimeout got 503.
	UpstreamOverflows uint64
}

// h2Counters are the atomic counters behind HTTP2Stats.
type h2Counters struct {
	conns, streams, badRequests, protocolErrors, refusedStreams, upstreamOverflows atomic.Uint64
}

// h2State is a Server's HTTP/2 machinery, made on the first HTTP/2 connection.
type h2State struct {
	once  sync.Once
	base  *http.Server  // carries MaxHeaderBytes and the graceful-shutdown hook
	srv   *http2.Server // shared by every HTTP/2 client connection
	h1    *h1Upstream
	up    upstreamConns // h1's connections per pool host
	lim   HTTP2Limits
	open  atomic.Int64 // HTTP/2 client connections being served
	count h2Counters
}

// HTTP2Stats returns the counters of the HTTP/2 client side.
func (s *Server) HTTP2Stats() HTTP2Stats {
	c := &s.h2.count
	return HTTP2Stats{
		Conns:          c.conns.Load(),
		Streams:        c.streams.Load(),
		BadRequests:    c.badRequests.Load(),
		ProtocolErrors: c.protocolErrors.Load(),
		RefusedStreams: c.refusedStreams.Load(),

		UpstreamOverflows: c.upstreamOverflows.Load(),
	}
}

// initHTTP2 builds the HTTP/2 server and the HTTP/1.1 transport its streams use.
func (s *Server) initHTTP2() *h2State {
	h := &s.h2
	h.once.Do(func() {
		h.lim = s.HTTP2.withDefaults()
		h.base = &http.Server{
			MaxHeaderBytes: s.lim.MaxHeaderBytes,
			ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		h.srv = &http2.Server{
			MaxConcurrentStreams: h.lim.MaxConcurrentStreams,
			IdleTimeout:          h.lim.IdleTimeout,
			// A client that stops reading stalls the connection's writes: bound it as the
			// HTTP/1.1 path bounds a stalled write.
			WriteByteTimeout: s.lim.StreamIdleTimeout,
			CountError:       h.countError,
		}
		// ConfigureServer links the two so that base.Shutdown sends every connection a
		// GOAWAY; the TLS settings it also makes are never used.
		if err := http2.ConfigureServer(h.base, h.srv); err != nil {
			s.log.Error("configuring the HTTP/2 server", "err", err)
		}
		h.h1 = newH1Transport(s, &h.up)
	})
	return h
}

func (h *h2State) countError(kind string) {
	h.count.protocolErrors.Add(1)
	// kind reads "stream_PROTOCOL_over_max_streams" and the like.
	if strings.Contains(kind, "_over_max_streams") {
		h.count.refusedStreams.Add(1)
	}
}

// newH1Transport returns the transport HTTP/2 streams use towards HTTP/1.1 upstreams. The
// engine's own HTTP/1.1 path reads and writes the client connection's bytes in place, which an
// HTTP/2 stream does not have: the stream's http.Request is written as it is, both bodies
// stream concurrently, and the connection comes from and goes back to the engine's Pool (see
// h1Upstream).
//
// One client connection carries up to MaxConcurrentStreams streams, and each stream to an
// HTTP/1.1 upstream needs a connection of its own: without a cap, a few clients would hold
// descriptors by the thousand. MaxUpstreamConns is Envoy's max_connections circuit breaker per
// upstream; a stream beyond it waits until a connection is free, and the stream's idle timer
// bounds that wait.
func newH1Transport(s *Server, up *upstreamConns) *h1Upstream {
	return &h1Upstream{s: s, up: up, max: s.lim.MaxUpstreamConns}
}

// upstreamConns counts the HTTP/1.1 transport's connections per pool host, dials in progress
// included, as net/http counts them against MaxConnsPerHost: a stream can then tell whether it
// found its upstream at the cap (see capWait).
type upstreamConns struct {
	mu   sync.Mutex
	open map[string]int // by Upstream.Key
	// busy counts the streams in a round trip per upstream: each holds one HTTP/1.1
	// connection, so one that finds the cap's worth already busy must wait. Counted here,
	// not from open, which a dial the transport has queued but not started does not yet show.
	busy map[string]int
}

// begin counts a stream into its round trip to addr and returns how many are in one now.
func (u *upstreamConns) begin(addr string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.busy == nil {
		u.busy = make(map[string]int)
	}
	u.busy[addr]++
	return u.busy[addr]
}

// end counts a stream out of its round trip to addr.
func (u *upstreamConns) end(addr string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.busy[addr]--; u.busy[addr] <= 0 {
		delete(u.busy, addr)
	}
}

// dial dials as dialH2C does and counts the connection until it is closed.
func (u *upstreamConns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	u.add(addr, 1)
	nc, err := dialH2C(ctx, network, addr)
	if err != nil {
		u.add(addr, -1)
		return nil, err
	}
	return &countedConn{Conn: nc, closed: func() { u.add(addr, -1) }}, nil
}

func (u *upstreamConns) add(addr string, n int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.open == nil {
		u.open = make(map[string]int)
	}
	if u.open[addr] += n; u.open[addr] <= 0 {
		delete(u.open, addr) // the map holds only upstreams with connections
	}

}

// countedConn is an upstream connection that reports its first Close.
type countedConn struct {
	net.Conn
	once   sync.Once
	closed func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.closed)
	return c.Conn.Close()
}

// capWait follows one stream's wait for an upstream connection through an httptrace.
type capWait struct {
	atCap   atomic.Bool // every connection the cap allows was open when the stream asked
	got     atomic.Bool // the transport handed the stream a connection
	wasIdle atomic.Bool // ... one that sat idle in the pool, so the stream did not wait
}

// trace returns the hooks that fill w, for a stream that is the busy-th in a round trip to an
// upstream capped at max connections.
func (w *capWait) trace(busy, max int) *httptrace.ClientTrace {
	w.atCap.Store(busy > max)
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			w.got.Store(true)
			w.wasIdle.Store(info.WasIdle)
		},
	}
}

// overflowed reports whether the stream found its upstream at the cap and had to wait: it got
// no connection at all, or one that was not sitting idle (handed over by a stream that ended,
// or dialed once another closed).
func (w *capWait) overflowed() bool {
	return w.atCap.Load() && (!w.got.Load() || !w.wasIdle.Load())
}

// goAwayHTTP2 asks every HTTP/2 client connection to finish its streams and close. It may be
// called repeatedly: a connection sends one GOAWAY however often it is asked, and one that
// began after the previous call is reached by the next.
func (s *Server) goAwayHTTP2() {
	h := &s.h2
	if h.open.Load() == 0 {
		return
	}
	h.base.Shutdown(context.Background()) // only runs the hook: base serves no listener
}

// closeHTTP2 stops HTTP/2 state from being made; the idle upstream connections of HTTP/2
// streams are the Pool's, closed with it.
func (s *Server) closeHTTP2() {
	h := &s.h2
	h.once.Do(func() {}) // after Close, no HTTP/2 state is made any more
}

// h2Preface is what an HTTP/2 client sends first (RFC 9113 §3.4).
const h2Preface = http2.ClientPreface

// sawH2Preface reports whether the connection opens with the HTTP/2 preface. It looks at
// the bytes already buffered and reads more only while they are a proper prefix of the
// preface: no HTTP/1.1 request starts that way (its version would be HTTP/2.0), so a short
// HTTP/1.x request is never made to wait.
func sawH2Preface(br *bufio.Reader) bool {
	for {
		b, _ := br.Peek(br.Buffered())
		if len(b) >= len(h2Preface) {
			return string(b[:len(h2Preface)]) == h2Preface
		}
		if string(b) != h2Preface[:len(b)] {
			return false
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return false
		}
	}
}

// serveHTTP2 serves the connection as HTTP/2; c.br holds the preface and whatever followed.
func (c *conn) serveHTTP2(ctx context.Context) {
	s := c.s
	h := s.initHTTP2()
	if s.shutting.Load() {
		return
	}
	h.open.Add(1)
	defer h.open.Add(-1)
	h.count.conns.Add(1)
	buffered, _ := c.br.Peek(c.br.Buffered())
	// c and its buffers are reused once this returns, while the HTTP/2 server's reader may
	// still be winding down: give it a copy.
	nc := sniff.NewPrefixConn(c.nc, append([]byte(nil), buffered...))
	c.nc.SetDeadline(time.Time{}) // the HTTP/2 server keeps its own timers
	hc := &h2Conn{s: s, h: h, local: c.nc.LocalAddr(), remote: c.nc.RemoteAddr()}
	hc.idle = make(chan struct{})
	h.srv.ServeConn(nc, &http2.ServeConnOpts{
		Context:    ctx,
		BaseConfig: h.base,
		Handler:    hc,
	})
	// ServeConn returns once the connection is closed, but stream handlers may still be
	// unwinding (their contexts are canceled by then): wait for them, so that Shutdown and
	// Close return only after every request finished.
	hc.wait()
}

// h2Conn is the http.Handler of one HTTP/2 client connection.
type h2Conn struct {
	s             *Server
	h             *h2State
	local, remote net.Addr

	mu      sync.Mutex
	running int
	done    bool
	idle    chan struct{} // closed when done and no handler runs
}

// enter registers a handler; it fails once the connection has ended.
func (hc *h2Conn) enter() bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.done {
		return false
	}
	hc.running++
	return true
}

func (hc *h2Conn) leave() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.running--
	if hc.done && hc.running == 0 {
		close(hc.idle)
	}
}

// wait marks the connection ended and waits for its handlers to return.
func (hc *h2Conn) wait() {
	hc.mu.Lock()
	hc.done = true
	n := hc.running
	hc.mu.Unlock()
	if n == 0 {
		return
	}
	<-hc.idle
}

// ServeHTTP serves one stream.
func (hc *h2Conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !hc.enter() {
		return
	}
	defer hc.leave()
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				// A Router or hook bug: log it as the HTTP/1.1 path does, then reset
				// just this stream.
				hc.s.log.Error("panic serving an HTTP/2 stream", "remote", hc.remote.String(),
					"panic", p, "stack", string(debug.Stack()))
			}
			panic(http.ErrAbortHandler)
		}
	}()
	hc.h.count.streams.Add(1)
	st := &h2Stream{hc: hc, w: w, r: r, start: time.Now()}
	st.serve()
}
