package main

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// An exchange's phases in turn (drive), and its request half: reading the client's head,
// rewriting it for the upstream, and writing it (and the body) there. connTokens and listed
// serve the response half too.

// drive moves c's exchange on as far as its sockets let it.
func (l *hloop) drive(c *hconn) {
	for {
		var more bool
		switch c.phase {
		case phHead:
			more = l.stepHead(c)
		case phReq:
			more = l.stepReq(c)
		case phResp:
			more = l.stepResp(c)
		}
		if !more {
			return
		}
	}
}

// stepHead reads and parses a request head; false when it must wait or c is gone.
func (l *hloop) stepHead(c *hconn) bool {
	if c.r == c.w {
		c.r, c.w = 0, 0
	} else {
		if i := bytes.Index(c.in[c.r:c.w], crlf2); i >= 0 {
			return l.startRequest(c, c.r+i+4)
		}
		if c.w-c.r >= evhBufSize-evhHeadRoom {
			l.fail(c, "431 Request Header Fields Too Large")
			return false
		}
		if c.w == len(c.in) {
			c.w = copy(c.in, c.in[c.r:c.w])
			c.r = 0
		}
	}
	if !c.rd {
		return false
	}
	if c.in == nil {
		c.in = l.take()
	}
	n, e := rawRead(c.fd, c.in[c.w:])
	switch {
	case e == unix.EAGAIN:
		c.rd = false
		if c.r == c.w {
			c.r, c.w = 0, 0
			l.give(&c.in) // idle: the buffer goes back to the loop
		}
		return false
	case e != 0 || n == 0:
		l.closeClient(c)
		return false
	}
	c.w += n
	if c.w < len(c.in) {
		c.rd = false // a short read on a stream socket drained it
	}
	return true
}

// connTokens records the names a Connection field lists in c.tokens; it reports close and
// keep-alive.
func (c *hconn) connTokens(v []byte) (close, keepAlive bool) {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		t = trimOWS(t)
		switch {
		case len(t) == 0:
		case foldEq(t, "close"):
			close = true
		case foldEq(t, "keep-alive"):
			keepAlive = true
		case c.ntokens < len(c.tokens):
			c.tokens[c.ntokens] = t
			c.ntokens++
		}
	}
	return
}

