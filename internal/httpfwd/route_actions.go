package httpfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// routeState is the state of one request whose route has Actions. It lives in the conn, so a
// request without Actions never touches it beyond a nil check.
type routeState struct {
	act     *Actions
	attempt int  // the try in progress, 0 for the first
	again   bool // the try failed in a way the retry policy retries: route again
	held    bool // the whole request body is in replay (or there is none)
	replay  []byte
	path    []byte // the rewritten path and query; nil sends the request's own
	origin  []byte // the request's Origin when the CORS policy allows it
	// mirroring: the head being written is the mirror's, whose Host is its own.
	mirroring bool
	// The route timeout and the per-try timeout close the upstream connection in use when
	// they fire; the flags tell the failure that follows from any other.
	timedOut, tryTimedOut atomic.Bool
	timer, tryTimer       *time.Timer
	// gen counts the requests begun, so that a timer that fires as its request ends leaves
	// the next request of the connection alone.
	gen atomic.Uint64
}

// begin resets rs for a request routed with a.
func (rs *routeState) begin(a *Actions) {
	rs.gen.Add(1)
	rs.act, rs.attempt, rs.again, rs.held = a, 0, false, false
	rs.replay, rs.path, rs.origin = nil, nil, nil
	rs.timedOut.Store(false)
	rs.tryTimedOut.Store(false)
}

// end stops the timers and forgets the request.
func (rs *routeState) end() {
	rs.settle()
	rs.gen.Add(1)
	rs.act, rs.replay, rs.path, rs.origin, rs.held = nil, nil, nil, nil, false
}

// settle stops the timers and reports whether neither had fired, so that the upstream
// connection in use is intact and may be pooled. Without Actions it is always true.
func (rs *routeState) settle() bool {
	ok := true
	for _, t := range []**time.Timer{&rs.timer, &rs.tryTimer} {
		if *t != nil {
			if !(*t).Stop() {
				ok = false
			}
			*t = nil
		}
	}
	return ok && !rs.timedOut.Load() && !rs.tryTimedOut.Load()
}

// fired reports whether a timeout of the route ended the try in progress.
func (rs *routeState) fired() bool {
	return rs.act != nil && (rs.timedOut.Load() || rs.tryTimedOut.Load())
}

// mayRetry reports whether the policy allows another try and the request can be sent again.
func (rs *routeState) mayRetry(x *exchange) bool {
	p := rs.act.Retry
	return p != nil && rs.attempt < p.Attempts && !rs.timedOut.Load() &&
		(!x.hasBody || rs.held) && !x.async
}

// armTimer starts a timer that, when it fires, sets flag and closes the upstream connection
// in use, which ends whatever wait the exchange is in.
func (c *conn) armTimer(d time.Duration, flag *atomic.Bool) *time.Timer {
	gen := c.rt.gen.Load()
	return time.AfterFunc(d, func() {
		if c.rt.gen.Load() != gen {
			return
		}
		flag.Store(true)
		if uc := c.current.Load(); uc != nil {
			uc.nc.Close()
		}
	})
}

// forwardActions serves a request whose route has Actions: those that answer by themselves
// first (CORS preflight, redirect, direct response, fault), then the tries, each routed anew.
func (c *conn) forwardActions(ctx context.Context, start time.Time, up Upstream) bool {
	rs := &c.rt
	a := up.Actions
	rs.begin(a)
	defer rs.end()
	// Answers of the route's own are reported under the service the route names.
	c.tel.route(&up)
	if a.CORS != nil {
		if done, keep := c.cors(start, a.CORS); done {
			return keep
		}
	}
	switch {
	case a.Direct != nil:
		return c.answer(start, a.Direct.Status, a.Direct.Body, nil)
	case a.Redirect != nil:
		return c.redirect(start, a.Redirect)
	}
	if f := a.Fault; f != nil {
		if done, keep := c.fault(ctx, start, f); done {
			return keep
		}
	}
	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
		rs.timer = c.armTimer(a.Timeout, &rs.timedOut)
	}
	c.rewritePath(a.Rewrite)
	mirror := a.Mirror != nil && chance(a.Mirror.Percent)
	if a.Retry != nil && a.Retry.Attempts > 0 || mirror {
		if err := c.holdBody(); err != nil {
			return c.clientBodyFailed(start, err)
		}
	}
	if mirror {
		c.mirror(a.Mirror, &up)
	}
	return c.tries(ctx, start, up)
}

// tries runs the tries of a request with Actions until one settles it.
func (c *conn) tries(ctx context.Context, start time.Time, up Upstream) bool {
	s, rs := c.s, &c.rt
	var held *ClusterLimits
	defer func() { held.endRequest() }()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var rej *Reject
			up, rej = s.Router.Route(&c.req, attempt)
			c.req.RetriedStatus, c.req.RetriedReset = 0, false // until a try retries again
			if rej != nil {
				return c.reject(start, rej)
			}
			if up.Key == "" {
				up.Key = up.Addr
			}
		}
		c.rec.Upstream = up.Key
		c.tel.route(&up)
		if rs.timedOut.Load() {
			return c.routeTimeout(start, nil)
		}
		if up.Limits != nil && held == nil {
			if !up.Limits.beginRequest() {
				err := fmt.Errorf("%w: %d requests in flight to the cluster", ErrOverflow, up.Limits.Settings.MaxRequests)
				s.Router.Done(up, err)
				return c.overflow(start, err)
			}
			held = up.Limits
		}
		keep, again := c.try(ctx, start, &up, attempt)
		if !again {
			return keep
		}
		s.stats.retries.Add(1)
	}
}

