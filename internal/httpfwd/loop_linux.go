package httpfwd

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/sniff"
)

// The loop engine serves HTTP/1.1 keep-alive requests on evloop's threads, for the subset it
// can serve exactly as the Go engine does: a complete HTTP/1.1 head the engine's parser
// accepts, without a body, an upgrade or Expect: 100-continue, that the caller's LoopRoute
// says routes to a plaintext HTTP/1.1 upstream at an IP address with no route actions but
// retries (Actions.LoopServes). It shares the engine's parsers, head writers, answers (Reject,
// fail), telemetry and access records: a loopConn holds a conn whose writers append to byte
// slices the loop then writes without blocking. Every other request hands the connection to the Go engine, where it stays,
// with the bytes the loop read of it replayed first (sniff.PrefixConn).

type loopCounters struct {
	requests, handoffs, headTimeouts, idleTimeouts, streamTimeouts       atomic.Uint64
	connectTimeouts, connectFailures, staleRetries, interim, badResponse atomic.Uint64
	poolReused, poolFull, poolIdleClosed, poolIdleTimeout, mismatches    atomic.Uint64
	drainClosed, parks, poolRetired                                      atomic.Uint64
}

// LoopServer serves the requests of evloop Conns with a Server's Router, limits and reports.
type LoopServer struct {
	s       *Server
	lr      LoopRoute
	handoff func(net.Conn)
	pools   []loopPool // by evloop loop index: a loop's idle upstream Conns are its own
	stats   loopCounters
}

// NewLoopServer is the loop engine of s, for the Conns of a Group of loops loops; handoff
// serves a connection the loop hands to the Go engine (s.ServeConn under the caller's bounds).
func (s *Server) NewLoopServer(lr LoopRoute, loops int, handoff func(net.Conn)) *LoopServer {
	s.init()
	ls := &LoopServer{s: s, lr: lr, handoff: handoff, pools: make([]loopPool, loops)}
	for i := range ls.pools {
		ls.pools[i].idle = make(map[string][]*loopUp)
	}
	return ls
}

// Handler returns the Handler of one client connection that the loop of index loop
// (evloop.Accepted.Loop) accepted, for an evloop Target.Serve; it must be called on that
// loop's thread. Each loop reuses its own, so that one is never taken by a loop while another
// still returns from the call that freed it.
func (ls *LoopServer) Handler(loop int) evloop.Handler {
	p := &ls.pools[loop]
	if n := len(p.free); n > 0 {
		lc := p.free[n-1]
		p.free = p.free[:n-1]
		return lc
	}
	lc := &loopConn{ls: ls}
	lc.c = ls.newLoopWork(lc)
	return lc
}

// Stats reads the counters.
func (ls *LoopServer) Stats() LoopStats {
	c := &ls.stats
	return LoopStats{
		Requests: c.requests.Load(), Handoffs: c.handoffs.Load(), HeadTimeouts: c.headTimeouts.Load(),
		IdleTimeouts: c.idleTimeouts.Load(), StreamTimeouts: c.streamTimeouts.Load(),
		ConnectTimeouts: c.connectTimeouts.Load(), ConnectFailures: c.connectFailures.Load(),
		StaleRetries: c.staleRetries.Load(), Interim: c.interim.Load(), BadResponses: c.badResponse.Load(),
		PoolReused: c.poolReused.Load(), PoolFull: c.poolFull.Load(), PoolIdleClosed: c.poolIdleClosed.Load(),
		PoolIdleTimeout: c.poolIdleTimeout.Load(), Mismatches: c.mismatches.Load(), DrainClosed: c.drainClosed.Load(),
		Parks: c.parks.Load(), PoolRetired: c.poolRetired.Load(),
	}
}

// bump adds one to a counter only its loop writes... several loops share ls, so Add.
func bump(c *atomic.Uint64) { c.Add(1) }

// outBuf is where a conn's bufio.Writer flushes: the bytes wait there for a non-blocking write.
type outBuf struct {
	b   []byte
	off int // b[off:] is not written yet
}

