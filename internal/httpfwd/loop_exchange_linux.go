package httpfwd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// The exchange of one request on the loop, in the order of forwardRequest and roundTrip:
// route, connect (retrying as the Router says), send the head, read the response head,
// relay the body, pool the upstream, log and report.

// serve begins the request whose head c.req holds, read from the socket.
func (lc *loopConn) serve() {
	c := lc.c
	req := &c.req
	bump(&lc.ls.stats.requests)
	req.RemoteAddr, req.LocalAddr = lc.remote, lc.local
	lc.start = time.Now()
	c.beginRecords()
	if req.has(flagRequestID) {
		c.rec.RequestID = req.raw[req.requestID.start:req.requestID.end]
	} else {
		c.rec.RequestID = newRequestID(&c.reqID)
	}
	req.RequestID = c.rec.RequestID
	c.ex = exchange{}
	lc.cl.SetDeadline(lc.ls.s.lim.StreamIdleTimeout) // the answer's writes, whatever it is
	lc.attempt, lc.retried, lc.logged, lc.extra = 0, false, false, false
	lc.upErr, lc.err = nil, nil
	lc.route()
}

// route asks the Router for the attempt's upstream and connects to it, or answers.
func (lc *loopConn) route() {
	s, c := lc.ls.s, lc.c
	for {
		up, rej := s.Router.Route(&c.req, lc.attempt)
		if rej != nil {
			lc.answered(c.reject(lc.start, rej))
			return
		}
		if up.Key == "" {
			up.Key = up.Addr
		}
		lc.up = up
		addr, ok := lc.ls.lr.Addr(&lc.up)
		if !ok || up.Actions != nil || up.Protocol != HTTP1 || up.Limits != nil {
			bump(&lc.ls.stats.mismatches)
			s.Router.Done(lc.up, nil)
			lc.answered(c.fail(lc.start, 503, "upstream not reachable from the event loop", errLoopMismatch))
			return
		}
		lc.addr = addr
		c.rec.Upstream = up.Key
		c.tel.route(&lc.up)
		if u := lc.ls.pools[lc.cl.LoopIndex()].get(up.Key); u != nil {
			bump(&lc.ls.stats.poolReused)
			lc.send(u)
			return
		}
		err := lc.dial()
		if err == nil {
			return // the connect's edge goes on
		}
		if !lc.connectFailed(err) {
			return
		}
	}
}

// dial starts a connect to lc.addr under the connect timeout.
func (lc *loopConn) dial() error {
	u := lc.ls.newUp(lc.up.Key)
	cn, err := lc.cl.Dial(lc.addr, u)
	if err != nil {
		bump(&lc.ls.stats.connectFailures)
		return dialError(lc.addr, err)
	}
	u.cn, u.lc, u.connecting = cn, lc, true
	lc.u = u
	lc.st = stConnect
	lc.cl.SetDeadline(0) // the connect's own deadline bounds the wait now
	cn.SetDeadline(lc.ls.s.lim.ConnectTimeout)
	return nil
}

// dialError is a failed connect as the guarded dialer reports it.
func dialError(addr netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
}

// connectFailed reports a failed attempt as forwardRequest does and answers the request when
// no attempt is left; true means route again.
func (lc *loopConn) connectFailed(err error) bool {
	s, c := lc.ls.s, lc.c
	err = fmt.Errorf("%w: %s: %w", ErrConnect, lc.up.Key, err)
	s.Router.Done(lc.up, err)
	if errors.Is(err, ErrLoop) {
		s.stats.loops.Add(1)
		lc.answered(c.fail(lc.start, 508, "loop detected", err))
		return false
	}
	c.logFailure(slog.LevelDebug, "upstream connect attempt failed", 0, fmt.Errorf("attempt %d: %w", lc.attempt, err))
	if lc.attempt+1 >= s.lim.MaxAttempts {
		lc.answered(c.connectFailed(lc.start, lc.attempt, err))
		return false
	}
	lc.attempt++
	return true
}

