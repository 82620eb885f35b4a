package main

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// The response half of an exchange: reading the upstream's head, rewriting it for the client,
// relaying the body, and ending the exchange.

// stepResp reads the response from the upstream and writes it to the client.
func (l *hloop) stepResp(c *hconn) bool {
	u := c.u
	if len(c.cpend) > 0 {
		if !c.wr {
			return false
		}
		n, e := rawWrite(c.fd, c.cpend)
		switch {
		case e == unix.EAGAIN:
			c.wr = false
			return false
		case e != 0:
			l.closeClient(c) // the client went away in the middle of the response
			return false
		}
		c.cpend = c.cpend[n:]
		if len(c.cpend) > 0 {
			c.wr = false
			return false
		}
		return true
	}
	if c.headDone {
		if c.respLeft == 0 {
			return l.finish(c)
		}
		if c.rr < c.rw {
			k := c.rw - c.rr
			if c.respLeft > 0 {
				k = int(min(int64(k), c.respLeft))
				c.respLeft -= int64(k)
			}
			c.cpend = c.rb[c.rr : c.rr+k]
			c.rr += k
			return true
		}
		c.rr, c.rw = 0, 0
	}
	if !u.rd {
		return false
	}
	if c.rb == nil {
		c.rb = l.take()
	}
	if c.rw == len(c.rb) {
		l.fail(c, "502 Bad Gateway") // a response head longer than the buffer
		return false
	}
	n, e := rawRead(u.fd, c.rb[c.rw:])
	switch {
	case e == unix.EAGAIN:
		u.rd = false
		return false
	case e != 0 || n == 0 && (!c.headDone || c.respLeft > 0):
		l.fail(c, "502 Bad Gateway") // closes the client even when the head was sent
		return false
	case n == 0: // the end of a body delimited by the connection's close
		c.respLeft = 0
		u.keep = false
		return true
	}
	c.rw += n
	if c.rw < len(c.rb) {
		u.rd = false
	}
	if !c.headDone {
		if i := bytes.Index(c.rb[c.rr:c.rw], crlf2); i >= 0 {
			return l.startResponse(c, c.rr+i+4)
		}
	}
	return true
}

// startResponse parses the response head in c.rb[c.rr:end] and writes the one for the client,
// with as much of the body as is here.
func (l *hloop) startResponse(c *hconn, end int) bool {
	h := c.rb[c.rr:end]
	le := bytes.Index(h, crlf)
	line := h[:le]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || end-c.rr > evhBufSize-evhHeadRoom {
		l.fail(c, "502 Bad Gateway")
		return false
	}
	status, ok := parseLength(line[9:12])
	if !ok || status < 200 {
		l.fail(c, "502 Bad Gateway") // 1xx and upgrades: not in the prototype
		return false
	}
	fields := h[le+2:]
	fr, ok := c.scanResponseFields(fields)
	if !ok {
		l.fail(c, "502 Bad Gateway")
		return false
	}
	c.frameResponse(status, line[7] == '1', fr)

	if c.cout == nil {
		c.cout = l.take()
	}
	b := c.appendResponseHead(c.cout[:0], line, fields)
	c.rr = end
	k := int64(min(c.rw-c.rr, cap(b)-len(b)))
	if c.respLeft >= 0 {
		k = min(k, c.respLeft)
		c.respLeft -= k
	}
	b = append(b, c.rb[c.rr:c.rr+int(k)]...)
	c.rr += int(k)
	c.cout, c.cpend = b, b
	c.headDone = true
	return true
}

// responseFraming is what the first pass over a response's fields learns.
type responseFraming struct {
	length           int64 // the Content-Length, when haveLength
	haveLength       bool
	close, keepAlive bool // what the Connection fields say
}

// scanResponseFields is the first pass over a response's fields (those after the status line,
// up to the blank line's CRLF): the framing, and the names the Connection fields list, into
// c.tokens. It is false for a response to refuse.
func (c *hconn) scanResponseFields(fields []byte) (responseFraming, bool) {
	var fr responseFraming
	c.ntokens = 0
	for p := 0; p < len(fields)-2; {
		name, value, next, ok := nextField(fields, p)
		if !ok {
			return fr, false
		}
		p = next
		switch len(name) {
		case 10:
			if foldEq(name, "connection") {
				cls, ka := c.connTokens(value)
				fr.close, fr.keepAlive = fr.close || cls, fr.keepAlive || ka
			}
		case 14:
			if foldEq(name, "content-length") {
				n, ok := parseLength(value)
				if !ok || fr.haveLength && n != fr.length {
					return fr, false
				}
				fr.length, fr.haveLength = n, true
			}
		case 17:
			if foldEq(name, "transfer-encoding") {
				return fr, false // chunked responses: not in the prototype
			}
		}
	}
	return fr, true
}

// frameResponse sets where the response's body ends (c.respLeft) and whether its upstream
// connection may be pooled after it, from the status, the version (http11) and the fields.
func (c *hconn) frameResponse(status int64, http11 bool, fr responseFraming) {
	u := c.u
	u.keep = !fr.close && (http11 || fr.keepAlive)
	switch {
	case c.isHead || status == 204 || status == 304:
		c.respLeft = 0
	case fr.haveLength:
		c.respLeft = fr.length
	default:
		c.respLeft = -1 // until the upstream closes
		u.keep = false
		c.closeAfter = true
	}
}

// appendResponseHead appends to b the head for the client: the status line as HTTP/1.1, the
// fields less the hop-by-hop ones and those the Connection fields list, and the Connection
// field that the client's connection needs.
func (c *hconn) appendResponseHead(b, statusLine, fields []byte) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = append(b, statusLine[9:]...)
	b = append(b, "\r\n"...)
	for p := 0; p < len(fields)-2; {
		name, _, next, _ := nextField(fields, p)
		field := fields[p : next-2]
		p = next
		if hop(name) || c.ntokens > 0 && c.listed(name) {
			continue
		}
		b = append(b, field...)
		b = append(b, "\r\n"...)
	}
	switch {
	case c.closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case c.http10:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	return b
}

// finish ends an exchange whose response was all written: the upstream goes back to the pool
// (or is closed), the buffers back to the loop, and the client on to its next request.
func (l *hloop) finish(c *hconn) bool {
	u := c.u
	c.u = nil
	u.owner = nil
	// Bytes past the response, or an event since the last read of it that a read has not
	// looked at, could be the upstream closing: such a connection is checked now, as no later
	// event of an edge-triggered socket would tell.
	if u.keep && c.rr == c.rw {
		u.poolIdx = len(l.pool)
		l.pool = append(l.pool, u)
		l.checkIdle(u)
	} else {
		l.closeUp(u)
	}
	l.give(&c.rb)
	l.give(&c.cout)
	c.rr, c.rw = 0, 0
	c.cpend, c.headDone = nil, false
	c.phase = phHead
	if c.closeAfter {
		l.closeClient(c)
		return false
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
		if !c.rd {
			l.give(&c.in)
		}
	}
	return true
}