func (o *outBuf) Write(p []byte) (int, error) {
	o.b = append(o.b, p...)
	return len(p), nil
}

func (o *outBuf) pending() bool { return o.off < len(o.b) }

func (o *outBuf) reset() { o.b, o.off = o.b[:0], 0 }

// loopState is where a client connection is in its request.
type loopState uint8

const (
	stHead    loopState = iota // waiting for a request head
	stConnect                  // an upstream connect is in flight
	stAwait                    // the request is going or gone upstream; the response head is due
	stBody                     // relaying the response body
	stFlush                    // the answer is all in out, being written
	stDone                     // closed or handed off
)

// loopConn is one client connection on the loop and the request it serves.
type loopConn struct {
	ls *LoopServer
	cl *evloop.Conn
	c  *conn // the engine's state: heads, records, writers
	st loopState
	// kept: a request was served, so the wait is a keep-alive one; partial: bytes of the
	// next head arrived, so HeaderReadTimeout runs.
	kept, partial bool
	// again: an answer went out whole and the next head is to be read (drive). unread: bytes
	// of a next request may be there (the last read took more than the head, or an edge came
	// during the exchange), so that the next head is read at once rather than at the next
	// edge: a client that sends one request at a time costs no read that finds nothing.
	again, unread bool
	// in, used: headBuf[:in] are bytes the client sent that no answer went out for yet, of
	// which the head being served is headBuf[:used].
	in, used      int
	out, upOut    outBuf
	remote, local net.Addr

	start   time.Time
	up      Upstream
	addr    netip.AddrPort
	u       *loopUp
	attempt int
	act     *Actions // the route's, all Actions.LoopServes: its retries; nil for most
	retried bool     // sent again on a fresh connection once already
	frame   respFraming
	left    int64 // body bytes still due, for a Content-Length body
	extra   bool  // the upstream sent bytes beyond the response
	keep    bool  // the client connection carries another request after this one
	// logged: the answer is a relayed response, whose log and report wait for its flush
	// (next); an answer of the engine's own (reject, fail) logged itself.
	logged bool
	body   []byte      // scratch for the response body
	chunks *loopChunks // the decoder of a chunked body, made at the first
}

// Ready handles an edge of the client's socket.
func (lc *loopConn) Ready(cl *evloop.Conn, ev evloop.Events) {
	if lc.cl == nil {
		lc.begin(cl)
	}
	lc.unpark()
	if ev&(evloop.Readable|evloop.Hangup) != 0 {
		lc.unread = true
	}
	switch lc.st {
	case stHead:
		lc.readHead()
	case stBody, stFlush:
		if ev&(evloop.Writable|evloop.Hangup) != 0 {
			lc.flushClient()
		}
	}
	// While an upstream is awaited, the client's bytes (a pipelined request, its close) wait
	// in its socket, as the engine reads none until the response is relayed.
	lc.drive()
}

// drive reads the next request heads that answers made due (next sets again): in a loop, not
// by recursion, so that a client pipelining many requests the loop answers at once (refusals)
// costs no stack. Then a client left waiting for its next request parks.
func (lc *loopConn) drive() {
	for lc.again {
		lc.again = false
		lc.readHead()
	}
	lc.park() // every event of lc, its client's or its upstream's, ends here
}

// begin takes a new client connection.
func (lc *loopConn) begin(cl *evloop.Conn) {
	lc.cl = cl
	lc.remote, lc.local = net.TCPAddrFromAddrPort(cl.Remote), net.TCPAddrFromAddrPort(cl.Local)
	lc.st, lc.kept, lc.partial, lc.unread = stHead, false, true, false
	lc.in, lc.used = 0, 0
	cl.SetDeadline(lc.ls.s.lim.HeaderReadTimeout)
}

// Expired handles the client's deadline: the head wait's, or the exchange's stream idle one.
func (lc *loopConn) Expired(cl *evloop.Conn) {
	lc.unpark()
	switch {
	case lc.st == stHead:
		lc.headExpired()
	case lc.st == stAwait:
		bump(&lc.ls.stats.streamTimeouts)
		lc.upstreamFailed(errStall)
	case lc.st == stFlush && !lc.logged:
		lc.close() // an answer of the engine's own that the client does not take: logged already
	case lc.st == stBody || lc.st == stFlush:
		bump(&lc.ls.stats.streamTimeouts)
		lc.stalled()
	}
	lc.drive()
}

