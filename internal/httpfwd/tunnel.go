package httpfwd

import (
	"errors"
	"log/slog"
	"time"

	"github.com/meshentry/meshentry/internal/relay"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// tunnel relays bytes both ways after a 101 Switching Protocols until both sides are done. The
// relay is internal/relay's, the one CONNECT and captured connections use: it passes a
// half-close on, and its idle timeout counts bytes in either direction, so a connection on
// which only one side talks (a WebSocket feed, a client streaming up) is not cut while it moves.
func (c *conn) tunnel(start time.Time, uc *upConn) {
	s := c.s
	idle := s.lim.StreamIdleTimeout
	// Both deadlines may date from before a long wait for the 101.
	c.nc.SetWriteDeadline(time.Now().Add(idle))
	uc.nc.SetWriteDeadline(time.Now().Add(idle))
	c.writeResponseHead(false, false)
	err := c.bw.Flush()
	// What either side sent right after the 101 is already in our buffers: it goes first.
	if err == nil {
		if n := c.ubr.Buffered(); n > 0 {
			b, _ := c.ubr.Peek(n)
			_, err = c.nc.Write(b)
			c.ubr.Discard(n)
		}
	}
	if err == nil {
		if n := c.br.Buffered(); n > 0 {
			b, _ := c.br.Peek(n)
			_, err = uc.nc.Write(b)
			c.br.Discard(n)
		}
	}
	if err != nil {
		uc.nc.Close()
		c.logAccess(start, uc.key, 101, err)
		return
	}
	// The relay keeps its own idle timer; deadlines left from the exchange would cut it.
	c.nc.SetDeadline(time.Time{})
	uc.nc.SetDeadline(time.Time{})
	up, down, err := relay.Pipe(s.baseCtx, c.nc, uc.nc, relay.Options{IdleTimeout: idle})
	c.rec.RequestBytes += up
	c.rec.ResponseBytes += down
	switch {
	case errors.Is(err, relay.ErrIdleTimeout):
		s.stats.upgradesIdle.Add(1)
		s.stats.streamIdle.Add(1)
		c.tel.flags |= telemetry.StreamIdleTimeout
		c.logFailure(slog.LevelDebug, "closed an idle upgraded connection", 0, err)
	case err != nil:
		// A side reset or closed the connection; nobody's fault the client must hear of.
		c.logFailure(slog.LevelDebug, "upgraded connection ended", 0, err)
	}
	c.logAccess(start, uc.key, 101, err)
}
