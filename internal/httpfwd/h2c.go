package httpfwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// The h2c path converts the HTTP/1.1 request into an http.Request for net/http's Transport,
// which speaks cleartext HTTP/2 with prior knowledge (Go 1.24's UnencryptedHTTP2) and
// multiplexes requests per upstream. It allocates per request like any net/http client; the
// byte-level HTTP/1.1 path stays the fast one.

// h2cDial travels in the request context to the Transport's dialer, which serves every
// upstream: it dials the Upstream of the request that needs a connection.
type h2cDial struct {
	up      Upstream
	timeout time.Duration
}

type h2cDialKey struct{}

// h2c returns the pool's shared h2c transport, creating it on first use.
func (p *Pool) h2c() *http.Transport {
	p.h2Once.Do(func() {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		t := &http.Transport{
			Protocols:           &protocols,
			DialContext:         dialH2C,
			IdleConnTimeout:     p.idleTimeout(),
			MaxIdleConnsPerHost: p.maxIdle(),
			DisableCompression:  true, // relay content codings as they are
			ForceAttemptHTTP2:   true,
		}
		p.mu.Lock()
		p.h2 = t
		p.mu.Unlock()
	})
	return p.h2
}

func dialH2C(ctx context.Context, _, _ string) (net.Conn, error) {
	d, ok := ctx.Value(h2cDialKey{}).(*h2cDial)
	if !ok {
		return nil, errors.New("h2c dial without an upstream")
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	nc, err := d.up.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConnect, d.up.Key, err)
	}
	return nc, nil
}

// h2cHost names the Transport's connection pool for a Key: any string may be a Key, but a
// URL host may not, so the Key is hashed into one.
func h2cHost(key string) string {
	h := fnv.New64a()
	io.WriteString(h, key)
	return strconv.FormatUint(h.Sum64(), 16) + ".h2c.invalid"
}

// targetURL returns the URL a transport writes as the request target (or :path) target,
// byte for byte; the caller sets its Host. net/http writes URL.Opaque as it is, except an
// Opaque starting with "//", which it writes as the absolute-form "http://host/p" (naming a
// host the registry never matched) and its HTTP/2 transport refuses as a :path. Such a target,
// an origin-form path whose first segment is empty, goes in Path and RawPath instead, which
// net/http writes unchanged when RawPath is an encoding of Path. A target that would not come
// out as it came in is refused, not rewritten, so the upstream reads what the Router matched.
func targetURL(target string) (*url.URL, error) {
	u := &url.URL{Scheme: "http", Opaque: target}
	if !strings.HasPrefix(target, "//") {
		return u, nil
	}
	path, query, hasQuery := strings.Cut(target, "?")
	decoded, err := url.PathUnescape(path)
	if err != nil {
		return nil, fmt.Errorf("request target %q: %w", target, err)
	}
	u.Opaque = ""
	u.Path, u.RawPath, u.RawQuery, u.ForceQuery = decoded, path, query, hasQuery && query == ""
	if got := u.RequestURI(); got != target {
		return nil, fmt.Errorf("request target %q would be sent as %q", target, got)
	}
	return u, nil
}

