package httpfwd

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/gopool"
	"github.com/meshentry/meshentry/internal/ratelog"
	"github.com/meshentry/meshentry/internal/rawio"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// Server forwards the HTTP/1.1 requests of client connections to upstreams chosen by its
// Router, and the streams of clients that open with the HTTP/2 preface (h2c prior
// knowledge). Set the fields before the first Serve or ServeConn and leave them alone
// afterwards.
type Server struct {
	// Router picks the upstream of each request; it is required.
	Router Router
	// Pool holds upstream connections; nil gives the server a private one.
	Pool *Pool
	// Limits bounds sizes and times; zero fields take defaults.
	Limits Limits
	// Logger receives connection-level diagnostics at debug level; nil discards them.
	Logger *slog.Logger
	// AccessLog, when set, is called after each request with a record valid during the call.
	AccessLog func(*AccessRecord)
	// Telemetry, when set, receives a record of each finished request; nil reports nothing.
	Telemetry telemetry.Sink
	// OnConnect, when set, takes over a connection whose request is CONNECT: the engine
	// stops serving it and hands over the parsed head, the connection and the bytes it had
	// already read beyond the head, all valid until OnConnect returns. OnConnect owns the
	// connection and must close it; it should tunnel before returning, since ctx is
	// canceled when it returns or the server closes. Without it, CONNECT gets a 501.
	OnConnect func(ctx context.Context, head *RequestHead, client net.Conn, buffered []byte)
	// HTTP2 bounds connections that open with the HTTP/2 preface (h2c prior knowledge).
	HTTP2 HTTP2Limits
	// ViaToken names this proxy in the Via field of forwarded requests; a request whose Via
	// already names it is answered 508 Loop Detected. Empty (or not a token) gives
	// "meshentry-<random hex>", drawn once per process: the Servers of one process share it,
	// and two proxies in a chain differ.
	ViaToken string
	// IdleRelease is how long a keep-alive client connection waits for its next request as it
	// served the last one; then it parks: it gives back its per-request state, and a fresh
	// goroutine with a small stack takes over the wait, the one whose stack grew while serving
	// ending. 0 means one second; a negative value never parks.
	IdleRelease time.Duration

	initOnce    sync.Once
	lim         Limits
	pool        *Pool
	ownPool     bool
	log         *slog.Logger
	baseCtx     context.Context
	cancel      context.CancelFunc
	shutting    atomic.Bool  // draining or closed
	closed      atomic.Bool  // Close was called: ServeConn serves nothing more
	drainStart  atomic.Int64 // when the drain began, in Unix nanoseconds
	connPool    sync.Pool    // *conn
	freeWork    freeWork     // per-request states given back by parked connections
	free        freeSets     // buffer sets, taken by a connection per request
	buffered    atomic.Int64 // connections holding buffers now
	bufPool     sync.Pool    // *[]byte of bulkSize
	mu          sync.Mutex
	listeners   map[net.Listener]struct{}
	active      map[*conn]struct{}
	serveGroup  sync.WaitGroup
	closeOnce   sync.Once
	closeResult error
	stats       counters
	h2          h2State
	via         string // ViaToken, or the generated default
	errLog      ratelog.Limiter
	mirrorSlots chan struct{} // one per mirrored request in flight, Limits.MaxMirrors
}

// Sizes of the per-connection buffers; heads that fit in readSize are parsed in one pass.
const (
	readSize  = 8 << 10
	writeSize = 8 << 10
	bulkSize  = 32 << 10
)

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.lim = s.Limits.withDefaults()
		s.mirrorSlots = make(chan struct{}, s.lim.MaxMirrors)
		s.errLog.Rate, s.errLog.Burst = logRate, logBurst
		s.via = s.ViaToken
		if !validViaToken(s.via) {
			s.via = processViaToken
		}
		s.pool = s.Pool
		if s.pool == nil {
			s.pool, s.ownPool = &Pool{}, true
		}
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		if s.Router == nil {
			s.Router = RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				return Upstream{}, &Reject{Status: 500, Reason: "no router configured"}
			})
		}
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
		s.listeners = make(map[net.Listener]struct{})
		s.active = make(map[*conn]struct{})
	})
}