// errStall is a read or write that made no progress for the stream idle timeout: the error
// the engine's own deadlines give.
var errStall = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

// Drain handles the Group's drain: an idle keep-alive client is closed as the engine closes
// its idle ones, a fresh one goes to the engine, which gives it the drain's grace, a request
// in flight finishes with Connection: close.
func (lc *loopConn) Drain(cl *evloop.Conn, now bool) {
	if lc.cl == nil {
		lc.begin(cl)
	}
	lc.unpark()
	switch {
	case now:
		lc.abort()
	case lc.st != stHead:
	case lc.kept && !lc.partial:
		bump(&lc.ls.stats.drainClosed)
		lc.close()
	default:
		lc.handOff()
	}
	lc.drive()
}

// shutting reports a drain of the Server or of the loops: the answer closes the connection.
func (lc *loopConn) shutting() bool { return lc.ls.s.shutting.Load() || lc.cl.Draining() }

// handOff gives the client to the Go engine for good, which reads the bytes the loop read
// and did not answer (held) before the socket's.
func (lc *loopConn) handOff() {
	bump(&lc.ls.stats.handoffs)
	cl, pre := lc.cl, lc.held()
	lc.release()
	if pre == nil {
		cl.Handoff(lc.ls.handoff)
		return
	}
	serve := lc.ls.handoff
	cl.Handoff(func(nc net.Conn) { serve(sniff.NewPrefixConn(nc, pre)) })
}

// close closes the client connection, and an upstream connection still in use.
func (lc *loopConn) close() {
	cl := lc.cl
	lc.release()
	cl.Close()
}

// abort ends the connection at once, upstream and client.
func (lc *loopConn) abort() {
	if u := lc.u; u != nil {
		lc.u = nil
		u.close()
	}
	lc.close()
}

// release clears lc once its client is closed or handed off and returns it to the free list.
func (lc *loopConn) release() {
	if u := lc.u; u != nil {
		lc.u = nil
		u.close()
	}
	lc.ls.lr.Released()
	loop := lc.cl.LoopIndex()
	c := lc.c
	c.work.reset()
	c.req.RemoteAddr, c.req.LocalAddr = nil, nil
	lc.cl, lc.remote, lc.local = nil, nil, nil
	lc.st, lc.again, lc.in, lc.used = stDone, false, 0, 0
	lc.up = Upstream{}
	lc.out.reset()
	lc.upOut.reset()
	c.bw.Reset(&lc.out)
	c.ubw.Reset(&lc.upOut)
	if p := &lc.ls.pools[loop]; len(p.free) < maxFreeLoopConns {
		p.free = append(p.free, lc)
	}
}

// maxFreeLoopConns bounds the free client states a loop keeps: a burst's worth, not a flood's.
const maxFreeLoopConns = 256