// h2cRequest converts the client's request head to the http.Request sent upstream: the
// end-to-end fields (and TE: trailers), our x-request-id, and Via with us appended.
func (c *conn) h2cRequest(up *Upstream) (*http.Request, error) {
	req := &c.req
	host := up.Host
	switch {
	case host != "":
	case req.Absolute:
		host = string(req.raw[req.authority.start:req.authority.end])
	case req.hosts > 0:
		host = string(req.raw[req.host.start:req.host.end])
	default:
		host = up.Addr
	}
	target := req.Target
	if req.Absolute {
		target = req.Path
		if len(target) == 0 || target[0] != '/' {
			target = append([]byte{'/'}, target...)
		}
	}
	u, err := targetURL(string(target))
	if err != nil {
		return nil, err
	}
	u.Host = h2cHost(up.Key)
	hreq := &http.Request{
		Method:     req.Method,
		URL:        u,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     make(http.Header, len(req.fields)+1),
		Host:       host,
	}
	for i := range req.fields {
		f := &req.fields[i]
		name, value := req.raw[f.name.start:f.name.end], req.raw[f.value.start:f.value.end]
		switch {
		case f.kind == kindTE && equalFold(value, "trailers"):
			// gRPC servers insist on TE: trailers, the one TE value HTTP/2 allows.
		case !req.forwarded(f), f.kind == kindHost, f.kind == kindContentLength,
			f.kind == kindTransferEncoding, f.kind == kindExpect, f.kind == kindRequestID:
			continue
		}
		k := http.CanonicalHeaderKey(string(name))
		hreq.Header[k] = append(hreq.Header[k], string(value))
	}
	hreq.Header["X-Request-Id"] = []string{string(c.rec.RequestID)}
	// HTTP/2 joins the Via values into one list, ours last.
	hreq.Header["Via"] = append(hreq.Header["Via"], "1.1 "+c.s.via)
	c.applyH2C(hreq)
	return hreq, nil
}

// serveH2C forwards the request over h2c. It returns whether the client connection may go on,
// and retry when the connect failed before any of the request was consumed.
func (c *conn) serveH2C(ctx context.Context, start time.Time, up *Upstream) (keep, retry bool) {
	s := c.s
	req := &c.req
	if req.WantsUpgrade() {
		return c.fail(start, 501, "protocol upgrades to an h2c upstream are not supported", nil), false
	}
	c.ex.extra = up.ResponseFields
	hreq, err := c.h2cRequest(up)
	if err != nil {
		c.tel.flags |= telemetry.DownstreamProtocolError
		return c.fail(start, 400, "request target cannot be forwarded as sent", err), false
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := newIdleWatch(s.lim.StreamIdleTimeout, cancel)
	defer watch.stop()
	var body *h2cBody
	if req.HasBody() {
		if req.has(flagExpectContinue) && req.ProtoMinor == 1 {
			// Accepting the body here is simpler than relaying HTTP/2's interim responses.
			c.nc.SetWriteDeadline(time.Now().Add(s.lim.StreamIdleTimeout))
			c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := c.bw.Flush(); err != nil {
				return false, false
			}
		}
		body = &h2cBody{c: c, remaining: max(req.length, 0), chunked: req.Chunked(), watch: watch}
		hreq.Body = body
		hreq.ContentLength = req.length
		if req.Chunked() {
			hreq.ContentLength = -1
		}
	}
	dial := &h2cDial{up: *up, timeout: up.Limits.connectTimeout(s.lim.ConnectTimeout)}
	hreq = hreq.WithContext(context.WithValue(ctx, h2cDialKey{}, dial))
	c.tel.sending(s)
	resp, err := s.pool.h2c().RoundTrip(hreq)
	if err == nil {
		c.tel.answered(s)
	}
	if err != nil {
		consumed, clientErr := body.stop()
		if clientErr != nil {
			// The client's body broke off or was malformed: not the upstream's fault.
			s.Router.Done(*up, nil)
			return c.clientBodyFailed(start, clientErr), false
		}
		if c.rt.act != nil && c.rt.timedOut.Load() {
			s.Router.Done(*up, nil)
			return c.routeTimeout(start, err), false
		}
		if watch.fired.Load() {
			e := fmt.Errorf("%w: no progress for %v", ErrUpstreamTimeout, s.lim.StreamIdleTimeout)
			s.Router.Done(*up, e)
			return c.fail(start, 504, "upstream timed out", e), false
		}
		s.Router.Done(*up, err)
		if errors.Is(err, ErrConnect) {
			if consumed == 0 {
				return false, true
			}
			return c.fail(start, 503, connectReason(err), err), false
		}
		c.tel.flags |= telemetry.UpstreamReset
		return c.fail(start, 502, "upstream request failed", err), false
	}
	defer resp.Body.Close()
	keep, upErr := c.relayH2CResponse(resp, body, watch)
	s.done(*up, resp.StatusCode, upErr)
	c.logAccess(start, up.Key, resp.StatusCode, upErr)
	return keep, false
}

// relayH2CResponse writes resp to the HTTP/1.1 client.
func (c *conn) relayH2CResponse(resp *http.Response, body *h2cBody, watch *idleWatch) (keep bool, upErr error) {
	req := &c.req
	w := c.bw
	noBody := bodiless(req.Method, resp.StatusCode)
	length := resp.ContentLength
	if len(resp.Trailer) > 0 {
		length = -1 // trailers need the chunked coding
	}
	chunked := !noBody && length < 0 && req.ProtoMinor == 1
	keep = req.KeepAlive() && (noBody || length >= 0 || chunked) && !c.s.shutting.Load()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(c.num[:0], int64(resp.StatusCode), 10))
	w.WriteByte(' ')
	w.WriteString(http.StatusText(resp.StatusCode))
	w.WriteString("\r\n")
	for k, vs := range resp.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Trailer":
			continue
		}
		if c.rt.act != nil && c.rt.act.Response.drops([]byte(k)) {
			continue
		}
		c.writeField(k, vs)
	}
	c.writeExtra()
	switch {
	case noBody && resp.ContentLength >= 0 && req.Method == "HEAD":
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(c.num[:0], resp.ContentLength, 10))
		w.WriteString("\r\n")
	case noBody:
	case length >= 0:
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(c.num[:0], length, 10))
		w.WriteString("\r\n")
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !keep {
		w.WriteString("Connection: close\r\n")
	} else if req.ProtoMinor == 0 {
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")

	var err error
	if !noBody {
		err = c.copyH2CBody(resp, chunked, watch)
		// The end of the body may have been long in coming.
		c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
	}
	if err == nil {
		err = w.Flush()
	} else {
		w.Flush()
		keep = false
		switch {
		case watch.fired.Load():
			upErr = fmt.Errorf("%w: response body paused for %v", ErrUpstreamTimeout, c.s.lim.StreamIdleTimeout)
		case readFailed(err):
			upErr = fmt.Errorf("%w: reading the response body: %w", ErrUpstreamClosed, errors.Unwrap(err))
		case !stalled(err):
			c.tel.flags |= telemetry.DownstreamClosed
		}
	}
	if err != nil {
		keep = false
	}
	if _, clientErr := body.stop(); clientErr != nil {
		// The stream was reset because the client's body broke off, which is what failed
		// the response too.
		upErr = nil
	}
	if body != nil && !body.eof {
		// The client is still sending a body nobody reads: its connection cannot go on.
		keep = false
		c.linger = true
	}
	return keep, upErr
}

