package httpfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// serveRequest forwards the parsed request and relays the response; it reports whether the
// client connection may carry another request.
func (c *conn) serveRequest(ctx context.Context) bool {
	s := c.s
	req := &c.req
	start := time.Now()
	if req.Method == "CONNECT" {
		if s.OnConnect == nil {
			return c.fail(start, 501, "CONNECT is not supported here", nil)
		}
		buffered, _ := c.br.Peek(c.br.Buffered())
		c.nc.SetDeadline(time.Time{})
		c.hijacked.Store(true)
		s.OnConnect(ctx, req, c.nc, buffered)
		return false
	}
	c.rec.Upstream = ""
	c.rec.RequestBytes, c.rec.ResponseBytes = 0, 0
	if req.has(flagRequestID) {
		c.rec.RequestID = req.Header("x-request-id")
	} else {
		c.rec.RequestID = newRequestID(&c.reqID)
	}

	var up Upstream
	var uc *upConn
	for attempt := 0; ; attempt++ {
		var rej *Reject
		up, rej = s.Router.Route(req, attempt)
		if rej != nil {
			return c.reject(start, rej)
		}
		if up.Key == "" {
			up.Key = up.Addr
		}
		c.rec.Upstream = up.Key
		if up.Protocol == H2C {
			keep, retry := c.serveH2C(ctx, start, &up)
			if !retry {
				return keep
			}
			if attempt+1 >= s.lim.MaxAttempts {
				return c.fail(start, 503, "upstream connect failed", ErrConnect)
			}
			continue
		}
		var err error
		if uc = s.pool.get(up.Key, start); uc != nil {
			break
		}
		if uc, err = c.dial(ctx, &up); err == nil {
			break
		}
		s.Router.Done(up, err)
		s.log.Debug("upstream connect failed", "upstream", up.Key, "attempt", attempt, "err", err)
		if attempt+1 >= s.lim.MaxAttempts {
			return c.fail(start, 503, "upstream connect failed", err)
		}
	}
	for retried := false; ; retried = true {
		keep, upErr, retry := c.roundTrip(start, uc, &up, !retried)
		if !retry {
			s.Router.Done(up, upErr)
			return keep
		}
		// The pooled connection had been closed by the upstream before our request reached
		// it; nothing was processed, so a fresh connection may carry it.
		var err error
		if uc, err = c.dial(ctx, &up); err != nil {
			s.Router.Done(up, err)
			return c.fail(start, 503, "upstream connect failed", err)
		}
	}
}

// dial opens a new connection to up within the connect timeout.
func (c *conn) dial(ctx context.Context, up *Upstream) (*upConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.lim.ConnectTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if up.Dial != nil {
		nc, err = up.Dial(ctx)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", up.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConnect, up.Key, err)
	}
	return newUpConn(up.Key, nc), nil
}

// idempotent reports the methods a proxy may resend (RFC 9110 §9.2.2), or a request marked
// with an idempotency key.
func (r *RequestHead) idempotent() bool {
	switch r.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return r.Header("idempotency-key") != nil || r.Header("x-idempotency-key") != nil
}

