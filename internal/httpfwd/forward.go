package httpfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// serveRequest forwards the parsed request and relays the response; it reports whether the
// client connection may carry another request.
func (c *conn) serveRequest(ctx context.Context) bool {
	s := c.s
	req := &c.req
	start := time.Now()
	c.beginRecords()
	if req.has(flagRequestID) {
		c.rec.RequestID = req.raw[req.requestID.start:req.requestID.end]
	} else {
		c.rec.RequestID = newRequestID(&c.reqID)
	}
	req.RequestID = c.rec.RequestID
	if req.looped(s.via) {
		s.stats.loops.Add(1)
		return c.fail(start, 508, "forwarding loop detected", nil)
	}
	if req.Method == "CONNECT" {
		if s.OnConnect == nil {
			return c.fail(start, 501, "CONNECT is not supported here", nil)
		}
		buffered, _ := c.br.Peek(c.br.Buffered())
		c.nc.SetDeadline(time.Time{})
		c.hijacked.Store(true)
		// A context of the tunnel's own, canceled when OnConnect returns as documented: the
		// connection's may be the server's (serveConn).
		ctx, cancel := context.WithCancel(ctx)
		s.OnConnect(ctx, req, c.nc, buffered)
		cancel()
		return false
	}
	return c.forwardRequest(ctx, start)
}

// forwardRequest routes the request, connects (retrying other upstreams as the Router says)
// and runs the round trip; it reports whether the client connection may carry another request.
func (c *conn) forwardRequest(ctx context.Context, start time.Time) bool {
	s := c.s
	req := &c.req
	var up Upstream
	var uc *upConn
	// held is the cluster whose in-flight request slot this request holds (http2MaxRequests).
	var held *ClusterLimits
	defer func() { held.endRequest() }()
	for attempt := 0; ; attempt++ {
		var rej *Reject
		up, rej = s.Router.Route(req, attempt)
		if rej != nil {
			return c.reject(start, rej)
		}
		if up.Key == "" {
			up.Key = up.Addr
		}
		if attempt == 0 && up.Actions != nil {
			return c.forwardActions(ctx, start, up)
		}
		c.rec.Upstream = up.Key
		c.tel.route(&up)
		if up.Limits != nil && held == nil {
			if !up.Limits.beginRequest() {
				err := fmt.Errorf("%w: %d requests in flight to the cluster", ErrOverflow, up.Limits.Settings.MaxRequests)
				s.Router.Done(up, err)
				return c.overflow(start, err)
			}
			held = up.Limits
		}
		if up.Protocol == H2C {
			keep, retry := c.serveH2C(ctx, start, &up)
			if !retry {
				return keep
			}
			if attempt+1 >= up.Limits.maxAttempts(s.lim.MaxAttempts) {
				return c.connectFailed(start, attempt, ErrConnect)
			}
			continue
		}
		var err error
		if uc, err = c.connect(ctx, &up, start); err == nil {
			break
		}
		s.Router.Done(up, err)
		switch {
		case errors.Is(err, ErrLoop):
			s.stats.loops.Add(1)
			return c.fail(start, 508, "loop detected", err)
		case errors.Is(err, ErrOverflow):
			return c.overflow(start, err)
		}
		c.logFailure(slog.LevelDebug, "upstream connect attempt failed", 0, fmt.Errorf("attempt %d: %w", attempt, err))
		if attempt+1 >= up.Limits.maxAttempts(s.lim.MaxAttempts) {
			return c.connectFailed(start, attempt, err)
		}
	}
	for retried := false; ; retried = true {
		keep, upErr, retry := c.roundTrip(start, uc, &up, !retried)
		if !retry {
			s.done(up, c.ex.status, upErr)
			return keep
		}
		// The pooled connection had been closed by the upstream before our request reached
		// it; nothing was processed, so a fresh connection may carry it.
		var err error
		if uc, err = c.redial(ctx, &up); err != nil {
			s.Router.Done(up, err)
			if errors.Is(err, ErrOverflow) {
				return c.overflow(start, err)
			}
			return c.fail(start, 503, connectReason(err), err)
		}
	}
}

// overflow answers a request a cluster's connection-pool limit refused: 503 at once, flagged UO.
func (c *conn) overflow(start time.Time, err error) bool {
	c.tel.flags |= telemetry.UpstreamOverflow
	return c.fail(start, 503, "upstream connection pool limit reached", err)
}

