package httpfwd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// The response of a request on the loop, as awaitResponse and relayResponse: the head read
// and parsed (interim ones relayed), the body relayed by its framing with the client's pace
// as the upstream's, the upstream pooled once the body is all read, then the answer flushed,
// logged and reported.

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
		if !lc.retryStatus() {
			lc.respond(rest)
		}
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
		lc.cut(nil, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded})
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
	lc.consumed()
	lc.st, lc.kept, lc.partial = stHead, true, false
	lc.cl.SetDeadline(s.lim.IdleTimeout)
	// A head there already, read behind this one or sent meanwhile: drive reads it.
	lc.again = lc.unread || lc.in > 0
}
