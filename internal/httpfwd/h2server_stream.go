package httpfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// h2Stream is one request of an HTTP/2 client connection.
type h2Stream struct {
	hc    *h2Conn
	w     http.ResponseWriter
	r     *http.Request
	start time.Time
	head  RequestHead
	rec   AccessRecord
	tel   telState
	reqID [36]byte
	body  *h2ReqBody
	// replay is the body held for a route's retries and mirror (h2replay.go), nil when it streams.
	replay []byte
	url    *url.URL        // the request target as the transports write it; forward sets its Host
	ctx    context.Context // the client's stream, ended early by a pause past IdleTimeout
	idle   idleWatch
	extra  []Field // the Upstream's ResponseFields
	rt     h2Route // the route's Actions, when it has them
	// tryTimer cancels a try's context with errTryTimeout at the retry policy's perTryTimeout.
	tryTimer *time.Timer
}

// serve routes the stream and forwards it, retrying connect failures as the HTTP/1.1 path does.
func (st *h2Stream) serve() {
	s := st.hc.s
	st.tel.begin()
	// The id comes first, so that even a refused head is answered and logged with one.
	if id := h2RequestID(st.r.Header["X-Request-Id"]); id != "" {
		st.rec.RequestID = []byte(id)
	} else {
		st.rec.RequestID = newRequestID(&st.reqID)
	}
	if st.r.Method == "CONNECT" {
		st.fail(501, "CONNECT over HTTP/2 is not supported", nil)
		return
	}
	if status, msg := st.parseHead(); status != 0 {
		// As on the HTTP/1.1 path: a client's malformed head is worth a debug line only.
		st.hc.h.count.badRequests.Add(1)
		st.tel.flags |= telemetry.DownstreamProtocolError
		st.logFailure(slog.LevelDebug, "refused request head", status, errors.New(msg))
		st.writeSimple(status, msg, nil, st.errorBody(msg))
		st.log(status, nil)
		return
	}
	// Routers see the id, as on the HTTP/1.1 path, to name it in their own answers and logs.
	st.head.RequestID = st.rec.RequestID
	if st.head.looped(s.via) {
		s.stats.loops.Add(1)
		st.fail(508, "forwarding loop detected", nil)
		return
	}
	ctx, cancel := context.WithCancelCause(st.r.Context())
	defer cancel(nil)
	st.ctx = ctx
	// As on the HTTP/1.1 path, any pause while the response is awaited or a body moves
	// is bounded by IdleTimeout.
	st.idle.start(s.lim.StreamIdleTimeout, func() { cancel(errStreamIdle) })
	defer st.idle.stop()
	if st.r.Body != nil && st.r.Body != http.NoBody {
		st.body = &h2ReqBody{r: st.r.Body, idle: &st.idle, from: st.r.Trailer, maxFields: s.lim.MaxHeaders}
	}
	st.tries()
}

// tries routes and forwards the stream, routing again after a connect failure or an answer
// the route's retry policy retries.
func (st *h2Stream) tries() {
	s := st.hc.s
	var held *ClusterLimits // the cluster whose in-flight slot the stream holds
	defer func() { held.endRequest() }()
	for attempt := 0; ; attempt++ {
		up, rej := s.Router.Route(&st.head, attempt)
		st.head.RetriedStatus, st.head.RetriedReset = 0, false // until a try retries again
		if rej != nil {
			st.reject(rej)
			return
		}
		if up.Key == "" {
			up.Key = up.Addr
		}
		st.rec.Upstream = up.Key
		st.tel.route(&up)
		if attempt == 0 && up.Actions != nil {
			done, cancel := st.beginActions(up.Actions)
			if cancel != nil {
				defer cancel()
			}
			if done || !st.holdBody(up.Actions) {
				return
			}
		}
		if !st.admit(&up, &held) {
			return
		}
		st.rt.attempt = attempt
		retry, err := st.forward(&up)
		if !retry {
			return
		}
		if st.rt.again {
			// The route's policy retries the answer the upstream gave, on another endpoint.
			st.rt.again = false
			s.stats.retries.Add(1)
			continue
		}
		st.logFailure(slog.LevelDebug, "upstream connect attempt failed", 0, fmt.Errorf("attempt %d: %w", attempt, err))
		if attempt+1 >= st.connectTries(&up) {
			st.tel.exhausted(attempt)
			st.fail(503, connectReason(err), err)
			return
		}
	}
}