// Serve accepts connections from ln and serves each on its own goroutine until ln fails or
// the server is shut down, when it returns ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	// The loop counts in serveGroup, so the Add of a connection it accepts just as a drain
	// closes ln never meets a Wait at zero.
	s.serveGroup.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		s.serveGroup.Done()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Running out of descriptors and the like pass; wait a little and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.serveGroup.Add(1)
		gopool.Go(func() { s.serveConn(s.baseCtx, nc, true) })
	}
}

// ServeConn serves the requests of one client connection until it closes, fails, asks to close,
// or ctx is done (which closes it). It closes nc when it returns, unless OnConnect took it over.
// While the server drains, a connection handed over is served as a draining one (its first
// request within the grace, then Connection: close); after Close it is closed at once.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.serveConn(ctx, nc, false)
}

// serveConn serves nc as ServeConn does. A detached connection is one Serve accepted: nobody
// waits for the goroutine that began it, so a connection that parks (idle.go) lets that goroutine
// end, and its last goroutine counts it out of serveGroup.
func (s *Server) serveConn(ctx context.Context, nc net.Conn, detached bool) {
	s.init()
	c := s.getConn(nc)
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		nc.Close()
		s.putConn(c)
		if detached {
			s.serveGroup.Done()
		}
		return
	}
	c.detached = detached
	if detached {
		// Serve's connections share its context: Close aborts each one in the active set, so
		// they need no context, cancel func and AfterFunc of their own (~800 bytes, 5
		// allocations per connection). OnConnect gets a context of its own (forward.go).
		c.cancel = noCancel
		s.active[c] = struct{}{}
		s.mu.Unlock()
		c.run(ctx)
		return
	}
	ctx, c.cancel = context.WithCancel(ctx)
	s.active[c] = struct{}{}
	s.mu.Unlock()
	aborted := make(chan struct{})
	c.aborted = aborted
	c.stop = context.AfterFunc(ctx, func() {
		defer close(aborted)
		c.abort()
	})
	c.run(ctx)
}

// noCancel is the cancel func of a connection that shares its server's context.
func noCancel() {}

// run serves the connection on the calling goroutine until it ends or parks. A detached
// connection that parks goes on on a fresh goroutine, so that the one whose stack grew while
// serving ends; one a caller of ServeConn waits for waits on, its stack shrunk by the next GCs.
func (c *conn) run(ctx context.Context) {
	for {
		ok := c.serveRecovering(ctx)
		if !ok || !c.parked {
			c.finish(ok)
			return
		}
		c.parked = false
		c.park()
		if c.detached {
			go c.resume(ctx)
			return
		}
		if !c.awaitWake() {
			c.finish(true)
			return
		}
	}
}

// finish ends a connection that is served no more: it leaves the active set, is closed (unless
// OnConnect owns it) and returns to the pool, and whoever waits for it is told.
func (c *conn) finish(ok bool) {
	s, nc := c.s, c.nc
	if c.stop != nil && !c.stop() {
		<-c.aborted // c is about to be reused: let abort finish with it first
	}
	c.cancel()
	s.mu.Lock()
	delete(s.active, c)
	s.mu.Unlock()
	detached := c.detached
	c.stop, c.aborted = nil, nil
	switch {
	case !ok:
		// A panic may have left a body copy running on c: abort it and do not reuse c, nor
		// its buffers.
		c.abort()
		if c.bufs != nil {
			s.buffered.Add(-1)
		}
	case c.hijacked.Load():
		s.putConn(c)
	case c.linger:
		lingerClose(nc)
		s.putConn(c)
	default:
		nc.Close()
		s.putConn(c)
	}
	if detached {
		s.serveGroup.Done()
	}
}

// serveRecovering serves the connection, turning a panic (in a Router or hook, say) into a
// closed connection and a log line instead of a crashed process.
func (c *conn) serveRecovering(ctx context.Context) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.s.log.Error("panic serving a connection", "remote", c.nc.RemoteAddr().String(),
				"panic", r, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	c.serve(ctx)
	return true
}

