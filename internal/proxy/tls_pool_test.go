package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// coalescingConn holds what TLS writes while hold is set, until flush, so that two records leave
// in one segment.
type coalescingConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  bytes.Buffer
}

func (c *coalescingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hold {
		return c.Conn.Write(b)
	}
	return c.buf.Write(b)
}

func (c *coalescingConn) holdWrites() {
	c.mu.Lock()
	c.hold = true
	c.mu.Unlock()
}

func (c *coalescingConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.Conn.Write(c.buf.Bytes())
	c.buf.Reset()
	c.hold = false
	return err
}

func TestAPooledTLSUpstreamThatSentUnaskedBytesIsNotReused(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "pool CA")
	cert, _, _ := pki.issue(t, "api.example.test", "api.example.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	// Each connection answers its first request, then sends a second, unasked response in a TLS
	// record of its own but in the same segment, so the proxy's TLS layer reads it with the first.
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer raw.Close()
				cc := &coalescingConn{Conn: raw}
				tc := tls.Server(cc, cfg)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(tc))
				if err != nil {
					return
				}
				req.Body.Close()
				cc.holdWrites()
				tc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"))
				tc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"))
				cc.flush()
				// Hold the connection open, as a server that keeps it alive would.
				tc.Read(make([]byte, 1))
			}()
		}
	}()
	h := startProxy(t, originationYAML(ln.Addr().(*net.TCPAddr).Port, "        mode: SIMPLE\n        caCertificates: "+pki.caFile+"\n"), Config{}, "")
	c := h.client(nil)
	for i := 0; i < 3; i++ {
		if status, body, _ := get(t, c, "http://api.example.test/"); status != 200 || body != "fresh" {
			t.Fatalf("request %d: got %d %q, want 200 \"fresh\" (a stale response from a reused connection?)", i, status, body)
		}
	}
}
