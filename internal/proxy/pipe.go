package proxy

import (
	"io"
	"net"
	"sync"
)

// closeWriter is a connection that can send FIN while still reading (TCP, unix, PrefixConn).
type closeWriter interface{ CloseWrite() error }

// pipe copies bytes both ways until both directions end, passing each side's end of stream on as a
// half-close so request/response protocols that shut down writing still get their answer. With
// plain TCP connections on both ends, io.Copy uses the kernel's splice path. It returns the bytes
// sent upstream and downstream.
func pipe(client, upstream net.Conn) (up, down int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		up, err = io.Copy(upstream, client)
		finish(upstream, client, err)
	}()
	var err error
	down, err = io.Copy(client, upstream)
	finish(client, upstream, err)
	wg.Wait()
	client.Close()
	upstream.Close()
	return up, down
}

// finish ends one direction: a clean end of stream becomes a half-close of dst; an error (reset,
// timeout) tears down both sides so the other direction does not wait forever.
func finish(dst, src net.Conn, err error) {
	if err != nil {
		dst.Close()
		src.Close()
		return
	}
	halfClose(dst)
}

func halfClose(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}
