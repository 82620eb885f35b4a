package httpfwd

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tunnel relays bytes both ways after a 101 Switching Protocols until both sides are done.
func (c *conn) tunnel(start time.Time, uc *upConn) {
	// Both deadlines may date from before a long wait for the 101.
	idle := c.s.lim.StreamIdleTimeout
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
		// Activity either way keeps both directions open: a server pushing over a
		// WebSocket to a client that never sends is not idle.
		var last atomic.Int64
		last.Store(time.Now().UnixNano())
		var wg sync.WaitGroup
		var upIdle bool
		wg.Add(1)
		go func() {
			defer wg.Done()
			upIdle = c.s.relay(uc.nc, c.nc, idle, &last)
		}()
		downIdle := c.s.relay(c.nc, uc.nc, idle, &last)
		wg.Wait()
		if upIdle || downIdle {
			c.s.stats.streamIdle.Add(1)
			err = fmt.Errorf("%w: upgraded connection idle for %v", ErrUpstreamTimeout, idle)
		}
	}
	uc.nc.Close()
	c.logAccess(start, uc.key, 101, err)
}

// relay copies src to dst until src ends, then half-closes dst; on an error it closes both so
// the opposite direction stops too. last is the time of the latest read of either direction:
// a read deadline that expires while the other direction moved is renewed. It reports
// whether it ended because neither direction moved for idle.
func (s *Server) relay(dst, src net.Conn, idle time.Duration, last *atomic.Int64) (idled bool) {
	bp, _ := s.bufPool.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, bulkSize)
		bp = &b
	}
	defer s.bufPool.Put(bp)
	buf := *bp
	for {
		src.SetReadDeadline(time.Unix(0, last.Load()).Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		switch {
		case err == nil:
			continue
		case err == io.EOF:
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return false
			}
		case isTimeout(err) && time.Since(time.Unix(0, last.Load())) < idle:
			continue // the other direction moved meanwhile
		case isTimeout(err):
			idled = true
		}
		break
	}
	src.Close()
	dst.Close()
	return idled
}