// try makes one try on up: connect, then the round trip. It reports again when the try failed
// in a way that the policy retries on another endpoint, having answered nothing.
func (c *conn) try(ctx context.Context, start time.Time, up *Upstream, attempt int) (keep, again bool) {
	s, rs := c.s, &c.rt
	rs.attempt, rs.again = attempt, false
	if up.Protocol == H2C {
		keep, retry := c.serveH2C(ctx, start, up)
		if retry && attempt+1 < c.connectTries(up) {
			return false, true
		}
		if retry {
			return c.connectFailed(start, attempt, ErrConnect), false
		}
		return keep, false
	}
	uc, err := c.connect(ctx, up, start)
	if err != nil {
		s.Router.Done(*up, err)
		switch {
		case rs.timedOut.Load():
			return c.routeTimeout(start, err), false
		case errors.Is(err, ErrLoop):
			s.stats.loops.Add(1)
			return c.fail(start, 508, "loop detected", err), false
		case errors.Is(err, ErrOverflow):
			return c.overflow(start, err), false
		case attempt+1 < c.connectTries(up):
			c.logFailure(slog.LevelDebug, "upstream connect attempt failed", 0, fmt.Errorf("attempt %d: %w", attempt, err))
			return false, true
		}
		return c.connectFailed(start, attempt, err), false
	}
	if p := rs.act.Retry; p != nil && p.PerTryTimeout > 0 {
		rs.tryTimedOut.Store(false)
		rs.tryTimer = c.armTimer(p.PerTryTimeout, &rs.tryTimedOut)
		defer func() {
			if rs.tryTimer != nil {
				rs.tryTimer.Stop()
				rs.tryTimer = nil
			}
			rs.tryTimedOut.Store(false)
		}()
	}
	for retried := false; ; retried = true {
		keep, upErr, retry := c.roundTrip(start, uc, up, !retried)
		if !retry {
			s.done(*up, c.ex.status, upErr)
			return keep, rs.again
		}
		if uc, err = c.redial(ctx, up); err != nil {
			s.Router.Done(*up, err)
			if errors.Is(err, ErrOverflow) {
				return c.overflow(start, err), false
			}
			return c.fail(start, 503, connectReason(err), err), false
		}
	}
}

// connectTries is how many connect attempts a request may make, by its route's policy, within
// the cluster's bound (a DestinationRule's maxRetries) when it sets one.
func (c *conn) connectTries(up *Upstream) int {
	return up.Limits.maxAttempts(c.rt.act.Retry.connectTries(c.s.lim.MaxAttempts))
}

// retryStatus ends a try whose final response status the policy retries, before any of it
// reaches the client; nil when it is not retried. A response the policy would retry but for
// its attempts all made is flagged URX, as Envoy flags it.
func (c *conn) retryStatus(x *exchange) *result {
	rs := &c.rt
	if rs.act.Retry.exhausted(c.resp.status, rs.attempt) {
		c.tel.flags |= telemetry.RetriesExhausted
	}
	if !rs.mayRetry(x) || !rs.act.Retry.retriesStatus(c.resp.status) {
		return nil
	}
	x.status = c.resp.status
	x.uc.nc.Close()
	rs.again = true
	c.req.RetriedStatus = c.resp.status
	return x.end(false, nil, false)
}

// retryFailure decides for an upstream failure before any response: it reports true when the
// policy retries it (nothing is answered), and otherwise answers a route or per-try timeout
// itself, setting answered.
func (c *conn) retryFailure(start time.Time, err error) (retried, answered, keep bool) {
	rs := &c.rt
	if rs.timedOut.Load() {
		return false, true, c.routeTimeout(start, err)
	}
	tryTimeout := rs.tryTimedOut.Load()
	if p := rs.act.Retry; p != nil && rs.mayRetry(&c.ex) {
		if tryTimeout && p.retriesTimeout() || !tryTimeout && p.retriesReset() {
			rs.again = true
			c.req.RetriedReset = true
			return true, false, false
		}
	}
	if rs.attempt > 0 {
		c.tel.flags |= telemetry.RetriesExhausted
	}
	if tryTimeout {
		return false, true, c.routeTimeout(start, err)
	}
	return false, false, false
}