// parseHead builds the RequestHead the Router sees. The stream is written out as the HTTP/1.1
// head an origin-form request would have, with :authority as its Host, and parsed by the
// same parser: an HTTP/2 request is then routed, and refused, exactly as its HTTP/1.1 twin.
// It returns a status and reason when the request must be refused.
func (st *h2Stream) parseHead() (int, string) {
	r := st.r
	if strings.IndexByte(r.Host, '%') >= 0 {
		// A zone names an interface of this host; no upstream is reached through one.
		return 400, "IPv6 zone in the authority"
	}
	if !h2Clean(r.Host) || strings.ContainsAny(r.Host, " \t") {
		// Blanks too: the parser would trim them off a Host field, not refuse them.
		return 400, "invalid host"
	}
	if !h2Clean(r.RequestURI) {
		return 400, "invalid request target"
	}
	var err error
	if st.url, err = targetURL(r.RequestURI); err != nil {
		return 400, "request target cannot be forwarded as sent"
	}
	raw := make([]byte, 0, 256)
	raw = append(raw, r.Method...)
	raw = append(raw, ' ')
	raw = append(raw, r.RequestURI...)
	raw = append(raw, " HTTP/1.1\r\nHost: "...)
	raw = append(raw, r.Host...)
	raw = append(raw, "\r\n"...)
	for name, values := range r.Header {
		if name == "Host" || !validName(name) {
			continue
		}
		for _, v := range values {
			if !h2Clean(v) {
				return 400, "invalid header field value"
			}
			raw = append(append(append(append(raw, name...), ": "...), v...), "\r\n"...)
		}
	}
	raw = append(raw, "\r\n"...)
	st.head.RemoteAddr, st.head.LocalAddr = st.hc.remote, st.hc.local
	st.head.maxFields = st.hc.s.lim.MaxHeaders
	if err = st.head.parse(raw); err != nil {
		var pe *parseError
		if errors.As(err, &pe) {
			st.hc.s.stats.countRefusal(pe)
			return pe.status, pe.msg
		}
		return 400, err.Error()
	}
	return 0, ""
}

// h2RequestID returns the client's request id: as on the HTTP/1.1 path, the first x-request-id
// value that is not empty once its blanks are trimmed, so that a stream carrying several ids is
// logged and forwarded with the same one. It returns "" when there is none, or when that value
// holds bytes the head would be refused for, so that the refusal carries an id of our own.
func h2RequestID(values []string) string {
	for _, v := range values {
		if v = strings.Trim(v, " \t"); v != "" {
			if !h2Clean(v) {
				return ""
			}
			return v
		}
	}
	return ""
}

