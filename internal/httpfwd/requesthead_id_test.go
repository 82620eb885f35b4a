package httpfwd

import (
	"context"
	"io"
	"net"
	"regexp"
	"testing"
)

func TestRequestHeadCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := make(chan string, 1)
	router := RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
		seen <- string(req.RequestID)
		return Upstream{}, &Reject{Status: 403, Body: "refused\n"}
	})
	srv := &Server{Router: router, OnConnect: func(_ context.Context, head *RequestHead, nc net.Conn, _ []byte) {
		seen <- string(head.RequestID)
		io.WriteString(nc, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		nc.Close()
	}}
	proxy := startProxy(t, srv)
	tests := []struct {
		name string
		req  string
		want string // "" for a generated UUID
		// routed requests are answered with the Router's Reject, whose body names the id.
		routed bool
	}{
		{name: "gives the Router the client's id",
			req: "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-1\r\n\r\n", want: "client-1", routed: true},
		{name: "gives the Router a generated id when the client sent none",
			req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", routed: true},
		{name: "gives OnConnect the client's id",
			req: "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nX-Request-Id: client-2\r\n\r\n", want: "client-2"},
		{name: "gives OnConnect a generated id when the client sent none",
			req: "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, proxy)
			resp := c.roundTrip(tt.req)
			got := <-seen
			if tt.want == "" && !uuid.MatchString(got) || tt.want != "" && got != tt.want {
				t.Fatalf("RequestHead.RequestID = %q, want %q (empty: a generated UUID)", got, tt.want)
			}
			if id := resp.Header.Get("X-Request-Id"); tt.routed && id != got {
				t.Errorf("answered with x-request-id %q, but the head carried %q", id, got)
			}
			if want := "refused; request id " + got + "\n"; tt.routed && resp.body != want {
				t.Errorf("Reject body %q, want %q", resp.body, want)
			}
		})
	}
}