// listed reports whether the Connection fields named name.
func (c *hconn) listed(name []byte) bool {
	for _, t := range c.tokens[:c.ntokens] {
		if bytes.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// startRequest parses the head in c.in[c.r:end] and writes the one for the upstream, with as
// much of the body as is here.
func (l *hloop) startRequest(c *hconn, end int) bool {
	h := c.in[c.r:end]
	le := bytes.Index(h, crlf)
	rl, status := c.parseRequestLine(h[:le])
	if status != "" {
		l.fail(c, status)
		return false
	}
	fields := h[le+2:]
	fr, status := c.scanRequestFields(fields)
	if status != "" {
		l.fail(c, status)
		return false
	}
	c.closeAfter = fr.close || c.http10 && !fr.keepAlive
	if c.out == nil {
		c.out = l.take()
	}
	b := l.appendRequestHead(c, c.out[:0], rl, fields, fr.requestID)
	c.r = end

	// As much of the body as is here goes in the same write.
	k := min(int64(c.w-c.r), fr.length, int64(cap(b)-len(b)))
	b = append(b, c.in[c.r:c.r+int(k)]...)
	c.r += int(k)
	c.reqLeft = fr.length - k
	c.pend = b
	c.out = b
	c.phase = phReq
	c.headDone, c.cpend = false, nil
	if !l.getUpstream(c) {
		l.fail(c, "502 Bad Gateway")
		return false
	}
	return true
}

// requestLine is a request's start line, with the target in origin-form and, when it came in
// absolute-form, its authority apart.
type requestLine struct {
	method, target, authority []byte
}

// parseRequestLine parses a request's start line and records in c its version and whether it
// is a HEAD; status is the answer to a refused one, "" otherwise.
func (c *hconn) parseRequestLine(line []byte) (rl requestLine, status string) {
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return rl, "400 Bad Request"
	}
	method, target, proto := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	switch string(proto) { // no allocation: the conversion is only compared
	case "HTTP/1.1":
		c.http10 = false
	case "HTTP/1.0":
		c.http10 = true
	default:
		return rl, "505 HTTP Version Not Supported"
	}
	c.isHead = string(method) == "HEAD"
	if string(method) == "CONNECT" {
		return rl, "501 Not Implemented" // tunnels: not in the prototype
	}
	rl.method, rl.target = method, target
	// Absolute-form (a forward proxy's request): the authority becomes the Host field and the
	// target its origin-form.
	if len(target) > 7 && foldEq(target[:7], "http://") {
		rest := target[7:]
		i := bytes.IndexAny(rest, "/?")
		if i < 0 {
			i = len(rest)
		}
		rl.authority, rl.target = rest[:i], rest[i:]
	}
	return rl, ""
}

// requestFraming is what the first pass over a request's fields learns.
type requestFraming struct {
	length           int64 // the Content-Length, 0 without one
	close, keepAlive bool  // what the Connection fields say
	requestID        []byte
}

// scanRequestFields is the first pass over a request's fields (those after the start line, up
// to the blank line's CRLF): the framing, and the names the Connection fields list, into
// c.tokens. status is the answer to a refused request, "" otherwise.
func (c *hconn) scanRequestFields(fields []byte) (fr requestFraming, status string) {
	c.ntokens = 0
	haveCL := false
	for p := 0; p < len(fields)-2; {
		name, value, next, ok := nextField(fields, p)
		if !ok {
			return fr, "400 Bad Request"
		}
		p = next
		switch len(name) {
		case 10:
			if foldEq(name, "connection") {
				cls, ka := c.connTokens(value)
				fr.close, fr.keepAlive = fr.close || cls, fr.keepAlive || ka
			}
		case 12:
			if foldEq(name, "x-request-id") && fr.requestID == nil && len(value) > 0 {
				fr.requestID = value
			}
		case 14:
			if foldEq(name, "content-length") {
				n, ok := parseLength(value)
				if !ok || haveCL && n != fr.length {
					return fr, "400 Bad Request"
				}
				fr.length, haveCL = n, true
			}
		case 17:
			if foldEq(name, "transfer-encoding") {
				return fr, "501 Not Implemented" // chunked bodies: not in the prototype
			}
		}
	}
	return fr, ""
}

// appendRequestHead appends to b the head for the upstream: the start line in origin-form, the
// Host field of an absolute-form target, the fields less the hop-by-hop ones and those the
// Connection fields list, then Via and x-request-id (requestID, the client's; nil for a new one).
func (l *hloop) appendRequestHead(c *hconn, b []byte, rl requestLine, fields, requestID []byte) []byte {
	b = append(b, rl.method...)
	b = append(b, ' ')
	if len(rl.target) == 0 || rl.target[0] != '/' {
		b = append(b, '/')
	}
	b = append(b, rl.target...)
	b = append(b, " HTTP/1.1\r\n"...)
	if rl.authority != nil {
		b = append(b, "Host: "...)
		b = append(b, rl.authority...)
		b = append(b, "\r\n"...)
	}
	for p := 0; p < len(fields)-2; {
		name, _, next, _ := nextField(fields, p)
		field := fields[p : next-2]
		p = next
		switch {
		case hop(name), c.ntokens > 0 && c.listed(name):
		case len(name) == 12 && foldEq(name, "x-request-id"): // written below
		case rl.authority != nil && len(name) == 4 && foldEq(name, "host"): // written above
		default:
			b = append(b, field...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "Via: "...)
	b = append(b, l.via...)
	b = append(b, "\r\nx-request-id: "...)
	if requestID == nil {
		requestID = newReqID(&c.reqID)
	}
	b = append(b, requestID...)
	b = append(b, "\r\n\r\n"...)
	return b
}

// stepReq writes the request to the upstream: the head (with what body came with it), then
// the rest of the body as the client sends it.
func (l *hloop) stepReq(c *hconn) bool {
	u := c.u
	if u.connecting {
		return false
	}
	if len(c.pend) > 0 {
		if !u.wr {
			return false
		}
		n, e := rawWrite(u.fd, c.pend)
		switch {
		case e == unix.EAGAIN:
			u.wr = false
			return false
		case e != 0:
			l.fail(c, "502 Bad Gateway") // a pooled connection the upstream just closed, say
			return false
		}
		c.pend = c.pend[n:]
		if len(c.pend) > 0 {
			u.wr = false
			return false
		}
		return true
	}
	if c.reqLeft > 0 {
		if c.r < c.w {
			k := int(min(c.reqLeft, int64(c.w-c.r)))
			c.pend = c.in[c.r : c.r+k]
			c.r += k
			c.reqLeft -= int64(k)
			return true
		}
		if !c.rd {
			return false
		}
		if c.in == nil {
			c.in = l.take()
		}
		c.r, c.w = 0, 0
		n, e := rawRead(c.fd, c.in)
		switch {
		case e == unix.EAGAIN:
			c.rd = false
			return false
		case e != 0 || n == 0:
			l.closeClient(c) // the client went away in the middle of its body
			return false
		}
		c.w = n
		if n < len(c.in) {
			c.rd = false
		}
		return true
	}
	l.give(&c.out)
	c.phase = phResp
	return true
}