// roundTrip sends the request on uc and relays the response. It returns whether the client
// connection stays usable and the upstream's fault, if any. With mayRetry set and uc a reused
// connection that failed before any response byte, it writes nothing to the client and asks
// for a retry instead.
func (c *conn) roundTrip(start time.Time, uc *upConn, up *Upstream, mayRetry bool) (keep bool, upErr error, retry bool) {
	s := c.s
	lim := &s.lim
	req := &c.req
	hasBody := req.HasBody()
	// A pooled connection may have been closed by the upstream meanwhile; the request can go
	// again on a new one when it failed before any response byte and none of its body was
	// consumed (RFC 9110 §9.2.2).
	staleOK := mayRetry && uc.reused // and idempotent, checked when it matters
	c.current.Store(uc)
	defer c.current.Store(nil)
	c.ubr.Reset(uc.nc)
	c.ubw.Reset(uc.nc)
	uc.nc.SetDeadline(start.Add(lim.IdleTimeout))
	c.writeRequestHead(up)

	bodyDone := !hasBody // the whole request body went upstream
	async := false       // the body is streaming on its own goroutine
	final := false       // a final response arrived before the body was sent
	var bodyErr error
	if hasBody && req.has(flagExpectContinue) && req.ProtoMinor == 1 {
		if err := c.ubw.Flush(); err != nil {
			return c.upstreamFailed(start, uc, staleOK, err)
		}
		uc.nc.SetReadDeadline(time.Now().Add(lim.ExpectContinueTimeout))
		_, err := c.ubr.Peek(1)
		uc.nc.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
		switch {
		case err == nil:
			status, err := c.readInterim(uc, true)
			if err != nil {
				uc.nc.Close()
				return c.interimFailed(start, err)
			}
			final = status >= 200 || status == 101
		case !isTimeout(err):
			return c.upstreamFailed(start, uc, staleOK, err)
		}
		// A timeout means the upstream ignores Expect: send the body anyway.
	}
	if hasBody && !final {
		staleOK = false
		if !req.Chunked() && int64(c.br.Buffered()) >= req.length {
			// The whole body is at hand: it leaves with the head in one write.
			c.up.reset(c.br, c.nc, c.ubw, uc.nc, lim.IdleTimeout)
			if err := c.sendBody(uc); err != nil {
				bodyErr = err
			} else {
				bodyDone = true
			}
		} else {
			// Stream the body while waiting for the response, as the upstream may answer
			// (or echo) before reading all of it; the response wait starts counting when
			// the body is through.
			uc.nc.SetReadDeadline(time.Time{})
			c.up.reset(c.br, c.nc, c.ubw, uc.nc, lim.IdleTimeout)
			async = true
			go c.streamBody(uc)
		}
	}
	if !async {
		if err := c.ubw.Flush(); err != nil && bodyErr == nil {
			bodyErr = &copyError{err: err}
		}
		if bodyErr != nil && !hasBody {
			return c.upstreamFailed(start, uc, staleOK, bodyErr)
		}
	}
	if !final {
		if c.ubr.Buffered() == 0 {
			if _, err := c.ubr.Peek(1); err != nil {
				if async {
					bodyErr = c.stopBody(uc)
				}
				if readFailed(bodyErr) {
					uc.nc.Close()
					return c.clientBodyFailed(start, bodyErr), nil, false
				}
				return c.upstreamFailed(start, uc, staleOK, err)
			}
		}
		if _, err := c.readInterim(uc, false); err != nil {
			uc.nc.Close()
			if async {
				c.stopBody(uc)
			}
			return c.interimFailed(start, err)
		}
	}
	if async {
		select {
		case bodyErr = <-c.bodyDone:
			async, bodyDone = false, bodyErr == nil
		default:
		}
	}
	if readFailed(bodyErr) {
		// The client's body broke off but the upstream answered anyway: relay that answer
		// unless the body was malformed.
		if errors.Is(bodyErr, errBadChunk) {
			uc.nc.Close()
			return c.clientBodyFailed(start, bodyErr), nil, false
		}
	}
	resp := &c.resp
	if resp.status == 101 {
		if !req.WantsUpgrade() || !bodyDone {
			uc.nc.Close()
			if async {
				c.stopBody(uc)
			}
			e := fmt.Errorf("%w: unsolicited 101 Switching Protocols", ErrBadResponse)
			return c.fail(start, 502, "malformed upstream response", e), e, false
		}
		c.tunnel(start, uc)
		return false, nil, false
	}

	// Response framing, RFC 9112 §6.3.
	noBody := resp.noBody(req.Method)
	chunked := !noBody && resp.has(flagChunked)
	toEOF := !noBody && !chunked && (resp.has(flagTE) || resp.length < 0)
	dechunk := chunked && req.ProtoMinor == 0
	keep = req.KeepAlive() && bodyDone && !toEOF && !dechunk && !s.shutting.Load()
	if !bodyDone {
		c.linger = true
	}

	c.nc.SetWriteDeadline(time.Now().Add(lim.IdleTimeout))
	c.writeResponseHead(keep, dechunk)
	var err error
	if !noBody {
		p := &c.down
		p.reset(c.ubr, uc.nc, c.bw, c.nc, lim.IdleTimeout)
		switch {
		case chunked && dechunk:
			err = p.copyChunked(chunkPayload, lim.MaxHeaderBytes)
		case chunked:
			err = p.copyChunked(chunkRelay, lim.MaxHeaderBytes)
		case toEOF:
			err = p.copyToEOF()
		default:
			err = p.copyN(resp.length)
		}
		c.rec.ResponseBytes = p.moved
	}
	if async {
		// The response is complete but the body may not be: then the upstream does not
		// want the rest, so end the copy and the connection.
		bodyErr = c.stopBody(uc)
		bodyDone = bodyErr == nil
	}
	if err != nil {
		keep = false
		if readFailed(err) {
			upErr = fmt.Errorf("%w: reading the response body: %w", ErrUpstreamClosed, errors.Unwrap(err))
			if errors.Is(err, errBadChunk) {
				upErr = fmt.Errorf("%w: %w", ErrBadResponse, errors.Unwrap(err))
			}
		}
	}
	if c.down.waited {
		// The deadline of the last write may have been used up waiting for the upstream.
		c.nc.SetWriteDeadline(time.Now().Add(lim.IdleTimeout))
	}
	// The upstream connection is free once its response is read: pool it before the
	// client sees the response, so the client's next request can have it.
	upKeep := err == nil && bodyDone && !toEOF && resp.keepAlive() &&
		!(resp.protoMinor == 0 && resp.has(flagTE)) && c.ubr.Buffered() == 0
	if upKeep {
		s.pool.put(uc, time.Now())
	} else {
		uc.nc.Close()
	}
	// On error the client learns of the cut from the truncated body and the closed connection.
	if ferr := c.bw.Flush(); ferr != nil && err == nil {
		keep = false
		err = ferr
	}
	c.logAccess(start, up.Key, resp.status, firstErr(upErr, err))
	return keep, upErr, false
}

