package httpfwd

import (
	"errors"
	"fmt"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// exchange is the state of one request's round trip on one upstream connection, kept in the
// conn so that the phases of roundTrip share it without allocating.
type exchange struct {
	start time.Time
	uc    *upConn
	key   string // the Upstream.Key, for the access log
	// staleOK: uc is a reused connection and nothing of the request was consumed yet, so a
	// failure before any response byte may be retried on a new connection (when the request
	// is idempotent, which is checked when it matters).
	staleOK  bool
	hasBody  bool
	bodyDone bool // the whole request body went upstream
	async    bool // the body is streaming on its own goroutine
	final    bool // a final response arrived before the body was sent
	bodyErr  error
	// status is the upstream's final response status, 0 until one was read.
	status int
	// extra are the Upstream's ResponseFields, added to the final response.
	extra []Field
	res   result
}

// result is what roundTrip and its phases return once the exchange is over: whether the
// client connection stays usable, the upstream's fault if any, and whether to retry.
type result struct {
	keep  bool
	upErr error
	retry bool
}

// end records the exchange's result; it lives in x, so returning it does not allocate.
func (x *exchange) end(keep bool, upErr error, retry bool) *result {
	x.res = result{keep: keep, upErr: upErr, retry: retry}
	return &x.res
}

// roundTrip sends the request on uc and relays the response. It returns whether the client
// connection stays usable and the upstream's fault, if any. With mayRetry set and uc a reused
// connection that failed before any response byte, it writes nothing to the client and asks
// for a retry instead. The phases run in order; each returns a non-nil result when the
// exchange ended in it.
func (c *conn) roundTrip(start time.Time, uc *upConn, up *Upstream, mayRetry bool) (keep bool, upErr error, retry bool) {
	x := &c.ex
	*x = exchange{start: start, uc: uc, key: up.Key, staleOK: mayRetry && uc.reused, hasBody: c.req.HasBody(), extra: up.ResponseFields}
	x.bodyDone = !x.hasBody
	c.current.Store(uc)
	defer c.current.Store(nil)
	if c.rt.fired() {
		// A route timer fired before the connection was in c.current to be closed.
		uc.nc.Close()
	}
	c.ubr.Reset(uc.stream())
	c.ubw.Reset(uc.stream())
	uc.nc.SetDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
	c.writeRequestHead(up)
	c.tel.sending(c.s)

	r := c.awaitContinue(x)
	if r == nil {
		r = c.sendRequest(x)
	}
	if r == nil {
		r = c.awaitResponse(x)
	}
	if r == nil && c.rt.act != nil {
		// As Envoy's, a try's timeout ends with the response head.
		if t := c.rt.tryTimer; t != nil && t.Stop() {
			c.rt.tryTimer = nil
		}
		r = c.retryStatus(x)
	}
	if r == nil {
		r = c.relayResponse(x)
	}
	return r.keep, r.upErr, r.retry
}

// awaitContinue sends the head of a request with Expect: 100-continue and waits a little for
// the upstream's interim response before the body goes.
func (c *conn) awaitContinue(x *exchange) *result {
	req, lim, uc := &c.req, &c.s.lim, x.uc
	if !x.hasBody || !req.has(flagExpectContinue) || req.ProtoMinor != 1 || c.rt.held {
		return nil
	}
	if err := c.ubw.Flush(); err != nil {
		return x.end(c.upstreamFailed(x.start, uc, x.staleOK, err))
	}
	uc.nc.SetReadDeadline(time.Now().Add(lim.ExpectContinueTimeout))
	_, err := c.ubr.Peek(1)
	uc.nc.SetReadDeadline(time.Now().Add(lim.StreamIdleTimeout))
	switch {
	case err == nil:
		status, err := c.readInterim(uc, true)
		if err != nil {
			uc.nc.Close()
			return x.end(c.interimFailed(x.start, err))
		}
		x.final = status >= 200 || status == 101
	case !isTimeout(err):
		return x.end(c.upstreamFailed(x.start, uc, x.staleOK, err))
	}
	// A timeout means the upstream ignores Expect: send the body anyway.
	return nil
}

// sendRequest sends the request body, or starts streaming it, and flushes the request.
func (c *conn) sendRequest(x *exchange) *result {
	lim, uc := &c.s.lim, x.uc
	switch {
	case x.hasBody && c.rt.held:
		// The body was read whole for retries: it goes with the head, and may again.
		c.ubw.Write(c.rt.replay)
		x.bodyDone = true
	case x.hasBody && !x.final:
		x.staleOK = false
		c.up.reset(c.br, c.nc, c.ubw, uc.nc, lim.StreamIdleTimeout)
		if !c.req.Chunked() && int64(c.br.Buffered()) < c.req.length {
			c.topUpBody(c.req.length)
		}
		if !c.req.Chunked() && int64(c.br.Buffered()) >= c.req.length {
			// The whole body is at hand: it leaves with the head in one write.
			if err := c.sendBody(uc); err != nil {
				x.bodyErr = err
			} else {
				x.bodyDone = true
			}
		} else {
			// Stream the body while waiting for the response, as the upstream may answer
			// (or echo) before reading all of it; the response wait starts counting when
			// the body is through.
			uc.nc.SetReadDeadline(time.Time{})
			x.async = true
			c.s.stats.bodiesStreamed.Add(1)
			c.bodyRead.Store(false)
			go c.streamBody(uc)
		}
	}
	if x.async {
		return nil
	}
	// The response is read next (awaitResponse), so the request can go out from within that
	// read, which then waits for the answer without first finding the socket empty.
	hold := !x.final && c.ubw.Buffered() > 0 && c.ubr.Buffered() == 0 && uc.sio.HoldWrite()
	err := c.ubw.Flush()
	if hold {
		uc.sio.Unhold()
	}
	if err != nil && x.bodyErr == nil {
		x.bodyErr = &copyError{err: err}
	}
	if x.bodyErr != nil && !x.hasBody {
		return x.end(c.upstreamFailed(x.start, uc, x.staleOK, x.bodyErr))
	}
	return nil
}

// awaitResponse reads the upstream's response head into c.resp, relaying interim responses,
// and settles what became of the request body meanwhile.
func (c *conn) awaitResponse(x *exchange) *result {
	uc := x.uc
	if !x.final {
		if c.ubr.Buffered() == 0 {
			if _, err := c.ubr.Peek(1); err != nil {
				if x.async {
					x.bodyErr = c.stopBody(uc)
				}
				if readFailed(x.bodyErr) {
					uc.nc.Close()
					return x.end(c.clientBodyFailed(x.start, x.bodyErr), nil, false)
				}
				return x.end(c.upstreamFailed(x.start, uc, x.staleOK, err))
			}
		}
		if _, err := c.readInterim(uc, false); err != nil {
			uc.nc.Close()
			if x.async {
				c.stopBody(uc)
			}
			return x.end(c.interimFailed(x.start, err))
		}
	}
	if x.async {
		select {
		case x.bodyErr = <-c.bodyDone:
			x.async, x.bodyDone = false, x.bodyErr == nil
		default:
		}
	}
	// The client's body broke off but the upstream answered anyway: relay that answer unless
	// the body was malformed.
	if readFailed(x.bodyErr) && errors.Is(x.bodyErr, errBadChunk) {
		uc.nc.Close()
		return x.end(c.clientBodyFailed(x.start, x.bodyErr), nil, false)
	}
	if c.resp.status == 101 {
		return c.upgrade(x)
	}
	return nil
}

// upgrade switches to relaying bytes after a 101 Switching Protocols the client asked for.
func (c *conn) upgrade(x *exchange) *result {
	c.tel.answered(c.s)
	if !c.req.WantsUpgrade() || !x.bodyDone {
		x.uc.nc.Close()
		if x.async {
			c.stopBody(x.uc)
		}
		e := fmt.Errorf("%w: unsolicited 101 Switching Protocols", ErrBadResponse)
		return x.end(c.fail(x.start, 502, "malformed upstream response", e), e, false)
	}
	c.tunnel(x.start, x.uc)
	return x.end(false, nil, false)
}

// relayResponse writes the response head and body to the client and settles both connections.
func (c *conn) relayResponse(x *exchange) *result {
	lim, req, resp, uc := &c.s.lim, &c.req, &c.resp, x.uc
	x.status = resp.status
	uc.served++
	c.tel.answered(c.s)
	f := responseFraming(req.Method, req.ProtoMinor, resp)
	// A body still streaming may be all read from the client already (the upstream answered
	// once it had it); then the client connection can stay.
	bodyRead := x.bodyDone || x.async && c.bodyRead.Load()
	keep := keepClient(req, f, bodyRead, c.s.shutting.Load())
	if !bodyRead {
		c.linger = true
	}
	c.nc.SetWriteDeadline(time.Now().Add(lim.StreamIdleTimeout))
	c.writeResponseHead(keep, f.dechunk)
	var err error
	if !f.noBody {
		p := &c.down
		p.reset(c.ubr, uc.nc, c.bw, c.nc, lim.StreamIdleTimeout)
		switch {
		case f.dechunk:
			err = p.copyChunked(chunkPayload, lim.MaxHeaderBytes, lim.MaxHeaders)
		case f.chunked:
			err = p.copyChunked(chunkRelay, lim.MaxHeaderBytes, lim.MaxHeaders)
		case f.toEOF:
			err = p.copyToEOF()
		default:
			err = p.copyN(resp.length)
		}
		c.rec.ResponseBytes = p.moved
		// A trailer section over the cap ends the copy as malformed: the head is out, so the
		// client sees the body cut and the connection closed.
		c.countTrailerCap(err)
	}
	if x.async {
		// The response is complete but the body may not be: then the upstream does not
		// want the rest, so end the copy and the connection.
		x.bodyErr = c.stopBody(uc)
		x.bodyDone = x.bodyErr == nil
	}
	var upErr error
	if err != nil {
		keep = false
		upErr = responseBodyFault(err)
		if upErr == nil && !stalled(err) {
			c.tel.flags |= telemetry.DownstreamClosed
		}
	}
	if c.down.waited {
		// The deadline of the last write may have been used up waiting for the upstream.
		c.nc.SetWriteDeadline(time.Now().Add(lim.StreamIdleTimeout))
	}
	// The upstream connection is free once its response is read: pool it before the
	// client sees the response, so the client's next request can have it.
	if upstreamReusable(resp, f, err == nil, x.bodyDone, c.ubr.Buffered()) && (c.rt.act == nil || c.rt.settle()) {
		c.s.pool.put(uc, time.Now())
	} else {
		uc.nc.Close()
	}
	// On error the client learns of the cut from the truncated body and the closed connection.
	if ferr := c.bw.Flush(); ferr != nil && err == nil {
		keep = false
		err = ferr
		if !stalled(err) {
			c.tel.flags |= telemetry.DownstreamClosed
		}
	}
	c.logAccess(x.start, x.key, resp.status, firstErr(upErr, err))
	return x.end(keep, upErr, false)
}

// responseBodyFault returns the upstream's fault in a failed response body copy, or nil when
// the client side failed.
func responseBodyFault(err error) error {
	if !readFailed(err) {
		return nil
	}
	if errors.Is(err, errBadChunk) {
		return fmt.Errorf("%w: %w", ErrBadResponse, errors.Unwrap(err))
	}
	return fmt.Errorf("%w: reading the response body: %w", ErrUpstreamClosed, errors.Unwrap(err))
}
