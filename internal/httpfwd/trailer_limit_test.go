package httpfwd

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

// trailerCountBackend reads chunked requests and reports, per complete request, how many
// trailer fields it received; it answers each with 200 and a chunked body whose trailer
// section has respFields fields.
func trailerCountBackend(t *testing.T, respFields int, got chan<- int) *rawBackend {
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRawHead(br); err != nil {
				return
			}
			body, err := readRawChunked(br)
			if err != nil {
				return // an aborted request is never answered
			}
			got <- strings.Count(body, "\r\nT")
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"+manyTrailers(respFields))
		}
	})
}

func TestTrailerFieldCountLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		limits     Limits
		reqFields  int
		respFields int
		wantStatus int
		// wantUpstream is the trailer count the upstream receives, -1 for no complete request.
		wantUpstream int
		// wantRelayed is the trailer count the client receives, -1 for a cut body.
		wantRelayed int
		wantCounted uint64
	}{
		{name: "forwards and relays trailer sections of 100 fields under the default limit",
			reqFields: 100, respFields: 100, wantStatus: 200, wantUpstream: 100, wantRelayed: 100},
		{name: "answers 431 and aborts the upstream request for a request trailer of 101 fields",
			reqFields: 101, respFields: 1, wantStatus: 431, wantUpstream: -1, wantCounted: 1},
		{name: "cuts a response whose trailer section has 101 fields",
			reqFields: 1, respFields: 101, wantStatus: 200, wantUpstream: 1, wantRelayed: -1, wantCounted: 1},
		{name: "applies a configured limit to request trailers",
			limits: Limits{MaxHeaders: 10}, reqFields: 11, respFields: 1, wantStatus: 431, wantUpstream: -1, wantCounted: 1},
		{name: "applies a configured limit to response trailers",
			limits: Limits{MaxHeaders: 10}, reqFields: 10, respFields: 11, wantStatus: 200, wantUpstream: 10, wantRelayed: -1, wantCounted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan int, 1)
			srv := &Server{Router: staticRouter(trailerCountBackend(t, tt.respFields, got).addr()), Limits: tt.limits}
			c := dial(t, startProxy(t, srv))
			c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + manyTrailers(tt.reqFields))
			head, err := readRawHead(c.br)
			if err != nil {
				t.Fatalf("reading the response head: %v", err)
			}
			if want := "HTTP/1.1 " + strconv.Itoa(tt.wantStatus) + " "; !strings.HasPrefix(head, want) {
				t.Fatalf("response head %q, want status %d", head, tt.wantStatus)
			}
			if tt.wantStatus == 200 {
				body, err := readRawChunked(c.br)
				switch n := strings.Count(body, "\r\nT"); {
				case tt.wantRelayed < 0 && err == nil:
					t.Errorf("the client received a complete body with %d trailer fields, want it cut", n)
				case tt.wantRelayed >= 0 && (err != nil || n != tt.wantRelayed):
					t.Errorf("the client received %d trailer fields (%v), want %d", n, err, tt.wantRelayed)
				}
			}
			select {
			case n := <-got:
				if n != tt.wantUpstream {
					t.Errorf("the upstream received %d trailer fields, want %d", n, tt.wantUpstream)
				}
			default:
				if tt.wantUpstream >= 0 {
					t.Errorf("the upstream received no complete request, want one with %d trailer fields", tt.wantUpstream)
				}
			}
			if n := srv.Stats().TooManyHeaders; n != tt.wantCounted {
				t.Errorf("Stats().TooManyHeaders = %d, want %d", n, tt.wantCounted)
			}
		})
	}
}