// connected ends the connect of u: a failure is another attempt, a success sends the request.
func (lc *loopConn) connected(u *loopUp, timedOut bool) {
	var err error
	switch e := u.cn.SocketError(); {
	case timedOut:
		bump(&lc.ls.stats.connectTimeouts)
		err = dialError(lc.addr, errDeadline)
	case e != 0:
		bump(&lc.ls.stats.connectFailures)
		err = dialError(lc.addr, os.NewSyscallError("connect", e))
	default:
		if local, e := u.cn.LocalAddr(); e != 0 {
			err = dialError(lc.addr, os.NewSyscallError("getsockname", e))
		} else {
			err = lc.ls.lr.Check(u.cn.Remote, local)
		}
	}
	if err == nil {
		u.connecting = false
		u.cn.SetDeadline(0)
		lc.send(u)
		return
	}
	lc.u = nil
	u.close()
	if lc.retried {
		// The fresh connection for a stale one's request: redial's failure is final.
		lc.ls.s.Router.Done(lc.up, fmt.Errorf("%w: %s: %w", ErrConnect, lc.up.Key, err))
		lc.answered(lc.c.fail(lc.start, 503, connectReason(err), err))
		return
	}
	if lc.connectFailed(err) {
		lc.route()
	}
}

// send writes the request head to u, as roundTrip does for a request without a body.
func (lc *loopConn) send(u *loopUp) {
	s, c := lc.ls.s, lc.c
	lc.u, u.lc = u, lc
	c.ex = exchange{start: lc.start, key: lc.up.Key, staleOK: u.reused && !lc.retried, bodyDone: true, extra: lc.up.ResponseFields}
	lc.upOut.reset()
	c.writeRequestHead(&lc.up)
	c.ubw.Flush()
	c.tel.sending(s)
	c.respBuf = c.respBuf[:0]
	lc.st = stAwait
	lc.cl.SetDeadline(s.lim.StreamIdleTimeout)
	lc.writeUp()
}

// writeUp writes what the request has pending; the rest waits for the upstream's edge.
func (lc *loopConn) writeUp() {
	o := &lc.upOut
	for o.pending() {
		n, e := lc.u.cn.Write(o.b[o.off:])
		switch {
		case e == unix.EAGAIN:
			return
		case e != 0:
			lc.upstreamFailed(os.NewSyscallError("write", e))
			return
		}
		o.off += n
	}
}

// upstreamReady handles an edge of the upstream in use.
func (lc *loopConn) upstreamReady(ev evloop.Events) {
	if ev&evloop.Writable != 0 && lc.st == stAwait && lc.upOut.pending() {
		lc.writeUp()
		if lc.st != stAwait {
			return
		}
	}
	if ev&(evloop.Readable|evloop.Hangup) == 0 {
		return
	}
	switch lc.st {
	case stAwait:
		lc.readResponseHead()
	case stBody:
		lc.relay()
	}
}

// upstreamFailed ends an exchange whose upstream failed before a response, as the engine's
// upstreamFailed: a reused connection that failed at once carries an idempotent request
// again on a fresh one; otherwise 502 or 504.
func (lc *loopConn) upstreamFailed(err error) {
	c := lc.c
	if u := lc.u; u != nil {
		lc.u = nil
		u.close()
	}
	if c.ex.staleOK && !isTimeout(err) && c.req.idempotent() {
		bump(&lc.ls.stats.staleRetries)
		lc.retried = true
		if derr := lc.dial(); derr != nil {
			derr = fmt.Errorf("%w: %s: %w", ErrConnect, lc.up.Key, derr)
			lc.ls.s.Router.Done(lc.up, derr)
			lc.answered(c.fail(lc.start, 503, connectReason(derr), derr))
		}
		return
	}
	var e error
	if isTimeout(err) {
		e = fmt.Errorf("%w: %w", ErrUpstreamTimeout, err)
	} else {
		e = fmt.Errorf("%w: %w", ErrUpstreamClosed, err)
	}
	lc.badExchange(e)
}

// badExchange answers an upstream fault found before any response was relayed.
func (lc *loopConn) badExchange(e error) {
	if u := lc.u; u != nil {
		lc.u = nil
		u.close()
	}
	keep := lc.c.failUpstream(lc.start, e)
	lc.ls.s.done(lc.up, 0, e)
	lc.answered(keep)
}