// h2Clean reports whether v has no control characters other than tab: such bytes would
// split the head written for the parser.
func h2Clean(v string) bool {
	for i := range len(v) {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// h2HopByHop lists the fields that belong to one connection (RFC 9110 §7.6.1) and so are
// not forwarded, as the HTTP/1.1 path does not forward them; TE: trailers is kept towards h2c
// upstreams only.
var h2HopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Proxy-Authorization": true, "Proxy-Authenticate": true, "Host": true,
	"Content-Length": true, // the transports frame the body themselves
}

// forward sends the stream to up. It reports retry when the connect failed before any of
// the request body was consumed; otherwise it has answered the client.
func (st *h2Stream) forward(up *Upstream) (retry bool, err error) {
	s := st.hc.s
	h := st.hc.h
	out, h2c := st.upstreamRequest(up)
	if m := st.mirrorOf(); m != nil {
		st.mirror(m, out)
	}
	var rt http.RoundTripper = h.h1
	st.extra = up.ResponseFields
	ctx := context.WithValue(st.ctx, h2cDialKey{}, &h2cDial{up: *up, timeout: up.Limits.connectTimeout(s.lim.ConnectTimeout)})
	var wait capWait
	if h2c {
		rt = s.pool.h2c()
	} else {
		defer h.up.end(up.Key)
		ctx = httptrace.WithClientTrace(ctx, wait.trace(h.up.begin(up.Key), s.lim.MaxUpstreamConns))
	}
	ctx, stopTry := st.perTry(ctx)
	defer stopTry()
	st.tel.sending(s)
	resp, err := rt.RoundTrip(out.WithContext(ctx))
	if st.tryTimer != nil {
		// As Envoy's, a try's timeout ends with the response head.
		st.tryTimer.Stop()
	}
	if err == nil {
		st.tel.answered(s)
	}
	if err != nil && context.Cause(ctx) == errTryTimeout {
		return st.tryTimedOut(up, err)
	}
	if wait.overflowed() {
		h.count.upstreamOverflows.Add(1)
	}
	if err != nil {
		if wait.overflowed() && !wait.got.Load() && context.Cause(st.ctx) == errStreamIdle {
			// Envoy answers a request its circuit breaker holds back 503 too. The
			// upstream is busy, not failing: it is not reported for ejection.
			s.Router.Done(*up, nil)
			st.tel.flags |= telemetry.UpstreamOverflow
			st.fail(503, "upstream connection limit reached", fmt.Errorf("no connection to %s free within %v: %w",
				up.Key, s.lim.StreamIdleTimeout, err))
			return false, nil
		}
		return st.roundTripFailed(up, err)
	}
	defer resp.Body.Close()
	if st.retriesStatus(resp.StatusCode) {
		s.done(*up, resp.StatusCode, nil)
		st.rt.again = true
		st.head.RetriedStatus = resp.StatusCode
		return true, nil
	}
	if a := st.rt.act; a != nil && a.Retry.exhausted(resp.StatusCode, st.rt.attempt) {
		st.tel.flags |= telemetry.RetriesExhausted
	}
	if resp.StatusCode < 200 {
		// Only a 101 gets here, and HTTP/2 has no upgrades: answer, rather than reset, the
		// stream, since nothing of the response reached the client yet.
		err := fmt.Errorf("%w: status %d", ErrBadResponse, resp.StatusCode)
		s.Router.Done(*up, err)
		st.fail(502, "upstream switched protocols", err)
		return false, nil
	}
	upErr := st.relay(resp)
	s.done(*up, resp.StatusCode, upErr)
	st.log(resp.StatusCode, upErr)
	if upErr != nil {
		// The response broke off: reset the stream, so the client does not take a cut
		// body for a whole one. ErrAbortHandler is how net/http handlers ask for a reset.
		panic(http.ErrAbortHandler)
	}
	return false, nil
}

// upstreamRequest builds the request sent to up, and reports whether up speaks h2c.
func (st *h2Stream) upstreamRequest(up *Upstream) (*http.Request, bool) {
	r := st.r
	target := *st.url // a copy: a retry may go to another upstream
	target.Host = h2cHost(up.Key)
	out := &http.Request{
		Method:     r.Method,
		URL:        &target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(r.Header)+3),
		Host:       r.Host,
	}
	if up.Host != "" {
		out.Host = up.Host
	}
	h2c := up.Protocol == H2C
	st.copyHeader(out.Header, h2c)
	for _, f := range up.Header {
		// The client's fields arrive under canonical keys, so this replaces them all.
		out.Header[textproto.CanonicalMIMEHeaderKey(f.Name)] = []string{f.Value}
	}
	if h2c {
		out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/2.0", 2, 0
	}
	st.applyRequestActions(out)
	st.attachBody(out)
	return out, h2c
}

// copyHeader fills dst with the stream's fields that go upstream: the hop-by-hop ones left
// out, the request id and our Via added.
func (st *h2Stream) copyHeader(dst http.Header, h2c bool) {
	for k, vs := range st.r.Header {
		switch {
		case k == "Te" && h2c && len(vs) == 1 && strings.EqualFold(vs[0], "trailers"):
			// The one TE value HTTP/2 allows; gRPC servers insist on it.
		case h2HopByHop[k], k == "Via", k == "X-Request-Id":
			// x-request-id is ours to send, once: several would let the upstream log an id
			// other than the one this proxy logged.
			continue
		}
		// Cookies a client split over several fields arrive joined: x/net's server does
		// that (RFC 9113 §8.2.3), so an HTTP/1.1 upstream gets one Cookie field.
		dst[k] = vs
	}
	if _, ok := dst["User-Agent"]; !ok {
		dst["User-Agent"] = []string{""} // keeps net/http from adding its own
	}
	dst["X-Request-Id"] = []string{string(st.rec.RequestID)}
	// Our name ends the Via list, in one field as the HTTP/1.1 path writes it, so that a
	// stream routed back to this proxy is answered 508 instead of forwarded again.
	via := append(slices.Clip(st.r.Header["Via"]), "1.1 "+st.hc.s.via)
	dst["Via"] = []string{strings.Join(via, ", ")}
}