// done reports how a request ended to the Router, and the response status first to a Router
// that is a StatusReporter.
func (s *Server) done(up Upstream, status int, err error) {
	if sr, ok := s.Router.(StatusReporter); ok && status != 0 && err == nil {
		sr.Responded(up, status)
	}
	s.Router.Done(up, err)
}

// dial opens a new connection to up within the connect timeout. With up.Limits set the caller
// has claimed the connection's slot, which closing the connection (or a failed dial) frees.
func (c *conn) dial(ctx context.Context, up *Upstream) (*upConn, error) {
	lim := up.Limits
	ctx, cancel := context.WithTimeout(ctx, lim.connectTimeout(c.s.lim.ConnectTimeout))
	defer cancel()
	nc, err := up.open(ctx)
	if err != nil {
		if lim != nil {
			lim.ReleaseConn()
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrConnect, up.Key, err)
	}
	if lim == nil {
		return newUpConn(up.Key, nc), nil
	}
	if err := lim.SetKeepAlive(nc); err != nil {
		c.logFailure(slog.LevelDebug, "upstream keepalive not set", 0, err)
	}
	uc := newUpConn(up.Key, nc)
	uc.nc = LimitConn(nc, lim) // the socket stays peekable through uc.raw
	uc.lim = lim
	return uc, nil
}

// redial opens a fresh connection for a request whose pooled one had gone stale, within the
// cluster's connection limit.
func (c *conn) redial(ctx context.Context, up *Upstream) (*upConn, error) {
	if up.Limits != nil && !up.Limits.TakeConn() {
		return nil, fmt.Errorf("%w: %d connections open to the cluster", ErrOverflow, up.Limits.Settings.MaxConnections)
	}
	return c.dial(ctx, up)
}

// upstreamFailed handles an upstream connection that failed before a response arrived: it asks
// for a retry when that is safe, and otherwise answers 502 or 504.
func (c *conn) upstreamFailed(start time.Time, uc *upConn, staleOK bool, err error) (bool, error, bool) {
	uc.nc.Close()
	if staleOK && !isTimeout(err) && c.req.idempotent() && !c.rt.fired() {
		return false, nil, true
	}
	var e error
	if isTimeout(err) {
		e = fmt.Errorf("%w: %w", ErrUpstreamTimeout, err)
	} else {
		e = fmt.Errorf("%w: %w", ErrUpstreamClosed, err)
	}
	return c.failUpstream(start, e), e, false
}

// streamBody sends the request body on its own goroutine and reports on c.bodyDone.
func (c *conn) streamBody(uc *upConn) {
	err := c.sendBody(uc)
	if err == nil {
		// Every byte of the body is read from the client (copyN says so before its last
		// write; a chunked body only now): the response may keep the client connection.
		c.bodyRead.Store(true)
		if ferr := c.ubw.Flush(); ferr != nil {
			err = &copyError{err: ferr}
		}
	}
	if readFailed(err) {
		// The client failed: abort the exchange, which also wakes the response wait.
		uc.nc.Close()
	} else {
		// Body through (or the upstream stopped taking it): now the response is due.
		uc.nc.SetReadDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
	}
	c.bodyDone <- err
}

