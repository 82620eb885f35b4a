package httpfwd

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
)

func TestAuthorityIsANameOrAnAddress(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	var mu sync.Mutex
	var routed []string
	srv := &Server{
		Router: RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
			mu.Lock()
			routed = append(routed, req.Host)
			mu.Unlock()
			return Upstream{Addr: be.addr()}, nil
		}),
		OnConnect: func(_ context.Context, req *RequestHead, nc net.Conn, _ []byte) {
			mu.Lock()
			routed = append(routed, req.Host)
			mu.Unlock()
			nc.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
			nc.Close()
		},
	}
	addr := startProxy(t, srv)
	tests := []struct {
		name     string
		request  string
		wantHost string // "" when the request must be refused with 400 before routing
	}{
		{name: "refuses an absolute-form target with an IPv6 zone",
			request: "GET http://[::ffff:127.0.0.1%.bar.com]/ HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "refuses an absolute-form target with a percent-encoded IPv6 zone",
			request: "GET http://[::ffff:127.0.0.1%25.bar.com]/ HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "refuses a Host field with an IPv6 zone",
			request: "GET / HTTP/1.1\r\nHost: [::ffff:127.0.0.1%.bar.com]\r\n\r\n"},
		{name: "refuses a Host field with a percent-encoded IPv6 zone and a port",
			request: "GET / HTTP/1.1\r\nHost: [::ffff:127.0.0.1%25.bar.com]:80\r\n\r\n"},
		{name: "refuses a CONNECT authority with an IPv6 zone",
			request: "CONNECT [::ffff:127.0.0.1%.wikipedia.org]:443 HTTP/1.1\r\nHost: [::ffff:127.0.0.1%.wikipedia.org]:443\r\n\r\n"},
		{name: "refuses a percent-encoding in a name",
			request: "GET http://127.0.0.1%2ebar.com/ HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "refuses an IPv4 address in brackets", request: "GET / HTTP/1.1\r\nHost: [127.0.0.1]\r\n\r\n"},
		{name: "refuses a shortened IPv4 address", request: "GET / HTTP/1.1\r\nHost: 127.1\r\n\r\n"},
		{name: "refuses a hexadecimal IPv4 address", request: "GET / HTTP/1.1\r\nHost: 0x7f.0.0.1\r\n\r\n"},
		{name: "refuses a decimal integer address", request: "GET http://2130706433/ HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "refuses an IPv4 address with leading zeros", request: "GET / HTTP/1.1\r\nHost: 127.000.000.001\r\n\r\n"},
		{name: "refuses an empty label", request: "GET / HTTP/1.1\r\nHost: a..example\r\n\r\n"},
		{name: "refuses sub-delimiters in a name", request: "GET / HTTP/1.1\r\nHost: a!b$c.example\r\n\r\n"},
		{name: "routes a name with an underscore and a trailing dot",
			request: "GET / HTTP/1.1\r\nHost: My_Svc.Example.\r\n\r\n", wantHost: "my_svc.example."},
		{name: "routes an IPv4 address", request: "GET / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n\r\n", wantHost: "10.0.0.1"},
		{name: "routes an IPv6 address in brackets",
			request: "GET http://[2001:DB8::1]:8080/ HTTP/1.1\r\nHost: x\r\n\r\n", wantHost: "2001:db8::1"},
		{name: "routes a CONNECT to a name", request: "CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\n", wantHost: "db.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			mu.Lock()
			routed = routed[:0]
			mu.Unlock()
			c.send(tt.request)
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case tt.wantHost == "" && (resp.StatusCode != 400 || len(routed) != 0):
				t.Errorf("got %d with hosts routed %q, want 400 before routing", resp.StatusCode, routed)
			case tt.wantHost != "" && (resp.StatusCode != 200 || len(routed) != 1 || routed[0] != tt.wantHost):
				t.Errorf("got %d with hosts routed %q, want 200 for host %q", resp.StatusCode, routed, tt.wantHost)
			}
		})
	}
}
