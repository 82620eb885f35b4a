package httpfwd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
)

// mirror sends a copy of the request to m's upstream, fire and forget: the copy is made now
// (the request's buffers are reused), and sent on a goroutine of its own within
// Limits.MaxMirrors in flight, so a slow or dead mirror never holds the original back. A body
// that holdBody could not keep is not mirrored at all, as a copy without it would be a
// different request.
func (c *conn) mirror(m *Mirror, orig *Upstream) {
	s := c.s
	if c.req.HasBody() && !c.rt.held {
		return
	}
	select {
	case s.mirrorSlots <- struct{}{}:
	default:
		s.stats.mirrorsDropped.Add(1)
		return
	}
	s.stats.mirrorsSent.Add(1)
	up := m.Upstream
	if up.Key == "" {
		up.Key = up.Addr
	}
	up.Host = shadowHost(c.sentAuthority(orig))
	msg := c.mirrorMessage(&up)
	go s.sendMirror(&up, msg)
}

// sentAuthority is the Host the original request is sent upstream with.
func (c *conn) sentAuthority(up *Upstream) string {
	req := &c.req
	switch {
	case c.rt.act != nil && c.rt.act.Rewrite != nil && c.rt.act.Rewrite.Authority != "":
		return c.rt.act.Rewrite.Authority
	case up.Host != "":
		return up.Host
	case req.Absolute:
		return string(req.raw[req.authority.start:req.authority.end])
	case req.hosts > 0:
		return string(req.raw[req.host.start:req.host.end])
	}
	return up.Addr
}

// shadowHost appends Envoy's "-shadow" to the host of an authority, before any port.
func shadowHost(authority string) string {
	host, port := authority, ""
	if i := bytes.LastIndexByte([]byte(authority), ':'); i >= 0 && bytes.IndexByte([]byte(authority[i:]), ']') < 0 {
		host, port = authority[:i], authority[i:]
	}
	return host + "-shadow" + port
}

// mirrorMessage writes the whole mirrored request, head and held body, as the original's head
// would be written to up, asking the mirror to close the connection after it.
func (c *conn) mirrorMessage(up *Upstream) []byte {
	var buf bytes.Buffer
	saved := c.ubw
	c.ubw = bufio.NewWriter(&buf)
	c.rt.mirroring = true
	c.writeRequestHead(up)
	c.rt.mirroring = false
	c.ubw.Flush()
	c.ubw = saved
	msg := buf.Bytes()
	msg = append(msg[:len(msg)-2], "Connection: close\r\n\r\n"...)
	return append(msg, c.rt.replay...)
}

// sendMirror sends msg to up and reads the head of the answer, which it discards; the slot it
// holds frees when it is done, within Limits.MirrorTimeout.
func (s *Server) sendMirror(up *Upstream, msg []byte) {
	defer func() { <-s.mirrorSlots }()
	ctx, cancel := context.WithTimeout(s.baseCtx, s.lim.MirrorTimeout)
	defer cancel()
	nc, err := up.open(ctx)
	if err != nil {
		s.log.Debug("mirror connect failed", slog.String("upstream", up.Key), slog.Any("error", err))
		return
	}
	defer nc.Close()
	// Closing the connection on a server close or the deadline ends any wait below.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	if _, err := nc.Write(msg); err != nil {
		s.log.Debug("mirror write failed", slog.String("upstream", up.Key), slog.Any("error", err))
		return
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(nc, 4096), nil)
	if err != nil {
		s.log.Debug("mirror response failed", slog.String("upstream", up.Key), slog.Any("error", fmt.Errorf("reading the head: %w", err)))
		return
	}
	resp.Body.Close()
}
