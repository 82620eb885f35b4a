package httpfwd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestTrailerFieldCapOnNetHTTPPaths checks the paths where net/http, not the engine's parser,
// reads a trailer section (an HTTP/2 client's, an h2c upstream's): they are held to
// Limits.MaxHeaders as well, so no trailer section of more than 100 fields crosses the proxy.
func TestTrailerFieldCapOnNetHTTPPaths(t *testing.T) {
	t.Parallel()
	const fields = 150
	many := func() http.Header {
		h := http.Header{}
		for i := range fields {
			h.Set(fmt.Sprintf("T%d", i), "x")
		}
		return h
	}
	t.Run("an HTTP/2 client's request trailers over the cap get 431 and never reach the upstream", func(t *testing.T) {
		t.Parallel()
		seen := make(chan int, 1)
		be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			n := 0
			for _, vs := range r.Trailer {
				n += len(vs)
			}
			seen <- n
		})
		srv := &Server{Router: staticRouter(be.addr())}
		proxy := startProxy(t, srv)
		req, _ := http.NewRequest("POST", "http://"+proxy+"/", io.NopCloser(strings.NewReader("hello")))
		req.Host = "web.test"
		req.ContentLength = -1
		req.Trailer = many()
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 431 {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
		select {
		case n := <-seen:
			if n > 100 {
				t.Errorf("the upstream received %d trailer fields", n)
			}
		default:
		}
		if got := srv.Stats().TooManyHeaders; got != 1 {
			t.Errorf("Stats().TooManyHeaders = %d, want 1", got)
		}
	})
	t.Run("an HTTP/1.1 upstream's response trailers over the cap are not relayed to an HTTP/2 client", func(t *testing.T) {
		t.Parallel()
		be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
			if _, err := readRawRequest(br); err == nil {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"+manyTrailers(fields))
			}
		})
		resp, err := h2cClient(t).Get("http://" + startProxy(t, &Server{Router: staticRouter(be.addr())}) + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, readErr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if n := len(resp.Trailer); n > 100 || readErr == nil {
			t.Errorf("the client got %d trailer fields and a body that ended cleanly (%v); want the stream cut", n, readErr)
		}
	})
	t.Run("an h2c upstream's response trailers over the cap are not relayed to an HTTP/1.1 client", func(t *testing.T) {
		t.Parallel()
		be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hi")
			w.(http.Flusher).Flush() // no Content-Length: the HTTP/1.1 side is chunked, with trailers
			for k, vs := range many() {
				w.Header()[http.TrailerPrefix+k] = vs
			}
		})
		router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) { return Upstream{Addr: be.addr(), Protocol: H2C}, nil })
		c := dial(t, startProxy(t, &Server{Router: router}))
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, err := readRawHead(c.br); err != nil {
			t.Fatal(err)
		}
		body, err := readRawChunked(c.br)
		if n := strings.Count(body, "\r\nT"); n > 100 || err == nil {
			t.Errorf("the client got %d trailer fields and a complete body (%v); want the body cut", n, err)
		}
	})
}