// upstreamFailed handles an upstream connection that failed before a response arrived: it asks
// for a retry when that is safe, and otherwise answers 502 or 504.
func (c *conn) upstreamFailed(start time.Time, uc *upConn, staleOK bool, err error) (bool, error, bool) {
	uc.nc.Close()
	if staleOK && !isTimeout(err) && c.req.idempotent() {
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
		if ferr := c.ubw.Flush(); ferr != nil {
			err = &copyError{err: ferr}
		}
	}
	if readFailed(err) {
		// The client failed: abort the exchange, which also wakes the response wait.
		uc.nc.Close()
	} else {
		// Body through (or the upstream stopped taking it): now the response is due.
		uc.nc.SetReadDeadline(time.Now().Add(c.s.lim.IdleTimeout))
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
	c.up.stop.Store(true)
	uc.nc.Close()
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.linger = true
	return <-c.bodyDone
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
		err = p.copyChunked(chunkCanonical, c.s.lim.MaxHeaderBytes)
	} else {
		err = p.copyN(c.req.length)
	}
	c.rec.RequestBytes = p.moved
	return err
}

// clientBodyFailed ends a request whose body the client could not deliver: bad chunked framing
// gets a 400, a vanished client nothing.
func (c *conn) clientBodyFailed(start time.Time, err error) bool {
	if errors.Is(err, errBadChunk) {
		return c.fail(start, 400, "invalid chunked request body", err)
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
			c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.IdleTimeout))
			c.writeResponseHead(true, false)
			if err := c.bw.Flush(); err != nil {
				// The writer keeps the error: nothing more can reach this client.
				return 0, fmt.Errorf("%w: %w", errClientWrite, err)
			}
		}
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
		c.logAccess(start, c.rec.Upstream, 0, err)
		return false, nil, false
	}
	return c.failUpstream(start, err), err, false
}

// failUpstream answers the client for an upstream fault found before any response was relayed.
func (c *conn) failUpstream(start time.Time, err error) bool {
	switch {
	case errors.Is(err, ErrUpstreamTimeout):
		return c.fail(start, 504, "upstream timed out", err)
	case errors.Is(err, ErrBadResponse):
		return c.fail(start, 502, "malformed upstream response", err)
	}
	return c.fail(start, 502, "upstream connection failed", err)
}