// readHead reads the next request head and serves it when the loop can. The bytes read are
// the client's: those behind the head (a pipelined request) wait in headBuf for the next
// readHead, and a connection the loop does not serve goes to the engine with every byte read
// replayed first (handOff), so a head costs one read, not a peek and a read.
func (lc *loopConn) readHead() {
	c, lim := lc.c, &lc.ls.s.lim
	if cap(c.headBuf) < readSize {
		c.headBuf = make([]byte, 0, readSize)
	}
	buf := c.headBuf[:cap(c.headBuf)]
	n := lc.in
	end := headEnd(nil, buf[:n])
	for end < 0 && n <= lim.MaxHeaderBytes && !blankLead(buf[:n]) {
		if n == len(buf) {
			// The head fills the buffer: room for the rest, up to the bound.
			grown := make([]byte, min(2*len(buf), lim.MaxHeaderBytes+1))
			copy(grown, buf[:n])
			buf, c.headBuf = grown, grown[:0]
		}
		m, e := lc.cl.Read(buf[n:])
		switch {
		case e == unix.EAGAIN:
			lc.waitHead(n)
			return // wait for the edge, under the deadline set
		case e != 0 || (m == 0 && n == 0):
			lc.close() // a reset, or the client's end between requests
			return
		case m == 0:
			lc.in = n
			lc.handOff() // the end within a head: the engine answers it its way
			return
		}
		drained := m < len(buf)-n // a short read took all the socket held
		n += m
		if end = headEnd(nil, buf[:n]); end < 0 && drained && n <= lim.MaxHeaderBytes && !blankLead(buf[:n]) {
			lc.waitHead(n)
			return
		}
	}
	lc.in = n
	if end < 0 || end > lim.MaxHeaderBytes || blankLead(buf[:n]) || !lc.servable(buf[:end]) {
		// An empty line before the head (the engine skips those its way), a head over the
		// bound (431) or one the loop does not serve.
		lc.handOff()
		return
	}
	lc.used = end
	lc.unread = n > end // a pipelined request behind this one
	lc.serve()
}

// blankLead reports whether b begins with an empty line's byte, which the engine skips.
func blankLead(b []byte) bool { return len(b) > 0 && (b[0] == '\r' || b[0] == '\n') }

// waitHead keeps the n bytes of a head begun, under HeaderReadTimeout from its first byte.
func (lc *loopConn) waitHead(n int) {
	lc.in, lc.unread = n, false
	if n > 0 && !lc.partial {
		lc.partial = true
		lc.cl.SetDeadline(lc.ls.s.lim.HeaderReadTimeout)
	}
}

// consumed drops the head just served from headBuf, keeping the bytes read behind it: once
// its answer is out, as its fields point into the buffer until then.
func (lc *loopConn) consumed() {
	if lc.used == 0 {
		return
	}
	b := lc.c.headBuf[:cap(lc.c.headBuf)]
	lc.in = copy(b, b[lc.used:lc.in])
	lc.used = 0
}

// held is a copy of the client's bytes read and not served, for the engine to read first.
func (lc *loopConn) held() []byte {
	if lc.in == lc.used {
		return nil
	}
	return append([]byte(nil), lc.c.headBuf[lc.used:lc.in]...)
}

// servable parses raw, a complete head, and reports whether the loop serves it.
func (lc *loopConn) servable(raw []byte) bool {
	req := &lc.c.req
	if err := req.parse(raw); err != nil {
		return false // the engine answers it (400, 431, 501, 505) or speaks h2c
	}
	return req.ProtoMinor == 1 && req.Method != "CONNECT" && !req.HasBody() && !req.WantsUpgrade() &&
		!req.has(flagUpgrade) && !req.has(flagExpectContinue) && !req.looped(lc.ls.s.via) && lc.ls.lr.Serves(req)
}

// headExpired ends a wait for a head: 408 for a head begun, as the engine answers it, a close
// for a keep-alive client that sent nothing.
func (lc *loopConn) headExpired() {
	c := lc.c
	if lc.in > 0 || lc.arrived() {
		bump(&lc.ls.stats.headTimeouts)
		c.req.Method, c.req.ProtoMinor = "", 1
		c.rec.RequestID = newRequestID(&c.reqID)
		c.writeError(408, "timed out reading the request head", true)
		lc.writeOut()
	} else if lc.kept {
		bump(&lc.ls.stats.idleTimeouts)
		lc.ls.s.stats.idle.Add(1)
	}
	lc.close()
}

// arrived reports whether the socket holds bytes an edge not yet handled announces.
func (lc *loopConn) arrived() bool {
	var b [1]byte
	n, e := lc.cl.Peek(b[:])
	return e == 0 && n > 0
}

// writeOut writes what out holds, once, best effort: for an answer before a close.
func (lc *loopConn) writeOut() {
	if lc.out.pending() {
		lc.cl.Write(lc.out.b[lc.out.off:])
	}
}

// errLoopMismatch is a route Serves took that the loop could not reach.
var errLoopMismatch = errors.New("the route changed under the event loop")
