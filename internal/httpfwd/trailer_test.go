package httpfwd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// forbiddenTrailers is a trailer section mixing fields a trailer may carry with fields it
// must not (RFC 9110 §6.5.1), in the spellings clients and servers use.
const forbiddenTrailers = "Content-Length: 5\r\nHost: evil.test\r\ntransfer-encoding: chunked\r\n" +
	"Set-Cookie: a=b\r\nAuthorization: Basic eA==\r\nTrailer: X-Sum\r\nContent-Type: text/html\r\n" +
	"X-Request-Id: spoofed\r\nX-Sum: 42\r\ngrpc-status: 0\r\n\r\n"

// allowedTrailers is what must be left of forbiddenTrailers.
const allowedTrailers = "X-Sum: 42\r\ngrpc-status: 0\r\n\r\n"

func TestForbiddenTrailerFieldsAreDropped(t *testing.T) {
	t.Parallel()
	t.Run("drops them from a chunked request body sent upstream", func(t *testing.T) {
		t.Parallel()
		c := dial(t, startProxy(t, &Server{Router: staticRouter(framingBackend(t).addr())}))
		resp := c.roundTrip("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + forbiddenTrailers)
		_, body, _ := strings.Cut(resp.body, "\r\n\r\n")
		if want := "5\r\nhello\r\n0\r\n" + allowedTrailers; body != want {
			t.Errorf("upstream got body %q, want %q", body, want)
		}
	})
	t.Run("drops them from a chunked response relayed to the client", func(t *testing.T) {
		t.Parallel()
		be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
			if _, err := readRawRequest(br); err == nil {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"+forbiddenTrailers)
			}
		})
		c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, err := readRawHead(c.br); err != nil {
			t.Fatal(err)
		}
		if body, err := readRawChunked(c.br); err != nil || body != "2\r\nhi\r\n0\r\n"+allowedTrailers {
			t.Errorf("body %q (%v), want %q", body, err, "2\r\nhi\r\n0\r\n"+allowedTrailers)
		}
	})
	t.Run("drops them from an h2c response relayed to the client", func(t *testing.T) {
		t.Parallel()
		// Go's HTTP/2 server itself refuses to send the framing fields as trailers, so
		// this sends those it lets through and that a trailer still must not carry.
		be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Set-Cookie, Location, X-Request-Id, Vary, X-Sum")
			io.WriteString(w, "hi")
			for _, k := range []string{"Set-Cookie", "Location", "X-Request-Id", "Vary"} {
				w.Header().Set(k, "trailer")
			}
			w.Header().Set("X-Sum", "42")
		})
		pool := &Pool{}
		t.Cleanup(func() { pool.Close() })
		router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
			return Upstream{Addr: be.addr(), Protocol: H2C}, nil
		})
		c := dial(t, startProxy(t, &Server{Router: router, Pool: pool}))
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, err := readRawHead(c.br); err != nil {
			t.Fatal(err)
		}
		if body, err := readRawChunked(c.br); err != nil || body != "2\r\nhi\r\n0\r\nX-Sum: 42\r\n\r\n" {
			t.Errorf("body %q (%v), want only the X-Sum trailer", body, err)
		}
	})
}
