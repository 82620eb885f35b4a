package httpfwd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// errRouteTimeout is the cause of a stream context ended by the route's timeout, and
// errTryTimeout of a try's context ended by the retry policy's per-try timeout.
var (
	errRouteTimeout = errors.New("the route's timeout ran out")
	errTryTimeout   = errors.New("the try's timeout ran out")
)

// h2Route is the part of a route's Actions an HTTP/2 stream carries out: the answers of the
// route's own, the fault, the timeout, header changes, rewrite and CORS fields. A stream whose
// body is held (h2replay.go), or that has none, is retried on the statuses the policy names and
// mirrored; one whose body streams is retried only on connect failures, and not mirrored.
type h2Route struct {
	act     *Actions
	attempt int    // the try in progress
	again   bool   // the try's answer is retried
	origin  string // the allowed CORS origin of the request
	path    string // the rewritten path and query, "" when not rewritten
}

// begin carries out the Actions that come before forwarding. It reports done when the route
// answered the stream itself; otherwise st.ctx may now carry the route's deadline, whose
// cancel is returned.
func (st *h2Stream) beginActions(a *Actions) (done bool, cancel context.CancelFunc) {
	st.rt = h2Route{act: a}
	fields := []Field(nil)
	if p := a.CORS; p != nil {
		if o := st.r.Header.Get("Origin"); o != "" && p.allows([]byte(o)) {
			st.rt.origin = o
			if st.r.Method == "OPTIONS" && st.r.Header.Get("Access-Control-Request-Method") != "" {
				fields = append(fields, Field{Name: "Access-Control-Allow-Origin", Value: o})
				for _, f := range [...]Field{{"Access-Control-Allow-Methods", p.AllowMethods}, {"Access-Control-Allow-Headers", p.AllowHeaders}, {"Access-Control-Max-Age", p.MaxAge}} {
					if f.Value != "" {
						fields = append(fields, f)
					}
				}
				if p.AllowCredentials {
					fields = append(fields, Field{Name: "Access-Control-Allow-Credentials", Value: "true"})
				}
				return st.answer(200, "", fields), nil
			}
		}
	}
	switch {
	case a.Direct != nil:
		return st.answer(a.Direct.Status, a.Direct.Body, nil), nil
	case a.Redirect != nil:
		status := a.Redirect.Status
		if status == 0 {
			status = 301
		}
		return st.answer(status, "", []Field{{Name: "Location", Value: redirectLocation(&st.head, a.Redirect)}}), nil
	}
	if f := a.Fault; f != nil {
		if f.Delay > 0 && chance(f.DelayPercent) {
			st.tel.flags |= telemetry.DelayInjected
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-st.r.Context().Done():
				t.Stop()
				st.log(0, st.r.Context().Err())
				return true, nil
			}
		}
		if f.AbortStatus > 0 && chance(f.AbortPercent) {
			st.tel.flags |= telemetry.FaultInjected
			return st.answer(f.AbortStatus, "fault filter abort", nil), nil
		}
	}
	if rw := a.Rewrite; rw != nil && (rw.URI != "" || rw.Regex != nil) {
		c := conn{work: &work{}} // scratch for rewritePath, which works on a connection's request
		c.req.Target = []byte(st.url.RequestURI())
		c.rewritePath(rw)
		st.rt.path = string(c.rt.path)
	}
	if a.Timeout > 0 {
		ctx, cancel := context.WithTimeoutCause(st.ctx, a.Timeout, errRouteTimeout)
		st.ctx = ctx
		return false, cancel
	}
	return false, nil
}

// retriesStatus reports whether the route's policy retries a response of status: a stream
// without a body, tries left, and a status the policy names.
func (st *h2Stream) retriesStatus(status int) bool {
	return st.mayRetry() && st.rt.act.Retry.retriesStatus(status)
}

// retriesReset reports whether the route's policy retries an upstream that closed, reset or
// answered with a malformed head before the stream's response began, as the HTTP/1.1 path does.
func (st *h2Stream) retriesReset() bool { return st.mayRetry() && st.rt.act.Retry.retriesReset() }

// mayRetry reports whether the stream may be tried again at all, whatever failed: the route
// has a retry policy with attempts left, the stream's own timers have not ended it, and its
// body can be sent again (none, or one held whole; a stream that ended with its head has
// ContentLength 0, its Body is never nil). The HTTP/1.1 path's routeState.mayRetry.
func (st *h2Stream) mayRetry() bool {
	a := st.rt.act
	return a != nil && a.Retry != nil && st.rt.attempt < a.Retry.Attempts && context.Cause(st.ctx) == nil &&
		(st.body == nil || st.r.ContentLength == 0 || st.replay != nil)
}

// connectTries is how many connect attempts the stream may make, by its route's policy,
// within the cluster's bound (a DestinationRule's maxRetries), as on the HTTP/1.1 path.
func (st *h2Stream) connectTries(up *Upstream) int {
	var p *RetryPolicy
	if st.rt.act != nil {
		p = st.rt.act.Retry
	}
	return up.Limits.maxAttempts(p.connectTries(st.hc.s.lim.MaxAttempts))
}