// writeRequestHead writes the head sent upstream: origin-form target, HTTP/1.1, Host, the
// end-to-end fields and an x-request-id.
func (c *conn) writeRequestHead(up *Upstream) {
	w := c.ubw
	req := &c.req
	raw := req.raw
	w.WriteString(req.Method)
	w.WriteByte(' ')
	if req.Absolute {
		switch {
		case len(req.Path) == 0 && req.Method == "OPTIONS":
			w.WriteByte('*')
		case len(req.Path) == 0 || req.Path[0] != '/':
			w.WriteByte('/')
		}
		w.Write(req.Path)
	} else {
		w.Write(req.Target)
	}
	w.WriteString(" HTTP/1.1\r\n")
	ownHost := true
	switch {
	case up.Host != "":
		w.WriteString("Host: ")
		w.WriteString(up.Host)
		w.WriteString("\r\n")
	case req.Absolute:
		w.WriteString("Host: ")
		w.Write(raw[req.authority.start:req.authority.end])
		w.WriteString("\r\n")
	case req.hosts == 0:
		w.WriteString("Host: ")
		w.WriteString(up.Addr)
		w.WriteString("\r\n")
	default:
		ownHost = false
	}
	upgrade := req.WantsUpgrade()
	for i := range req.fields {
		f := &req.fields[i]
		if !req.forwarded(f) && !(upgrade && f.kind == kindUpgrade) || ownHost && f.kind == kindHost ||
			f.kind == kindTransferEncoding {
			continue
		}
		w.Write(raw[f.name.start:f.value.end])
		w.WriteString("\r\n")
	}
	if req.Chunked() {
		// The one coding a request may have, spelt so that no upstream can read it otherwise.
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !req.has(flagRequestID) {
		w.WriteString("x-request-id: ")
		w.Write(c.rec.RequestID)
		w.WriteString("\r\n")
	}
	if upgrade {
		w.WriteString("Connection: Upgrade\r\n")
	}
	w.WriteString("\r\n")
}

// writeResponseHead writes c.resp to the client as HTTP/1.1 without its hop-by-hop fields.
func (c *conn) writeResponseHead(keep, dechunk bool) {
	w := c.bw
	resp := &c.resp
	raw := resp.raw
	w.WriteString("HTTP/1.1 ")
	w.Write(raw[resp.rest.start:resp.rest.end])
	w.WriteString("\r\n")
	upgrade := resp.status == 101
	for i := range resp.fields {
		f := &resp.fields[i]
		switch {
		case upgrade && (f.kind == kindUpgrade || f.kind == kindConnection):
		case f.kind == kindTransferEncoding:
			continue // written below
		case !resp.forwarded(f):
			continue
		case f.kind == kindContentLength && resp.has(flagTE):
			// Transfer-Encoding overrides Content-Length, which must not be forwarded.
			continue
		}
		w.Write(raw[f.name.start:f.value.end])
		w.WriteString("\r\n")
	}
	if resp.has(flagTE) && !dechunk {
		c.writeCodings()
	}
	switch {
	case upgrade || resp.status < 200:
	case !keep:
		w.WriteString("Connection: close\r\n")
	case c.req.ProtoMinor == 0:
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
}

// writeCodings writes the response's transfer codings as one field of bare names, so that the
// client reads them as the engine did: parameters, empty elements and the split over several
// fields, which recipients treat in different ways, are dropped.
func (c *conn) writeCodings() {
	w := c.bw
	resp := &c.resp
	n := 0
	for i := range resp.fields {
		f := &resp.fields[i]
		if f.kind != kindTransferEncoding {
			continue
		}
		v := resp.raw[f.value.start:f.value.end]
		for s := range listItems(v) {
			if n == 0 {
				w.WriteString("Transfer-Encoding: ")
			} else {
				w.WriteString(", ")
			}
			if name := codingName(v[s.start:s.end]); equalFold(name, "chunked") {
				w.WriteString("chunked")
			} else {
				w.Write(name)
			}
			n++
		}
	}
	if n > 0 {
		w.WriteString("\r\n")
	}
}

// reject answers with the Router's Reject. The connection stays open unless a request body,
// which is not read, would otherwise be mistaken for the next request.
func (c *conn) reject(start time.Time, r *Reject) bool {
	keep := c.req.KeepAlive() && !c.req.HasBody() && !c.s.shutting.Load()
	c.linger = c.linger || c.req.HasBody()
	status := r.Status
	if status < 200 || status > 599 {
		// A 1xx is not an answer: the client would wait for another response and read the
		// body as one. Other codes are not HTTP's.
		status = 502
	}
	c.writeSimple(status, r.Reason, r.Header, r.Body, !keep)
	c.logAccess(start, "", status, nil)
	return keep
}

// fail answers with an error the engine generated; it reports whether the connection may go
// on, which is only when no request body is left unread.
func (c *conn) fail(start time.Time, status int, reason string, err error) bool {
	keep := c.req.KeepAlive() && !c.req.HasBody() && status != 400 && !c.s.shutting.Load()
	c.linger = c.linger || c.req.HasBody() || status == 400
	c.writeSimple(status, reason, nil, reason+"\n", !keep)
	c.logAccess(start, c.rec.Upstream, status, err)
	return keep
}

// writeSimple writes a complete response made here, with a text body.
func (c *conn) writeSimple(status int, reason string, fields []Field, body string, close bool) {
	w := c.bw
	c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.IdleTimeout))
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(c.num[:0], int64(status), 10))
	w.WriteByte(' ')
	w.WriteString(http.StatusText(status))
	w.WriteString("\r\n")
	if body != "" {
		w.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	}
	if reason != "" {
		w.WriteString("x-meshentry-reason: ")
		writeSanitized(c, reason)
		w.WriteString("\r\n")
	}
	for _, f := range fields {
		if !validName(f.Name) {
			continue
		}
		w.WriteString(f.Name)
		w.WriteString(": ")
		writeSanitized(c, f.Value)
		w.WriteString("\r\n")
	}
	if status != 204 && status != 304 {
		// A 204 must not have the field, and a 304's would speak of a body it does not have.
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(c.num[:0], int64(len(body)), 10))
		w.WriteString("\r\n")
	}
	switch {
	case close:
		w.WriteString("Connection: close\r\n")
	case c.req.ProtoMinor == 0:
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
	if c.req.Method != "HEAD" && status >= 200 && status != 204 && status != 304 {
		w.WriteString(body)
	}
	w.Flush()
}

