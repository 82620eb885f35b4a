package httpfwd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// FuzzHTTP2UpstreamResponse has an HTTP/1.1 upstream answer an HTTP/2 stream with arbitrary
// bytes. Whatever they are, the stream ends (answered or reset) and the proxy stays whole: the
// next stream, answered well on whichever connection the Pool gives it, gets exactly that
// answer, never bytes left over from the fuzzed one.
func FuzzHTTP2UpstreamResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n2\r\nhi\r\n0\r\nX: y\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nhi",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	var answer atomic.Pointer[[]byte]
	be := startRawBackend(f, func(nc net.Conn, br *bufio.Reader) {
		for {
			req, err := readRawRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/fuzz" {
				nc.Write(*answer.Load())
				continue
			}
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
		}
	})
	proxy := startProxy(f, &Server{Router: staticRouter(be.addr()), Limits: Limits{StreamIdleTimeout: 200e6}})
	f.Fuzz(func(t *testing.T, raw []byte) {
		answer.Store(&raw)
		client := h2cClient(t)
		if resp, err := client.Get("http://" + proxy + "/fuzz"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		for range 2 {
			resp, err := client.Get("http://" + proxy + "/good")
			if err != nil {
				t.Fatalf("a well-answered stream after %q: %v", raw, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "good" {
				t.Fatalf("after %q, a well-answered stream got %d %q", raw, resp.StatusCode, body)
			}
		}
	})
}