// roundTripFailed answers a request the transport could not complete, or asks for a retry.
func (st *h2Stream) roundTripFailed(up *Upstream, err error) (retry bool, _ error) {
	s := st.hc.s
	switch {
	case st.r.Context().Err() != nil:
		// The client reset the stream or went away: nobody to answer, nobody to blame.
		s.Router.Done(*up, nil)
		st.tel.flags |= telemetry.DownstreamClosed
		st.log(0, err)
		return false, nil
	case context.Cause(st.ctx) == errRouteTimeout:
		st.routeTimedOut(up, err)
		return false, nil
	case errors.Is(err, ErrOverflow):
		// The cluster's tcp.maxConnections held the stream back: 503 UO at once, as on HTTP/1.1.
		s.Router.Done(*up, err)
		st.tel.flags |= telemetry.UpstreamOverflow
		st.fail(503, "upstream connection pool limit reached", err)
		return false, nil
	case context.Cause(st.ctx) == errStreamIdle:
		err = fmt.Errorf("%w: no response within %v: %w", ErrUpstreamTimeout, s.lim.StreamIdleTimeout, err)
		s.Router.Done(*up, err)
		st.fail(504, "upstream timed out", err)
		return false, nil
	case st.body != nil && st.body.tooMany.Load():
		s.Router.Done(*up, nil)
		s.stats.tooManyHeaders.Add(1)
		st.tel.flags |= telemetry.DownstreamProtocolError
		st.fail(431, "too many trailer fields", err)
		return false, nil
	case st.body != nil && st.body.err.Load() != nil:
		s.Router.Done(*up, nil)
		st.tel.flags |= telemetry.DownstreamProtocolError
		st.fail(400, "reading the request body failed", err)
		return false, nil
	case errors.Is(err, ErrLoop):
		s.Router.Done(*up, err)
		s.stats.loops.Add(1)
		st.fail(508, "loop detected", err)
		return false, nil
	case errors.Is(err, ErrConnect):
		s.Router.Done(*up, err)
		if st.bodyUnsent() {
			return true, err
		}
		st.fail(503, connectReason(err), err)
		return false, nil
	case isTimeout(err):
		err = fmt.Errorf("%w: %w", ErrUpstreamTimeout, err)
		s.Router.Done(*up, err)
		st.fail(504, "upstream timed out", err)
		return false, nil
	}
	err = fmt.Errorf("%w: %w", ErrUpstreamClosed, err)
	s.Router.Done(*up, err)
	if st.retriesReset() {
		st.rt.again = true
		st.head.RetriedReset = true
		return true, err
	}
	if st.rt.act != nil && st.rt.attempt > 0 {
		st.tel.flags |= telemetry.RetriesExhausted
	}
	st.fail(502, "upstream connection failed", err)
	return false, nil
}

