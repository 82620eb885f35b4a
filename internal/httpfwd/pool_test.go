package httpfwd

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// plainConn hides the SyscallConn method of the connection it wraps, the way a TLS or otherwise
// wrapped connection does, so the pool has to fall back to its deadline-based check.
type plainConn struct{ net.Conn }

func TestPoolDropsConnectionsWithUnreadBytes(t *testing.T) {
	t.Parallel()
	// Each upstream answers its first request, then, 50 ms later and unasked, sends more bytes
	// on the idle connection. Those bytes must never be read as the answer to the next request,
	// which may well be another client's.
	tests := []struct {
		name    string
		method  string
		answer  string // the answer to the first request
		later   string // what the upstream sends afterwards on its own
		hangup  bool   // whether it closes the connection after that
		network string // "tcp" (the default), "unix" or "wrapped" (no SyscallConn)
	}{
		{name: "drops a connection on which a second response arrived", method: "GET",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
			later:  "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED"},
		{name: "drops a connection on which a body followed a 204", method: "GET",
			answer: "HTTP/1.1 204 No Content\r\n\r\n",
			later:  "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED"},
		{name: "drops a connection on which a body followed the answer to HEAD", method: "HEAD",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n",
			later:  "INJECTED"},
		{name: "drops a connection the upstream timed out with a 408", method: "GET",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
			later:  "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 8\r\n\r\nINJECTED",
			hangup: true},
		{name: "drops a connection the upstream closed", method: "GET",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
			hangup: true},
		{name: "drops a unix socket connection on which a second response arrived", method: "GET", network: "unix",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
			later:  "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED"},
		{name: "drops a wrapped connection on which a second response arrived", method: "GET", network: "wrapped",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
			later:  "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			serve := func(nc net.Conn, br *bufio.Reader) {
				if _, err := readRawRequest(br); err != nil {
					return
				}
				io.WriteString(nc, tt.answer)
				time.Sleep(50 * time.Millisecond)
				io.WriteString(nc, tt.later)
				if tt.hangup {
					return
				}
				// A request that does arrive on this connection is answered; the test fails if
				// it reads this answer instead of the one a fresh connection gives first.
				for {
					if _, err := readRawRequest(br); err != nil {
						return
					}
					io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nreuse")
				}
			}
			var be *rawBackend
			up := Upstream{}
			switch tt.network {
			case "unix":
				path := filepath.Join(t.TempDir(), "up.sock")
				ln, err := net.Listen("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				be = startRawBackendOn(t, ln, serve)
				up.Key = "unix:" + path
				up.Dial = func(ctx context.Context) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", path)
				}
			case "wrapped":
				be = startRawBackend(t, serve)
				up.Addr = be.addr()
				up.Dial = func(ctx context.Context) (net.Conn, error) {
					var d net.Dialer
					nc, err := d.DialContext(ctx, "tcp", be.addr())
					if err != nil {
						return nil, err
					}
					return plainConn{nc}, nil
				}
			default:
				be = startRawBackend(t, serve)
				up.Addr = be.addr()
			}
			router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) { return up, nil })
			addr := startProxy(t, &Server{Router: router})
			request := tt.method + " / HTTP/1.1\r\nHost: a\r\n\r\n"

			first := dial(t, addr).roundTrip(request)
			time.Sleep(150 * time.Millisecond) // the unasked bytes are on the pooled connection now
			second := dial(t, addr).roundTrip(request)
			if first.StatusCode != second.StatusCode || first.body != second.body {
				t.Fatalf("first client got %d %q, second %d %q: want the same answer from a fresh connection",
					first.StatusCode, first.body, second.StatusCode, second.body)
			}
			if n := be.conns.Load(); n != 2 {
				t.Errorf("backend accepted %d connections, want 2", n)
			}
		})
	}
}

func TestPoolReusesQuietConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wrapped bool          // dial a connection without SyscallConn
		pause   time.Duration // between the requests, each from a new client
	}{
		{name: "reuses a quiet connection"},
		{name: "reuses a quiet connection whose last deadline ran out while it was idle", pause: 1500 * time.Millisecond},
		{name: "reuses a quiet wrapped connection", wrapped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
				for {
					if _, err := readRawRequest(br); err != nil {
						return
					}
					io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			up := Upstream{Addr: be.addr()}
			if tt.wrapped {
				up.Dial = func(ctx context.Context) (net.Conn, error) {
					var d net.Dialer
					nc, err := d.DialContext(ctx, "tcp", be.addr())
					if err != nil {
						return nil, err
					}
					return plainConn{nc}, nil
				}
			}
			router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) { return up, nil })
			// The stream idle timeout is short so that the pause outlasts the last request's
			// deadline, and long enough for a loaded machine to answer within it.
			addr := startProxy(t, &Server{Router: router, Limits: Limits{StreamIdleTimeout: time.Second}})
			for i := range 3 {
				if resp := dial(t, addr).roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.body != "ok" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, resp.body)
				}
				time.Sleep(tt.pause)
			}
			if n := be.conns.Load(); n != 1 {
				t.Errorf("backend accepted %d connections for 3 sequential requests, want 1", n)
			}
		})
	}
}
