package httpfwd

import (
	"errors"
	"fmt"
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
// route, connect (retrying as the Router says), send the head; the response is
// loop_response_linux.go's.

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
	lc.attempt, lc.retried, lc.logged, lc.extra, lc.act = 0, false, false, false, nil
	lc.route()
}

// route asks the Router for the attempt's upstream and connects to it, or answers.
func (lc *loopConn) route() {
	s, c := lc.ls.s, lc.c
	for {
		up, rej := s.Router.Route(&c.req, lc.attempt)
		c.req.RetriedStatus, c.req.RetriedReset = 0, false // until a try retries again
		if rej != nil {
			lc.answered(c.reject(lc.start, rej))
			return
		}
		if up.Key == "" {
			up.Key = up.Addr
		}
		lc.up = up
		addr, ok := lc.ls.lr.Addr(&lc.up)
		if !ok || !up.Actions.LoopServes() || up.Protocol != HTTP1 || up.Limits != nil {
			bump(&lc.ls.stats.mismatches)
			s.Router.Done(lc.up, nil)
			lc.answered(c.fail(lc.start, 503, "upstream not reachable from the event loop", errLoopMismatch))
			return
		}
		if lc.attempt == 0 {
			lc.act = up.Actions // as the engine's routeState, the first route's for every try
		}
		lc.addr = addr
		c.rec.Upstream = up.Key
		c.tel.route(&lc.up)
		if u := lc.ls.pools[lc.cl.LoopIndex()].get(lc.ls, up.Key); u != nil {
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
	if lc.attempt+1 >= lc.policy().connectTries(s.lim.MaxAttempts) {
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
		err = dialError(lc.addr, os.ErrDeadlineExceeded)
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

// badExchange answers an upstream fault found before any response was relayed, unless the
// route's policy retries it.
func (lc *loopConn) badExchange(e error) {
	if u := lc.u; u != nil {
		lc.u = nil
		u.close()
	}
	if lc.retryFailure(e) {
		return
	}
	keep := lc.c.failUpstream(lc.start, e)
	lc.ls.s.done(lc.up, 0, e)
	lc.answered(keep)
}

// policy is the retry policy of the request's route; nil without one.
func (lc *loopConn) policy() *RetryPolicy {
	if lc.act == nil {
		return nil
	}
	return lc.act.Retry
}

// retryStatus retries a final response whose status the route's policy retries, before any
// of it reaches the client, as the engine's retryStatus: the upstream connection is closed
// with the response unread, the status reported, and the request routed again. A response
// the policy would retry but for its attempts all made is flagged URX. false: not retried.
func (lc *loopConn) retryStatus() bool {
	p, status := lc.policy(), lc.c.resp.status
	if p.exhausted(status, lc.attempt) {
		lc.c.tel.flags |= telemetry.RetriesExhausted
	}
	if p == nil || lc.attempt >= p.Attempts || !p.retriesStatus(status) {
		return false
	}
	lc.u.close()
	lc.u = nil
	lc.ls.s.done(lc.up, status, nil)
	lc.c.req.RetriedStatus = status
	lc.retry()
	return true
}

// retryFailure retries an upstream that failed before it answered (a reset, a close, a stall,
// a malformed head) when the route's policy retries resets, as the engine's retryFailure; the
// loop has no per-try timeout. false: not retried, flagged URX after retries.
func (lc *loopConn) retryFailure(err error) bool {
	p := lc.policy()
	if p == nil || lc.attempt >= p.Attempts || !p.retriesReset() {
		if lc.act != nil && lc.attempt > 0 {
			lc.c.tel.flags |= telemetry.RetriesExhausted
		}
		return false
	}
	lc.ls.s.done(lc.up, 0, err)
	lc.c.req.RetriedReset = true
	lc.retry()
	return true
}

// retry routes the request's next try, the one before it having settled without an answer.
func (lc *loopConn) retry() {
	lc.ls.s.stats.retries.Add(1)
	lc.attempt++
	lc.retried = false // the new try may carry it again once, on a fresh connection
	lc.route()
}