// getConn takes per-connection state from the pool, so a busy server allocates it rarely.
func (s *Server) getConn(nc net.Conn) *conn {
	c, _ := s.connPool.Get().(*conn)
	if c == nil {
		c = &conn{s: s}
		c.bodyDone = make(chan error, 1)
	}
	c.nc = nc
	c.cio.Bind(nc)
	c.hijacked.Store(false)
	c.linger = false
	c.h2 = false
	c.kept = false
	c.takeWork()
	return c
}

func (s *Server) putConn(c *conn) {
	c.releaseBuffers()
	c.nc = nil
	c.cio.Forget()
	// The connection keeps its per-request state in the pool, ready for the next one.
	if c.work != nil {
		c.releaseScratch()
		c.work.reset()
	}
	s.connPool.Put(c)
}

// conn is the state of one client connection; it is reused across connections. What it needs
// only while it serves a request is in work, which a parked connection gives back (idle.go).
type conn struct {
	s   *Server
	nc  net.Conn
	cio rawio.Socket  // nc's socket, read and written raw
	br  *bufio.Reader // client reads
	bw  *bufio.Writer // client writes
	ubr *bufio.Reader // the current upstream's reads
	ubw *bufio.Writer // the current upstream's writes
	// The four buffers above are bufs's, and nil while the connection waits for a request
	// (idle.go); arrival holds the first bytes of the next one, which pending replays.
	bufs *bufSet
	*work
	bodyDone chan error             // result of a request body streamed on its own goroutine
	bodyRead atomic.Bool            // ... which has read the whole body from the client
	linger   bool                   // unread request bytes may remain: close gently
	idle     atomic.Bool            // waiting for the next request; Shutdown may close it
	fresh    atomic.Bool            // ... which is the first, so a drain gives it a grace
	current  atomic.Pointer[upConn] // the upstream connection in use, for abort
	cancel   context.CancelFunc     // ends the connection's context
	hijacked atomic.Bool            // OnConnect owns the client connection
	h2       bool                   // the client opened with the HTTP/2 preface
	rt       routeState             // the route's Actions of the request, when it has them

	// stop and aborted undo the AfterFunc that aborts the connection when its context ends.
	stop    func() bool
	aborted chan struct{}
	// detached: Serve accepted the connection and nobody waits for its goroutine (serveConn).
	detached bool
	// kept: a request was served, so the next wait is a keep-alive one.
	kept bool
	// parked: serve returned because the connection went idle for Server.IdleRelease.
	parked bool
	// idleUntil is when the keep-alive wait in progress ends.
	idleUntil time.Time
	// first is where a parked connection reads the first byte of its next request; woke says
	// resume put it in arrival, for waitForRequest to take.
	first [1]byte
	woke  bool
}

// work is the per-request state of a connection, several KiB: the parsed heads, their buffers
// and the exchange's bookkeeping. A connection holds it while it serves and while a keep-alive
// wait is young, and gives it back to the server when it parks.
type work struct {
	arrival [arrivalSize]byte
	pending arrived
	req     RequestHead
	resp    responseHead
	headBuf []byte
	respBuf []byte
	reqID   [36]byte
	num     [20]byte // scratch for formatting numbers
	up      pipe
	down    pipe
	ex      exchange // the round trip in progress
	rec     AccessRecord
	tel     telState
}

// reset clears what refers to the last connection and drops buffers grown unusually large.
func (w *work) reset() {
	w.pending = arrived{}
	w.req.RemoteAddr, w.req.LocalAddr = nil, nil
	w.rec = AccessRecord{}
	w.tel.rec = telemetry.Request{}
	w.ex = exchange{}
	// Do not keep unusually large head buffers alive.
	if cap(w.headBuf) > 2*readSize {
		w.headBuf = nil
	}
	if cap(w.respBuf) > 2*readSize {
		w.respBuf = nil
	}
	if cap(w.req.fields) > 256 {
		w.req.fields, w.req.connOpts = nil, nil
	}
	// Nor the set of a head that listed thousands of Connection options.
	if cap(w.req.opts.slots) > 1024 || cap(w.req.opts.fold) > 1024 {
		w.req.opts = optIndex{}
	}
	if cap(w.resp.opts.slots) > 1024 || cap(w.resp.opts.fold) > 1024 {
		w.resp.opts = optIndex{}
	}
	if cap(w.resp.fields) > 256 {
		w.resp.fields, w.resp.connOpts = nil, nil
	}
}

