package httpfwd

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// reject answers with the Router's Reject. The connection stays open unless a request body,
// which is not read, would otherwise be mistaken for the next request. The body gets the
// request id appended, as the engine's own errors carry it, so that whoever reads the answer
// can hand the operator an id to find in the Router's log.
func (c *conn) reject(start time.Time, r *Reject) bool {
	keep := c.req.KeepAlive() && !c.req.HasBody() && !c.s.shutting.Load()
	c.linger = c.linger || c.req.HasBody()
	status := r.Status
	if status < 200 || status > 599 {
		// A 1xx is not an answer: the client would wait for another response and read the
		// body as one. Other codes are not HTTP's.
		status = 502
	}
	if r.Body == "" {
		// No body was asked for; the id still goes in the x-request-id field.
		c.writeSimple(status, r.Reason, r.Header, !keep)
	} else {
		c.writeSimple(status, r.Reason, r.Header, !keep, strings.TrimSuffix(r.Body, "\n"), "; request id ", string(c.rec.RequestID), "\n")
	}
	c.tel.refused(r)
	c.logAccess(start, "", status, nil)
	return keep
}

// fail answers with an error the engine generated; it reports whether the connection may go
// on, which is only when no request body is left unread. The client gets reason and the
// request id; err, which may name endpoints and resolvers, goes only to the log.
func (c *conn) fail(start time.Time, status int, reason string, err error) bool {
	keep := c.req.KeepAlive() && !c.req.HasBody() && status != 400 && !c.s.shutting.Load()
	c.linger = c.linger || c.req.HasBody() || status == 400
	// Logged first, so the line is there by the time the client holds the request id.
	c.logFailure(slog.LevelWarn, reason, status, err)
	c.writeError(status, reason, !keep)
	c.logAccess(start, c.rec.Upstream, status, err)
	return keep
}

// writeError writes an error response of the engine's own, whose body is generic:
// "meshentry: <reason>; request id <id>", so that an operator can find the details in the log.
func (c *conn) writeError(status int, reason string, close bool) {
	c.writeSimple(status, reason, nil, close, "meshentry: ", reason, "; request id ", string(c.rec.RequestID), "\n")
}

// writeSimple writes a complete response made here, with a text body made of the body parts
// and the request id in an x-request-id field.
func (c *conn) writeSimple(status int, reason string, fields []Field, close bool, body ...string) {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	w := c.bw
	if c.nc != nil {
		// The loop engine's conn has no net.Conn: its writes never block, and it times them.
		c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
	}
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(c.num[:0], int64(status), 10))
	w.WriteByte(' ')
	w.WriteString(http.StatusText(status))
	w.WriteString("\r\n")
	if n > 0 {
		w.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	}
	if len(c.rec.RequestID) > 0 {
		w.WriteString("x-request-id: ")
		w.Write(c.rec.RequestID)
		w.WriteString("\r\n")
	}
	if reason != "" {
		w.WriteString("x-meshentry-reason: ")
		writeSanitized(c, reason)
		w.WriteString("\r\n")
	}
	for _, f := range fields {
		if !validName(f.Name) || equalFoldString([]byte(f.Name), "x-request-id") {
			// The engine's id is the one field it always sends itself.
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
		w.Write(strconv.AppendInt(c.num[:0], int64(n), 10))
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
		for _, b := range body {
			w.WriteString(b)
		}
	}
	w.Flush()
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
	if err != nil && status != 101 && stalled(err) {
		c.s.stats.streamIdle.Add(1) // a tunnel counts its own
	}
	c.report(start, status, err)
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

// stalled reports an exchange that ended because a read or write made no progress for the
// stream idle timeout. A connect timeout is the connect timeout's, not a stall.
func stalled(err error) bool {
	return !errors.Is(err, ErrConnect) && (errors.Is(err, ErrUpstreamTimeout) || isTimeout(err))
}