// answer writes a response of the route's own, with its response field changes.
func (st *h2Stream) answer(status int, body string, fields []Field) bool {
	if status < 200 || status > 599 {
		status = 502
	}
	ops := &st.rt.act.Response
	fields = append(append(fields, ops.Set...), ops.Add...)
	st.writeSimple(status, "", fields, body)
	st.rec.Upstream = ""
	st.log(status, nil)
	return true
}

// applyRequestActions changes the request bound upstream as the route says.
func (st *h2Stream) applyRequestActions(out *http.Request) {
	a := st.rt.act
	if a == nil {
		return
	}
	if rw := a.Rewrite; rw != nil && rw.Authority != "" {
		out.Host = rw.Authority
	}
	if st.rt.path != "" {
		if u, err := targetURL(st.rt.path); err == nil {
			u.Host = out.URL.Host
			out.URL = u
		}
	}
	applyOps(out.Header, &a.Request)
}

// applyResponseActions changes the response header sent to the client as the route says.
func (st *h2Stream) applyResponseActions(h http.Header) {
	a := st.rt.act
	if a == nil {
		return
	}
	applyOps(h, &a.Response)
	if p := a.CORS; p != nil && st.rt.origin != "" {
		h.Set("Access-Control-Allow-Origin", st.rt.origin)
		if p.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if p.ExposeHeaders != "" {
			h.Set("Access-Control-Expose-Headers", p.ExposeHeaders)
		}
	}
}

// routeTimedOut answers a stream whose route timeout ran out, as the HTTP/1.1 path does.
func (st *h2Stream) routeTimedOut(up *Upstream, err error) {
	e := errors.Join(ErrUpstreamTimeout, err)
	st.hc.s.Router.Done(*up, e)
	st.tel.flags |= telemetry.UpstreamTimeout
	st.writeSimple(504, "upstream request timeout", nil, "upstream request timeout")
	st.log(504, e)
}

// mirrorOf returns the route's mirror when this stream, on its first try, is one of the share
// mirrored; a stream whose body streams is not, since that body can be sent only once.
func (st *h2Stream) mirrorOf() *Mirror {
	a := st.rt.act
	if a == nil || a.Mirror == nil || st.rt.attempt > 0 || !chance(a.Mirror.Percent) {
		return nil
	}
	if st.body != nil && st.r.ContentLength != 0 && st.replay == nil {
		return nil // counted in ReplayTooLarge when holdBody let it stream
	}
	return a.Mirror
}

// mirror sends a copy of out, the request as it goes upstream, to m: HTTP/1.1, its Host given
// Envoy's "-shadow" suffix, fire and forget within Limits.MaxMirrors, as on the HTTP/1.1 path.
func (st *h2Stream) mirror(m *Mirror, out *http.Request) {
	s := st.hc.s
	up := m.Upstream
	if up.Key == "" {
		up.Key = up.Addr
	}
	cp := &http.Request{Method: out.Method, URL: out.URL, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: out.Header.Clone(), Host: shadowHost(out.Host), Close: true}
	if st.replay != nil {
		cp.Body, cp.ContentLength = io.NopCloser(bytes.NewReader(st.replay)), int64(len(st.replay))
	}
	var buf bytes.Buffer
	if err := cp.Write(&buf); err != nil {
		st.logFailure(slog.LevelDebug, "mirror request not written", 0, err)
		return
	}
	select {
	case s.mirrorSlots <- struct{}{}:
	default:
		s.stats.mirrorsDropped.Add(1)
		return
	}
	s.stats.mirrorsSent.Add(1)
	go s.sendMirror(&up, buf.Bytes())
}

// perTry returns the context of one try: ctx, ended with errTryTimeout at the retry policy's
// perTryTimeout unless the response head arrives first (st.tryTimer is stopped then).
func (st *h2Stream) perTry(ctx context.Context) (context.Context, func()) {
	st.tryTimer = nil
	a := st.rt.act
	if a == nil || a.Retry == nil || a.Retry.PerTryTimeout <= 0 {
		return ctx, func() {}
	}
	tctx, cancel := context.WithCancelCause(ctx)
	st.tryTimer = time.AfterFunc(a.Retry.PerTryTimeout, func() { cancel(errTryTimeout) })
	return tctx, func() {
		st.tryTimer.Stop()
		cancel(nil)
	}
}

// tryTimedOut settles a try that ran out of its per-try timeout: retried on another endpoint
// when the policy retries timeouts and the stream can be sent again, else answered 504 as
// Envoy answers it.
func (st *h2Stream) tryTimedOut(up *Upstream, err error) (retry bool, _ error) {
	e := errors.Join(ErrUpstreamTimeout, err)
	if st.mayRetry() && st.rt.act.Retry.retriesTimeout() {
		st.hc.s.Router.Done(*up, e)
		st.rt.again = true
		st.head.RetriedReset = true
		return true, e
	}
	st.routeTimedOut(up, err)
	return false, nil
}