// relay writes the upstream's response to the stream, flushing each read so that streamed
// messages (gRPC) arrive at once, then its trailers. It returns the upstream's fault, if any.
func (st *h2Stream) relay(resp *http.Response) error {
	w := st.w
	hdr := w.Header()
	var named []string // fields the upstream's Connection field lists
	for _, v := range resp.Header["Connection"] {
		for _, item := range strings.Split(v, ",") {
			named = append(named, http.CanonicalHeaderKey(strings.TrimSpace(item)))
		}
	}
	for k, vs := range resp.Header {
		if k != "Content-Length" && h2HopByHop[k] || containsString(named, k) {
			continue
		}
		hdr[k] = vs
	}
	addFields(hdr, st.extra)
	st.applyResponseActions(hdr)
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	if flusher != nil && resp.ContentLength != 0 {
		// A streaming response may send nothing for a while. An empty one is not flushed
		// early, so that headers the upstream ended the stream with (a gRPC trailers-only
		// response, grpc-status among them) end this stream too, which gRPC clients insist on.
		flusher.Flush()
	}
	buf := make([]byte, bulkSize)
	for {
		n, err := resp.Body.Read(buf)
		st.idle.touch()
		if n > 0 {
			st.rec.ResponseBytes += int64(n)
			if _, werr := w.Write(buf[:n]); werr != nil {
				st.tel.flags |= telemetry.DownstreamClosed
				return nil // the client went away; not the upstream's fault
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if context.Cause(st.ctx) == errStreamIdle {
				return fmt.Errorf("%w: the response paused for %v", ErrUpstreamTimeout, st.hc.s.lim.StreamIdleTimeout)
			}
			if st.r.Context().Err() != nil || st.body != nil && st.body.err.Load() != nil {
				st.tel.flags |= telemetry.DownstreamClosed
				return nil
			}
			return fmt.Errorf("%w: reading the response body: %w", ErrUpstreamClosed, err)
		}
	}
	if overFieldCap(resp.Trailer, st.hc.s.lim.MaxHeaders) {
		st.hc.s.stats.tooManyHeaders.Add(1)
		return fmt.Errorf("%w: more than %d trailer fields", ErrBadResponse, st.hc.s.lim.MaxHeaders)
	}
	for k, vs := range resp.Trailer {
		if validName(k) && !forbiddenInTrailer(k) {
			hdr[http.TrailerPrefix+k] = vs
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// reject answers with the Router's Reject.
func (st *h2Stream) reject(r *Reject) {
	status := r.Status
	if status < 200 || status > 599 {
		status = 502 // see Reject.Status
	}
	body := r.Body
	if body != "" {
		body = strings.TrimSuffix(body, "\n") + "; request id " + string(st.rec.RequestID) + "\n"
	}
	st.writeSimple(status, r.Reason, r.Header, body)
	st.rec.Upstream = "" // nothing was forwarded, as the HTTP/1.1 path records it
	st.tel.refused(r)
	st.log(status, nil)
}

// fail answers with an error the engine generated. As on the HTTP/1.1 path, the client gets
// only the reason and the request id; err, which may name endpoints and resolvers, goes to the
// rate-limited failure log, written first so it is there once the client holds the id.
func (st *h2Stream) fail(status int, reason string, err error) {
	st.logFailure(slog.LevelWarn, reason, status, err)
	st.writeSimple(status, reason, nil, st.errorBody(reason))
	st.log(status, err)
}

// errorBody is the body of an error response of the engine's own.
func (st *h2Stream) errorBody(reason string) string {
	return "meshentry: " + reason + "; request id " + string(st.rec.RequestID) + "\n"
}

// logFailure logs, rate-limited, why the stream was answered with an error of the engine's own.
func (st *h2Stream) logFailure(level slog.Level, msg string, status int, err error) {
	st.hc.s.logFailure(level, msg, failureInfo{
		requestID: st.rec.RequestID, remote: addrString(st.hc.remote),
		upstream: st.rec.Upstream, status: status, err: err,
	})
}

// writeSimple writes a complete response made here, with a text body and the request id in
// an x-request-id field.
func (st *h2Stream) writeSimple(status int, reason string, fields []Field, body string) {
	hdr := st.w.Header()
	if body != "" {
		hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
	}
	if len(st.rec.RequestID) > 0 {
		hdr["X-Request-Id"] = []string{string(st.rec.RequestID)}
	}
	if reason != "" {
		hdr["X-Meshentry-Reason"] = []string{sanitize(reason)}
	}
	for _, f := range fields {
		// The engine's id is the one field it always sends itself.
		if k := http.CanonicalHeaderKey(f.Name); validName(f.Name) && k != "X-Request-Id" {
			hdr[k] = append(hdr[k], sanitize(f.Value))
		}
	}
	if status != 204 && status != 304 {
		hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	st.w.WriteHeader(status)
	if st.r.Method != "HEAD" && status != 204 && status != 304 {
		io.WriteString(st.w, body)
	}
}

// sanitize replaces control characters with spaces, so a caller-supplied value is sent.
func sanitize(v string) string {
	if h2Clean(v) {
		return v
	}
	b := []byte(v)
	for i, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}

// log reports the finished stream to the access log.
func (st *h2Stream) log(status int, err error) {
	st.report(status, err)
	log := st.hc.s.AccessLog
	if log == nil {
		return
	}
	r := &st.rec
	r.Start = st.start
	r.Duration = time.Since(st.start)
	r.Request = &st.head
	r.Status = status
	r.Err = err
	if st.body != nil {
		r.RequestBytes = st.body.n.Load()
	}
	log(r)
}