// abort ends the connection at once: its client and upstream connections are closed and its
// context is canceled, so that whatever it waits for returns.
func (c *conn) abort() {
	if !c.hijacked.Load() {
		c.nc.Close()
	}
	if uc := c.current.Load(); uc != nil {
		uc.nc.Close()
	}
	c.cancel()
}

// releaseScratch returns the bulk buffers between requests.
func (c *conn) releaseScratch() {
	c.up.release()
	c.down.release()
}

func (c *conn) serve(ctx context.Context) {
	for first := !c.kept; ; first = false {
		if !c.readRequest(first) {
			if c.h2 {
				c.serveHTTP2(ctx)
			}
			return
		}
		keep := c.serveRequest(ctx)
		c.kept = true
		c.releaseScratch()
		if !keep || c.hijacked.Load() || c.s.shutting.Load() {
			return
		}
	}
}

// readRequest reads and parses the next request head, answering malformed ones itself; it
// reports whether there is a request to serve.
func (c *conn) readRequest(first bool) bool {
	lim := &c.s.lim
	if c.br == nil || c.br.Buffered() == 0 {
		wait := lim.HeaderReadTimeout
		if !first {
			wait = lim.IdleTimeout
		}
		c.fresh.Store(first)
		c.idle.Store(true)
		if c.s.shutting.Load() {
			if !first {
				return false
			}
			// A connection the drain found new may still send its first request: it was
			// accepted before the listener closed, and its client may be writing it now.
			wait = min(wait, time.Until(c.s.firstRequestDeadline()))
		}
		err := c.waitForRequest(time.Now(), wait)
		if err == errParked {
			c.parked = true // still idle: a drain closes it as it would have
			return false
		}
		c.idle.Store(false)
		if err != nil {
			if !first && isTimeout(err) && !c.s.shutting.Load() {
				c.s.stats.idle.Add(1)
			}
			return false
		}
		if !first {
			c.nc.SetReadDeadline(time.Now().Add(lim.HeaderReadTimeout))
		}
	} else {
		c.nc.SetReadDeadline(time.Now().Add(lim.HeaderReadTimeout))
	}
	if first && sawH2Preface(c.br) {
		c.h2 = true
		return false
	}
	raw, err := readHead(c.br, c.headBuf, lim.MaxHeaderBytes)
	c.headBuf = raw
	if err == nil {
		err = c.req.parse(raw)
	}
	if err == nil {
		return true
	}
	c.req.Method, c.req.ProtoMinor = "", 1
	c.linger = true
	var pe *parseError
	switch {
	case errors.As(err, &pe):
		c.s.stats.countRefusal(pe)
		// Nothing of this request moved: the counts of the last one on the connection go.
		c.rec.RequestBytes, c.rec.ResponseBytes = 0, 0
		c.rec.RequestID, c.rec.Upstream = newRequestID(&c.reqID), ""
		c.tel.begin()
		c.tel.flags = telemetry.DownstreamProtocolError
		c.logFailure(slog.LevelDebug, "refused request head", pe.status, err)
		c.writeError(pe.status, pe.msg, true)
		c.logAccess(time.Now(), "", pe.status, err)
	case isTimeout(err) && len(raw) > 0:
		c.rec.RequestID = newRequestID(&c.reqID)
		c.writeError(408, "timed out reading the request head", true)
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// lingerClose closes a connection whose client may still be sending a request body we did not
// read. Closing at once would make the kernel reset the connection, which can destroy the
// response before the client reads it; so send FIN first and drain briefly.
func lingerClose(nc net.Conn) {
	defer nc.Close()
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	var buf [4096]byte
	for total := 0; total < 1<<20; {
		n, err := nc.Read(buf[:])
		total += n
		if err != nil {
			return
		}
	}
}