// copyH2CBody relays the response body, framing it in chunks (with trailers) when chunked.
func (c *conn) copyH2CBody(resp *http.Response, chunked bool, watch *idleWatch) error {
	w := c.bw
	p := &c.down
	buf := p.scratch()
	for {
		n, err := resp.Body.Read(buf)
		watch.touch()
		if n > 0 {
			c.rec.ResponseBytes += int64(n)
			c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.StreamIdleTimeout))
			if chunked {
				w.Write(strconv.AppendInt(c.num[:0], int64(n), 16))
				w.WriteString("\r\n")
			}
			w.Write(buf[:n])
			if chunked {
				w.WriteString("\r\n")
			}
			// Streams such as gRPC need each message promptly.
			if ferr := w.Flush(); ferr != nil {
				return &copyError{err: ferr}
			}
			watch.touch()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &copyError{read: true, err: err}
		}
	}
	if chunked {
		if overFieldCap(resp.Trailer, c.s.lim.MaxHeaders) {
			// As for an HTTP/1.1 upstream: the body is cut, so the client never takes a
			// truncated trailer section for a complete message.
			c.s.stats.tooManyHeaders.Add(1)
			return &copyError{read: true, err: fmt.Errorf("%w: more than %d trailer fields", ErrBadResponse, c.s.lim.MaxHeaders)}
		}
		w.WriteString("0\r\n")
		for k, vs := range resp.Trailer {
			if !validName(k) || forbiddenInTrailer(k) {
				continue
			}
			c.writeField(k, vs)
		}
		w.WriteString("\r\n")
	}
	return nil
}