func validName(s string) bool {
	for i := range len(s) {
		if !isToken[s[i]] {
			return false
		}
	}
	return s != ""
}

// writeSanitized writes a field value with control characters replaced by spaces, so a
// caller-supplied string cannot split the head.
func writeSanitized(c *conn, v string) {
	for i := range len(v) {
		b := v[i]
		if b < ' ' && b != '\t' || b == 0x7f {
			b = ' '
		}
		c.bw.WriteByte(b)
	}
}

func (c *conn) logAccess(start time.Time, upstream string, status int, err error) {
	log := c.s.AccessLog
	if log == nil {
		return
	}
	r := &c.rec
	r.Start = start
	r.Duration = time.Since(start)
	r.Request = &c.req
	r.Upstream = upstream
	r.Status = status
	r.Err = err
	log(r)
}

// newRequestID fills dst with a random version 4 UUID. math/rand/v2's global generator is
// seeded from the OS and is cheap and lock-free, which matters per request; the id is for
// correlation, not security.
func newRequestID(dst *[36]byte) []byte {
	const hex = "0123456789abcdef"
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12 // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	j := 0
	for i := range 16 {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		var b byte
		if i < 8 {
			b = byte(hi >> (56 - 8*i))
		} else {
			b = byte(lo >> (56 - 8*(i-8)))
		}
		dst[j], dst[j+1] = hex[b>>4], hex[b&0xf]
		j += 2
	}
	return dst[:]
}

// tunnel relays bytes both ways after a 101 Switching Protocols until both sides are done.
func (c *conn) tunnel(start time.Time, uc *upConn) {
	// Both deadlines may date from before a long wait for the 101.
	idle := c.s.lim.IdleTimeout
	c.nc.SetWriteDeadline(time.Now().Add(idle))
	uc.nc.SetWriteDeadline(time.Now().Add(idle))
	c.writeResponseHead(false, false)
	err := c.bw.Flush()
	if err == nil {
		if n := c.ubr.Buffered(); n > 0 {
			b, _ := c.ubr.Peek(n)
			_, err = c.nc.Write(b)
		}
	}
	if err == nil {
		if n := c.br.Buffered(); n > 0 {
			b, _ := c.br.Peek(n)
			_, err = uc.nc.Write(b)
			c.br.Discard(n)
		}
	}
	if err == nil {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.s.relay(uc.nc, c.nc, idle)
		}()
		c.s.relay(c.nc, uc.nc, idle)
		wg.Wait()
	}
	uc.nc.Close()
	c.logAccess(start, uc.key, 101, err)
}

// relay copies src to dst until src ends, then half-closes dst; on an error it closes both so
// the opposite direction stops too.
func (s *Server) relay(dst, src net.Conn, idle time.Duration) {
	bp, _ := s.bufPool.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, bulkSize)
		bp = &b
	}
	defer s.bufPool.Put(bp)
	buf := *bp
	for {
		src.SetReadDeadline(time.Now().Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if err == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
			src.Close()
			dst.Close()
			return
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}
