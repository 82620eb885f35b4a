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

// manyTrailers is a trailer section of n small fields, well under MaxHeaderBytes.
func manyTrailers(n int) string {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "T%d: x\r\n", i)
	}
	return sb.String() + "\r\n"
}

// Finding (attack): MaxHeaders (Envoy's max_headers_count, 100) bounds the fields of a head but
// not of a trailer section, which Envoy bounds alike. A chunked request ending in 5,000 trailer
// fields (45 KB, under MaxHeaderBytes) is parsed field by field and forwarded whole, and so is a
// response's. Repro: `0\r\nT0: x\r\n…T4999: x\r\n\r\n` after a chunked body through the forward
// proxy: the upstream receives all 5,000, where 101 header fields get 431.
func TestAttackTrailerSectionsAreBoundedByMaxHeaders(t *testing.T) {
	t.Parallel()
	const fields = 5000
	t.Run("a request trailer section over the field cap is not forwarded", func(t *testing.T) {
		t.Parallel()
		c := dial(t, startProxy(t, &Server{Router: staticRouter(framingBackend(t).addr())}))
		resp := c.roundTrip("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + manyTrailers(fields))
		if n := strings.Count(resp.body, "\r\nT"); resp.StatusCode == 200 && n > 100 {
			t.Fatalf("status %d and the upstream received %d trailer fields, over the cap of 100", resp.StatusCode, n)
		}
	})
	t.Run("a response trailer section over the field cap is not relayed", func(t *testing.T) {
		t.Parallel()
		be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
			if _, err := readRawRequest(br); err == nil {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"+manyTrailers(fields))
			}
		})
		c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, err := readRawHead(c.br); err != nil {
			t.Fatal(err)
		}
		body, _ := readRawChunked(c.br)
		if n := strings.Count(body, "\r\nT"); n > 100 {
			t.Fatalf("the client received %d trailer fields, over the cap of 100", n)
		}
	})
}

// Finding (attack): request trailers that arrive over h2c prior knowledge are handed to the
// upstream as the client sent them. The HTTP/1 path drops fields a trailer must not carry
// (TestForbiddenTrailerFieldsAreDropped); Go's HTTP/2 server refuses only the framing ones, so
// X-Request-Id and Set-Cookie in an h2c request's trailers reach an HTTP/1.1 upstream, where a
// spoofed X-Request-Id in the trailer can override the id the proxy assigned.
func TestAttackH2CRequestTrailersAreFilteredLikeHTTP1(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- r.Trailer.Clone()
	})
	router := &hostRouter{routes: map[string]Upstream{"web.test:8080": {Addr: be.addr()}}}
	proxy := startProxy(t, &Server{Router: router})
	req, _ := http.NewRequest("POST", "http://"+proxy+"/", io.NopCloser(strings.NewReader("hello")))
	req.Host = "web.test:8080"
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Request-Id": {"spoofed"}, "Set-Cookie": {"a=b"}, "X-Sum": {"42"}}
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tr := <-got
	tests := []struct {
		name  string
		field string
		want  string
	}{
		{name: "drops a request id smuggled in the trailers", field: "X-Request-Id", want: ""},
		{name: "drops Set-Cookie from the trailers", field: "Set-Cookie", want: ""},
		{name: "keeps an ordinary trailer field", field: "X-Sum", want: "42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v := tr.Get(tc.field); v != tc.want {
				t.Fatalf("upstream trailer %s = %q, want %q (all: %v)", tc.field, v, tc.want, tr)
			}
		})
	}
}
