package sniff

import (
	"errors"
	"io"
	"net"
)

// PrefixConn is a net.Conn whose reads return bytes already taken from the wrapped connection before
// reading from it again.
//
// Read and WriteTo must not be called concurrently with each other, as for any stream reader; Write,
// Close and the deadline methods may be called from other goroutines. After the prefix is drained,
// WriteTo and ReadFrom hand the work to the wrapped connection, so io.Copy between a PrefixConn over a
// *net.TCPConn and another *net.TCPConn still uses splice(2). Unwrap and TCPConn give the wrapped
// connection for callers that need its socket, such as origdst.OriginalDst.
type PrefixConn struct {
	net.Conn
	prefix []byte
}

// NewPrefixConn returns c wrapped so that its first reads return prefix, which it does not copy.
func NewPrefixConn(c net.Conn, prefix []byte) *PrefixConn {
	return &PrefixConn{Conn: c, prefix: prefix}
}

// Read returns prefix bytes until they are gone and then reads from the wrapped connection.
func (c *PrefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// WriteTo writes the remaining prefix to w and then copies the wrapped connection to w, letting the
// wrapped connection pick its fastest path (splice between TCP sockets).
func (c *PrefixConn) WriteTo(w io.Writer) (int64, error) {
	var written int64
	if len(c.prefix) > 0 {
		n, err := w.Write(c.prefix)
		written += int64(n)
		c.prefix = c.prefix[n:]
		if err != nil {
			return written, err
		}
		if len(c.prefix) > 0 {
			return written, io.ErrShortWrite
		}
	}
	n, err := io.Copy(w, c.Conn)
	return written + n, err
}

// ReadFrom copies r to the wrapped connection; the prefix only concerns reads, so writes go straight
// through and a *net.TCPConn underneath can splice from r.
func (c *PrefixConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(c.Conn, r)
}

// CloseWrite shuts down the writing side of the wrapped connection, so that a proxy can pass a
// half-close on; it fails when the wrapped connection has no CloseWrite.
func (c *PrefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("sniff: wrapped connection cannot close its write side")
}

// Buffered returns how many prefix bytes have not been read yet.
func (c *PrefixConn) Buffered() int { return len(c.prefix) }

// Unwrap returns the wrapped connection; reading from it directly skips any prefix not yet read.
func (c *PrefixConn) Unwrap() net.Conn { return c.Conn }

// TCPConn returns the wrapped connection if it is a *net.TCPConn, for socket options and splice.
func (c *PrefixConn) TCPConn() (*net.TCPConn, bool) {
	tc, ok := c.Conn.(*net.TCPConn)
	return tc, ok
}
