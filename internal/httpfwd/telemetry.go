package httpfwd

import (
	"errors"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// telState gathers what a request's telemetry record needs on the way through the engine. It
// lives in the conn and is reset per request, so a request with a Sink set allocates nothing
// for it.
type telState struct {
	rec   telemetry.Request
	flags telemetry.Flags    // set where a failure is known; errFlags adds the rest
	svc   *telemetry.Service // where the Router sent the request
	host  string             // the endpoint address last tried
	sent  time.Time          // when the request went upstream
	upDur time.Duration      // sent to response head; negative until one arrived
	scr   [2][]byte          // scratch: the method and a path given a leading '/'
}

// begin resets t for a new request.
func (t *telState) begin() {
	t.flags, t.svc, t.host, t.upDur = 0, nil, "", -1
}

// route notes the upstream a request is sent to.
func (t *telState) route(up *Upstream) {
	t.svc, t.host = up.Service, up.Endpoint
	if t.host == "" {
		t.host = up.Addr
	}
}

// refused notes a Router's Reject: its flags and the service it names. The endpoint an
// earlier attempt tried stays, as Envoy logs the last host a request went to.
func (t *telState) refused(r *Reject) {
	t.flags |= r.Flags
	if r.Service != nil {
		t.svc = r.Service
	}
}

// sending marks the request leaving for the upstream; the clock is read only when a Sink
// will see the result.
func (t *telState) sending(s *Server) {
	if s.Telemetry != nil {
		t.sent = time.Now()
	}
}

// answered marks the upstream's response head arriving.
func (t *telState) answered(s *Server) {
	if s.Telemetry != nil && !t.sent.IsZero() {
		t.upDur = time.Since(t.sent)
	}
}

// flagsWith adds to the flags set on the way those err implies, unless the client went away
// (DC), which is then why the exchange failed: a dial or read it canceled is not the upstream's.
func (t *telState) flagsWith(status int, err error) telemetry.Flags {
	if t.flags&telemetry.DownstreamClosed != 0 {
		return t.flags
	}
	return t.flags | errFlags(status, err)
}

// errFlags are the response flags an error the engine ended an exchange with implies; status
// is what the client was sent. A timeout is UT when the engine answered it (504) or nothing
// reached the client, and SI when the exchange stalled after the response had begun or while
// the client's body was read.
func errFlags(status int, err error) telemetry.Flags {
	switch {
	case err == nil, errors.Is(err, ErrLoop):
		return 0
	case errors.Is(err, ErrConnect):
		return telemetry.UpstreamConnectFailure
	case errors.Is(err, ErrUpstreamTimeout) && (status == 504 || status == 0):
		return telemetry.UpstreamTimeout
	case stalled(err):
		return telemetry.StreamIdleTimeout
	case errors.Is(err, ErrBadResponse):
		return telemetry.UpstreamProtocolError
	case errors.Is(err, ErrUpstreamClosed):
		return telemetry.UpstreamReset
	}
	return 0
}

// report hands the finished request to the Server's Sink.
func (c *conn) report(start time.Time, status int, err error) {
	sink := c.s.Telemetry
	if sink == nil {
		return
	}
	t, req := &c.tel, &c.req
	r := &t.rec
	r.Start, r.Duration, r.UpstreamTime = start, time.Since(start), t.upDur
	r.Protocol = "HTTP/1.1"
	if req.ProtoMinor == 0 {
		r.Protocol = "HTTP/1.0"
	}
	r.Method, r.Path, r.Authority, r.ForwardedFor, r.UserAgent = nil, nil, nil, nil, nil
	if req.Method != "" {
		// An unparsed head (Method "") has nothing trustworthy to report.
		t.scr[0] = append(t.scr[0][:0], req.Method...)
		r.Method = t.scr[0]
		r.Path = logPath(req, &t.scr[1])
		r.Authority = requestAuthority(req)
		r.ForwardedFor = req.Header("x-forwarded-for")
		r.UserAgent = req.Header("user-agent")
	}
	r.RequestID = c.rec.RequestID
	r.Status = status
	r.Flags = t.flagsWith(status, err)
	r.RequestBytes, r.ResponseBytes = c.rec.RequestBytes, c.rec.ResponseBytes
	r.UpstreamHost, r.Service = t.host, t.svc
	r.DownstreamRemote, r.DownstreamLocal = req.RemoteAddr, req.LocalAddr
	sink.Request(r)
}

// logPath is Envoy's :path of a request: the origin-form target, or the path of an
// absolute-form one, which always starts with '/'.
func logPath(req *RequestHead, scratch *[]byte) []byte {
	if !req.Absolute {
		return req.Target
	}
	if len(req.Path) > 0 && req.Path[0] == '/' {
		return req.Path
	}
	*scratch = append(append((*scratch)[:0], '/'), req.Path...)
	return *scratch
}

// requestAuthority is Envoy's :authority: an absolute-form target's authority, else the Host
// field.
func requestAuthority(req *RequestHead) []byte {
	if req.Absolute || req.authority.end > req.authority.start {
		return req.raw[req.authority.start:req.authority.end]
	}
	if req.hosts > 0 {
		return req.raw[req.host.start:req.host.end]
	}
	return nil
}

// report hands the finished stream to the Server's Sink. HTTP/2 streams allocate per request
// anyway (net/http's server), so the record is filled from the stream's http.Request.
func (st *h2Stream) report(status int, err error) {
	sink := st.hc.s.Telemetry
	if sink == nil {
		return
	}
	r := &telemetry.Request{
		Start: st.start, Duration: time.Since(st.start), UpstreamTime: st.tel.upDur,
		Protocol: "HTTP/2", Method: []byte(st.r.Method), Path: []byte(st.r.RequestURI),
		Authority: []byte(st.r.Host), RequestID: st.rec.RequestID, Status: status,
		Flags:        st.tel.flagsWith(status, err),
		UpstreamHost: st.tel.host, Service: st.tel.svc, ResponseBytes: st.rec.ResponseBytes,
		DownstreamRemote: st.hc.remote, DownstreamLocal: st.hc.local,
	}
	if v := st.r.Header["X-Forwarded-For"]; len(v) > 0 {
		r.ForwardedFor = []byte(v[0])
	}
	if v := st.r.Header["User-Agent"]; len(v) > 0 {
		r.UserAgent = []byte(v[0])
	}
	if st.body != nil {
		r.RequestBytes = st.body.n.Load()
	}
	sink.Request(r)
}

// exhausted notes that the last connect attempt failed: with more than one made, Envoy's
// retries-exhausted flag joins the connect failure.
func (t *telState) exhausted(attempt int) {
	if attempt > 0 {
		t.flags |= telemetry.RetriesExhausted
	}
}

// beginRecords resets the access record and the telemetry state for a new request.
func (c *conn) beginRecords() {
	c.rec.Upstream = ""
	c.rec.RequestBytes, c.rec.ResponseBytes = 0, 0
	c.tel.begin()
}

// connectFailed answers a request whose last connect attempt failed.
func (c *conn) connectFailed(start time.Time, attempt int, err error) bool {
	c.tel.exhausted(attempt)
	return c.fail(start, 503, connectReason(err), err)
}

// Reasoner is implemented by an error from Upstream.Dial that can say, in one line fit for the
// client's x-meshentry-reason, why the connection failed (a TLS peer refused, naming identities).
type Reasoner interface{ Reason() string }

// connectReason is the reason sent for a failed connect: the dial error's own when it has one.
func connectReason(err error) string {
	var r Reasoner
	if errors.As(err, &r) {
		return r.Reason()
	}
	return "upstream connect failed"
}