// readResponseHead reads the response head into c.respBuf, relaying interim responses, and
// starts the body once a final head is there.
func (lc *loopConn) readResponseHead() {
	c, lim := lc.c, &lc.ls.s.lim
	for {
		buf := c.respBuf
		if len(buf) == cap(buf) {
			if len(buf) > lim.MaxHeaderBytes+8 {
				lc.badResponse(errHeadTooLarge)
				return
			}
			grown := make([]byte, len(buf), max(readSize, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, e := lc.u.cn.Read(buf[len(buf):cap(buf)])
		switch {
		case e == unix.EAGAIN:
			c.respBuf = buf
			return
		case e != 0:
			lc.upstreamFailed(os.NewSyscallError("read", e))
			return
		case n == 0:
			if len(buf) == 0 {
				lc.upstreamFailed(io.EOF)
			} else {
				lc.upstreamFailed(io.ErrUnexpectedEOF)
			}
			return
		}
		c.respBuf = buf[:len(buf)+n]
		lc.cl.SetDeadline(lim.StreamIdleTimeout)
		if !lc.parseResponses() {
			return
		}
	}
}

// parseResponses takes the heads c.respBuf holds: interim ones are relayed, a final one starts
// the body. It reports whether more bytes are wanted for a head.
func (lc *loopConn) parseResponses() bool {
	c, lim := lc.c, &lc.ls.s.lim
	for {
		buf := c.respBuf
		skip := 0
		for skip < len(buf) && skip < 8 && (buf[skip] == '\r' || buf[skip] == '\n') {
			skip++ // readHead skips up to 8 empty lines before a head
		}
		end := headEnd(nil, buf[skip:])
		if end < 0 {
			if len(buf)-skip > lim.MaxHeaderBytes {
				lc.badResponse(errHeadTooLarge)
				return false
			}
			return true
		}
		if end > lim.MaxHeaderBytes {
			lc.badResponse(errHeadTooLarge)
			return false
		}
		if err := c.resp.parse(buf[skip : skip+end]); err != nil {
			lc.badResponse(err)
			return false
		}
		rest := buf[skip+end:]
		switch status := c.resp.status; {
		case status == 101:
			c.tel.answered(lc.ls.s)
			lc.badResponse(errors.New("unsolicited 101 Switching Protocols"))
			return false
		case status < 200:
			bump(&lc.ls.stats.interim)
			c.writeResponseHead(true, false)
			c.bw.Flush()
			// The interim head's bytes go out now; the final head is parsed from the front.
			n := copy(buf, rest)
			c.respBuf = buf[:n]
			continue
		}
		lc.respond(rest)
		return false
	}
}

// badResponse answers a malformed response head: 502, the upstream at fault.
func (lc *loopConn) badResponse(err error) {
	bump(&lc.ls.stats.badResponse)
	if !errors.Is(err, ErrBadResponse) {
		err = fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	lc.badExchange(err)
}

// respond writes the final response head and the body bytes read with it, as relayResponse.
func (lc *loopConn) respond(rest []byte) {
	s, c := lc.ls.s, lc.c
	req, resp := &c.req, &c.resp
	c.ex.status = resp.status
	lc.u.served++
	c.tel.answered(s)
	f := responseFraming(req.Method, req.ProtoMinor, resp)
	lc.frame = f
	lc.keep = keepClient(req, f, true, lc.shutting())
	c.writeResponseHead(lc.keep, false)
	lc.st = stBody
	switch {
	case f.noBody:
		lc.left = 0
		lc.extra = len(rest) > 0
		rest = nil
	case f.chunked:
		lc.startChunked()
	case f.toEOF:
		lc.left = -1
	default:
		lc.left = resp.length
	}
	if len(rest) > 0 && !lc.take(rest) {
		return
	}
	c.bw.Flush()
	lc.relay()
}

// take moves body bytes read from the upstream to out; false when the exchange ended.
func (lc *loopConn) take(b []byte) bool {
	if lc.frame.chunked {
		return lc.takeChunked(b)
	}
	if lc.left >= 0 && int64(len(b)) > lc.left {
		lc.extra = true // bytes past the response: the connection is not reused
		b = b[:lc.left]
	}
	if lc.left > 0 {
		lc.left -= int64(len(b))
	}
	lc.c.rec.ResponseBytes += int64(len(b))
	lc.c.bw.Write(b)
	return true
}

// bodyDone reports that the whole body was read from the upstream.
func (lc *loopConn) bodyDone() bool {
	if lc.frame.chunked {
		return lc.chunksDone()
	}
	return lc.left == 0
}

// relay moves the response body from the upstream to the client until one side would block,
// out holding at most one read's bytes: the client's pace is the upstream's.
func (lc *loopConn) relay() {
	for lc.st == stBody {
		if lc.out.pending() && !lc.flushOut() {
			return
		}
		if lc.st != stBody {
			return
		}
		if lc.bodyDone() {
			lc.complete()
			return
		}
		if lc.body == nil {
			lc.body = make([]byte, bulkSize)
		}
		n, e := lc.u.cn.Read(lc.body)
		switch {
		case e == unix.EAGAIN:
			return
		case e != 0:
			lc.cut(fmt.Errorf("%w: reading the response body: %w", ErrUpstreamClosed, os.NewSyscallError("read", e)), nil)
			return
		case n == 0 && lc.left < 0 && !lc.frame.chunked:
			lc.left = 0 // the close ends a close-delimited body
			continue
		case n == 0:
			lc.cut(fmt.Errorf("%w: reading the response body: %w", ErrUpstreamClosed, io.ErrUnexpectedEOF), nil)
			return
		}
		lc.cl.SetDeadline(lc.ls.s.lim.StreamIdleTimeout)
		if !lc.take(lc.body[:n]) {
			return
		}
		lc.c.bw.Flush()
	}
}

// flushOut writes out to the client; false when it would block (the client's edge resumes)
// or failed (the exchange is over then).
func (lc *loopConn) flushOut() bool {
	o := &lc.out
	for o.pending() {
		n, e := lc.cl.Write(o.b[o.off:])
		switch {
		case e == unix.EAGAIN:
			return false
		case e != 0:
			lc.clientFailed(os.NewSyscallError("write", e))
			return false
		}
		o.off += n
		lc.cl.SetDeadline(lc.ls.s.lim.StreamIdleTimeout)
	}
	o.reset()
	return true
}

// flushClient resumes the writes a full client socket stopped.
func (lc *loopConn) flushClient() {
	switch lc.st {
	case stBody:
		lc.relay()
	case stFlush:
		if lc.flushOut() {
			lc.next()
		}
	}
}

// complete ends a response whose body was all read: the upstream goes back to the loop's pool
// before the client has the last bytes, as relayResponse pools it, then the answer flushes.
func (lc *loopConn) complete() {
	c := lc.c
	u := lc.u
	lc.u = nil
	if upstreamReusable(&c.resp, lc.frame, true, true, b2i(lc.extra)) {
		lc.ls.pools[lc.cl.LoopIndex()].put(lc.ls, u)
	} else {
		u.close()
	}
	lc.logged = true
	lc.answered(lc.keep)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cut ends a response cut short after its head went out: the client sees the body end and
// the connection close. upErr is the upstream's fault, err the client's.
func (lc *loopConn) cut(upErr, err error) {
	c := lc.c
	if u := lc.u; u != nil {
		lc.u = nil
		u.close()
	}
	if upErr == nil && err != nil && !stalled(err) {
		c.tel.flags |= telemetry.DownstreamClosed
	}
	lc.writeOut()
	c.logAccess(lc.start, c.ex.key, c.ex.status, firstErr(upErr, err))
	lc.ls.s.done(lc.up, c.ex.status, upErr)
	lc.close()
}

// clientFailed ends an exchange whose client stopped taking writes.
func (lc *loopConn) clientFailed(err error) {
	if lc.st == stFlush && !lc.logged {
		lc.close() // an answer of the engine's own, logged already
		return
	}
	lc.cut(nil, err)
}

// stalled ends an exchange that made no progress for the stream idle timeout while relaying:
// the client's writes, or the upstream's body.
func (lc *loopConn) stalled() {
	if lc.out.pending() {
		lc.cut(nil, &net.OpError{Op: "write", Net: "tcp", Err: errDeadline})
		return
	}
	lc.cut(fmt.Errorf("%w: reading the response body: %w", ErrUpstreamClosed, errStall), nil)
}

// answered flushes the answer c.bw holds, then goes on to the next request (keep) or closes.
func (lc *loopConn) answered(keep bool) {
	lc.c.bw.Flush()
	lc.keep = keep
	lc.st = stFlush
	if lc.flushOut() {
		lc.next()
	}
}

// next follows a flushed answer: the relayed response's log and report, then the keep-alive
// wait, whose head may be there already.
func (lc *loopConn) next() {
	c, s := lc.c, lc.ls.s
	if lc.logged {
		lc.logged = false
		c.logAccess(lc.start, c.ex.key, c.ex.status, nil)
		s.done(lc.up, c.ex.status, nil)
	}
	if !lc.keep || lc.shutting() {
		lc.close()
		return
	}
	lc.up = Upstream{}
	lc.st, lc.kept, lc.partial = stHead, true, false
	lc.cl.SetDeadline(s.lim.IdleTimeout)
	lc.again = lc.unread // a head there already, pipelined or sent meanwhile: drive reads it
}