// h2cBody is the client's request body as the Transport reads it, on its own goroutine.
type h2cBody struct {
	c         *conn
	mu        sync.Mutex // held by a Read in progress
	closed    atomic.Bool
	remaining int64 // of a Content-Length body, or of the current chunk
	chunked   bool
	started   bool // a chunk was read, so a CRLF precedes the next size line
	eof       bool
	n         int64
	err       error // how reading from the client failed, before the body was stopped
	chunks    chunkedReader
	watch     *idleWatch // told of each read, as the client's body moving is progress
}

func (b *h2cBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof {
		return 0, io.EOF
	}
	if b.closed.Load() {
		return 0, errStopped
	}
	br := b.c.br
	if br.Buffered() == 0 {
		b.c.nc.SetReadDeadline(time.Now().Add(b.c.s.lim.StreamIdleTimeout))
	}
	if b.chunked && b.remaining == 0 {
		if err := b.nextChunk(); err != nil {
			return 0, b.fail(err)
		}
		if b.eof {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := br.Read(p)
	b.watch.touch()
	b.remaining -= int64(n)
	b.n += int64(n)
	b.c.rec.RequestBytes = b.n
	if b.remaining == 0 && !b.chunked {
		b.eof = true
		return n, io.EOF
	}
	if err != nil {
		err = b.fail(readFail(err))
	}
	return n, err
}

// fail records err, a failure to read the client, unless stop caused it; b.mu is held.
func (b *h2cBody) fail(err error) error {
	if !b.closed.Load() && b.err == nil {
		b.err = err
	}
	return err
}

// nextChunk reads up to the next chunk's data, or through the trailers after the last one,
// with the codec the HTTP/1 path uses. The trailers are checked but not sent: the request
// went to the Transport without a Trailer map.
func (b *h2cBody) nextChunk() error {
	d := &b.chunks
	if !b.started {
		d.reset(b, b.c.s.lim.MaxHeaderBytes)
		b.started = true
	} else if err := d.dataEnd(); err != nil {
		return err
	}
	size, _, err := d.sizeLine()
	if err != nil {
		return err
	}
	if size > 0 {
		b.remaining = size
		return nil
	}
	for {
		_, last, _, err := d.trailerLine()
		if err != nil {
			return err
		}
		if last {
			b.eof = true
			return nil
		}
	}
}

// chunkLine reads the next line of the client's chunked body.
func (b *h2cBody) chunkLine() ([]byte, error) {
	line, err := b.c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, badChunk("chunk line too long")
	}
	if err != nil {
		return nil, readFail(err)
	}
	return line, nil
}

// chunkPeek returns the next n bytes of the client's body.
func (b *h2cBody) chunkPeek(n int) ([]byte, error) { return b.c.br.Peek(n) }

// chunkDiscard consumes n peeked bytes.
func (b *h2cBody) chunkDiscard(n int) { b.c.br.Discard(n) }

// Close is called by the Transport when it no longer needs the body.
func (b *h2cBody) Close() error {
	b.closed.Store(true)
	return nil
}

// stop ends the body for the Transport, waiting out a Read in progress, and returns how many
// bytes were consumed from the client and how reading them failed, if it did. A nil body
// consumed nothing.
func (b *h2cBody) stop() (consumed int64, clientErr error) {
	if b == nil {
		return 0, nil
	}
	b.closed.Store(true)
	if !b.mu.TryLock() {
		// A Read is blocked on the client: wake it; the connection cannot be reused.
		b.c.nc.SetReadDeadline(time.Unix(1, 0))
		b.c.linger = true
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	return b.n, b.err
}

// writeField writes one header or trailer field line per value, values sanitized.
func (c *conn) writeField(name string, values []string) {
	for _, v := range values {
		c.bw.WriteString(name)
		c.bw.WriteString(": ")
		writeSanitized(c, v)
		c.bw.WriteString("\r\n")
	}
}