// routeTimeout answers a request whose route timeout (or last per-try timeout) ran out: 504
// with Envoy's body, flagged UT.
func (c *conn) routeTimeout(start time.Time, err error) bool {
	e := fmt.Errorf("%w: the route's timeout ran out", ErrUpstreamTimeout)
	if err != nil {
		e = fmt.Errorf("%w: the route's timeout ran out: %w", ErrUpstreamTimeout, err)
	}
	c.tel.flags |= telemetry.UpstreamTimeout
	keep := c.req.KeepAlive() && (!c.req.HasBody() || c.rt.held) && !c.s.shutting.Load()
	c.linger = c.linger || !keep
	c.logFailure(slog.LevelDebug, "upstream request timeout", 504, e)
	c.writeSimple(504, "upstream request timeout", nil, !keep, "upstream request timeout")
	c.logAccess(start, c.rec.Upstream, 504, e)
	return keep
}

// answer writes a response the route makes itself (direct response, redirect, fault abort,
// CORS preflight): body as given, the route's response field changes applied.
func (c *conn) answer(start time.Time, status int, body string, fields []Field) bool {
	keep := c.req.KeepAlive() && !c.req.HasBody() && !c.s.shutting.Load()
	c.linger = c.linger || c.req.HasBody()
	if status < 200 || status > 599 {
		status = 502
	}
	ops := &c.rt.act.Response
	if !ops.empty() {
		fields = append(append(append([]Field(nil), fields...), ops.Set...), ops.Add...)
	}
	if body == "" {
		c.writeSimple(status, "", fields, !keep)
	} else {
		c.writeSimple(status, "", fields, !keep, body)
	}
	c.logAccess(start, "", status, nil)
	return keep
}

// fault applies a route's fault injection: a delay for its share of requests, then an abort
// for its share. It reports done when the abort answered the request.
func (c *conn) fault(ctx context.Context, start time.Time, f *Fault) (done, keep bool) {
	if f.Delay > 0 && chance(f.DelayPercent) {
		c.tel.flags |= telemetry.DelayInjected
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.logAccess(start, "", 0, ctx.Err())
			return true, false
		}
	}
	if f.AbortStatus > 0 && chance(f.AbortPercent) {
		c.tel.flags |= telemetry.FaultInjected
		return true, c.answer(start, f.AbortStatus, "fault filter abort", nil)
	}
	return false, false
}

// holdBody reads a fixed-length request body of at most Limits.MaxReplayBytes into memory,
// so that a retry or a mirror can send it again. A chunked or larger body is left to stream
// once, and counted.
func (c *conn) holdBody() error {
	req, rs := &c.req, &c.rt
	if !req.HasBody() {
		rs.held = true
		return nil
	}
	if req.Chunked() || req.length > int64(c.s.lim.MaxReplayBytes) {
		c.s.stats.replayTooLarge.Add(1)
		return nil
	}
	if req.has(flagExpectContinue) && req.ProtoMinor == 1 {
		// The client waits for this before it sends the body we are about to read.
		c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.bw.Flush(); err != nil {
			return &copyError{read: true, err: err}
		}
	}
	buf := make([]byte, req.length)
	c.nc.SetReadDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
	if _, err := io.ReadFull(c.br, buf); err != nil {
		return readFail(err)
	}
	c.rec.RequestBytes = req.length
	rs.replay, rs.held = buf, true
	return nil
}

// redirect answers with the route's redirect; the Location keeps each part of the request's
// URL the redirect does not replace, as Envoy's does.
func (c *conn) redirect(start time.Time, r *Redirect) bool {
	status := r.Status
	if status == 0 {
		status = 301
	}
	return c.answer(start, status, "", []Field{{Name: "Location", Value: redirectLocation(&c.req, r)}})
}

// redirectLocation builds the Location of a redirect of req.
func redirectLocation(req *RequestHead, r *Redirect) string {
	scheme := req.Scheme
	if scheme == "" {
		scheme = "http"
	}
	port := req.Port
	if r.Scheme != "" && r.Scheme != scheme {
		// A port given for the old scheme does not carry over to another.
		scheme, port = r.Scheme, 0
	}
	host := req.Host
	if r.Host != "" {
		host, port = r.Host, 0
	}
	if r.Port != 0 {
		port = r.Port
	}
	if scheme == "http" && port == 80 || scheme == "https" && port == 443 {
		port = 0
	}
	path := string(requestPath(req))
	if r.URI != "" {
		q := ""
		if i := indexByte(path, '?'); i >= 0 && indexByte(r.URI, '?') < 0 {
			q = path[i:]
		}
		path = r.URI + q
	}
	b := make([]byte, 0, len(scheme)+len(host)+len(path)+16)
	b = append(append(append(b, scheme...), "://"...), host...)
	if port != 0 {
		b = strconv.AppendInt(append(b, ':'), int64(port), 10)
	}
	return string(append(b, path...))
}

// requestPath is the path and query of req as it would be sent upstream.
func requestPath(req *RequestHead) []byte {
	if !req.Absolute {
		return req.Target
	}
	if len(req.Path) == 0 || req.Path[0] != '/' {
		return append([]byte{'/'}, req.Path...)
	}
	return req.Path
}

func indexByte(s string, b byte) int {
	for i := range len(s) {
		if s[i] == b {
			return i
		}
	}
	return -1
}