// stopBody ends a body copy still running on its goroutine and returns its result.
func (c *conn) stopBody(uc *upConn) error {
	select {
	case err := <-c.bodyDone:
		return err
	default:
	}
	// Wake the copy with expired deadlines rather than by closing the upstream connection: it
	// may have sent the last byte already and be about to report so, as the upstream's answer
	// can arrive before the goroutine that wrote the body runs again. Such a connection is
	// whole and may be reused; only a body cut short costs the connections.
	c.up.stop.Store(true)
	uc.nc.SetWriteDeadline(time.Unix(1, 0))
	c.nc.SetReadDeadline(time.Unix(1, 0))
	err := <-c.bodyDone
	if err != nil {
		uc.nc.Close()
		c.linger = true
	}
	return err
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// sendBody copies the request body to the upstream connection; c.up was reset for it.
func (c *conn) sendBody(uc *upConn) error {
	p := &c.up
	var err error
	if c.req.Chunked() {
		err = p.copyChunked(chunkCanonical, c.s.lim.MaxHeaderBytes, c.s.lim.MaxHeaders)
		c.countTrailerCap(err)
	} else {
		err = p.copyN(c.req.length)
	}
	c.rec.RequestBytes = p.moved
	return err
}

// countTrailerCap counts a body whose trailer section had more fields than Limits.MaxHeaders,
// with the heads that had: it is the same limit, hit later in the message.
func (c *conn) countTrailerCap(err error) {
	if err != nil && errors.Is(err, errTooManyTrailers) {
		c.s.stats.tooManyHeaders.Add(1)
	}
}

// clientBodyFailed ends a request whose body the client could not deliver: bad chunked framing
// gets a 400, a vanished client nothing.
//
// A trailer section over Limits.MaxHeaders gets 431 with the connection closed, as Envoy's
// HTTP/1 codec answers any field section over max_headers_count. The head and body went
// upstream already, so the request cannot be refused whole: the copy stops before the field
// over the cap and the upstream connection is closed (streamBody), so the upstream never sees
// the message end and holds it for incomplete, which is Envoy's stream reset for HTTP/1.
func (c *conn) clientBodyFailed(start time.Time, err error) bool {
	if errors.Is(err, errTooManyTrailers) {
		c.tel.flags |= telemetry.DownstreamProtocolError
		return c.fail(start, 431, "too many trailer fields", err)
	}
	if errors.Is(err, errBadChunk) {
		c.tel.flags |= telemetry.DownstreamProtocolError
		return c.fail(start, 400, "invalid chunked request body", err)
	}
	if !stalled(err) {
		c.tel.flags |= telemetry.DownstreamClosed
	}
	c.logAccess(start, c.rec.Upstream, 0, err)
	return false
}

// errClientWrite marks a failed write to the client, which is not the upstream's fault.
var errClientWrite = errors.New("writing to the client failed")

// readInterim reads response heads from the upstream, relaying interim (1xx) responses to an
// HTTP/1.1 client, until a final response or, with stopAt100, a 100 Continue is in c.resp. It
// returns that status, or an error for interimFailed.
func (c *conn) readInterim(uc *upConn, stopAt100 bool) (int, error) {
	for {
		raw, err := readHead(c.ubr, c.respBuf, c.s.lim.MaxHeaderBytes)
		c.respBuf = raw
		if err == nil {
			err = c.resp.parse(raw)
		}
		switch {
		case err == nil:
		case isTimeout(err):
			return 0, fmt.Errorf("%w: %w", ErrUpstreamTimeout, err)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
			return 0, fmt.Errorf("%w: %w", ErrUpstreamClosed, err)
		default:
			return 0, fmt.Errorf("%w: %w", ErrBadResponse, err)
		}
		status := c.resp.status
		if status >= 200 || status == 101 {
			return status, nil
		}
		if c.req.ProtoMinor == 1 {
			// The upstream may have taken long: the deadline of the last write is stale.
			c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
			c.writeResponseHead(true, false)
			if err := c.bw.Flush(); err != nil {
				// The writer keeps the error: nothing more can reach this client.
				return 0, fmt.Errorf("%w: %w", errClientWrite, err)
			}
		}
		// The next head is a new wait.
		uc.nc.SetReadDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
		if status == 100 && stopAt100 {
			return status, nil
		}
	}
}

// interimFailed ends an exchange whose response head could not be read or relayed: an upstream
// fault is answered with failUpstream and returned, a client that stopped taking writes gets
// nothing more and is not held against the upstream.
func (c *conn) interimFailed(start time.Time, err error) (keep bool, upErr error, retry bool) {
	if errors.Is(err, errClientWrite) {
		c.tel.flags |= telemetry.DownstreamClosed
		c.logAccess(start, c.rec.Upstream, 0, err)
		return false, nil, false
	}
	return c.failUpstream(start, err), err, false
}

// failUpstream answers the client for an upstream fault found before any response was relayed.
func (c *conn) failUpstream(start time.Time, err error) bool {
	if c.rt.act != nil {
		if retried, answered, keep := c.retryFailure(start, err); retried || answered {
			return keep
		}
	}
	switch {
	case errors.Is(err, ErrUpstreamTimeout):
		return c.fail(start, 504, "upstream timed out", err)
	case errors.Is(err, ErrBadResponse):
		return c.fail(start, 502, "malformed upstream response", err)
	}
	return c.fail(start, 502, "upstream connection failed", err)
}
