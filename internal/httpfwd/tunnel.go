package httpfwd

import (
	"io"
	"net"
	"sync"
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
