package httpfwd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The client connection's write deadline is set when a write starts. These tests answer a first
// request at once, let the client pause, and have the upstream take its time with the second
// one, so that a write relying on the deadline of the first response finds it has passed.
// Two pauses outlast the idle timeout (the bug shows); one leaves it 800 ms of slack, so a
// loaded CI machine running -race does not time the upstream out.
const (
	deadlineIdle  = 2 * time.Second
	deadlinePause = 1200 * time.Millisecond
)

func TestClientWritesGetAFreshDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		request  string // the second request's head
		upstream func(nc net.Conn, br *bufio.Reader, req *http.Request)
		client   func(t *testing.T, c *client)
	}{
		{
			name:    "relays a late 101 Switching Protocols on a reused client connection",
			request: "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			upstream: func(nc net.Conn, br *bufio.Reader, _ *http.Request) {
				time.Sleep(deadlinePause)
				io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				io.Copy(nc, br)
			},
			client: func(t *testing.T, c *client) {
				if head, err := readRawHead(c.br); err != nil || !strings.HasPrefix(head, "HTTP/1.1 101 ") {
					t.Fatalf("head %q (%v), want 101", head, err)
				}
				c.send("ping")
				c.nc.(*net.TCPConn).CloseWrite()
				if got, err := io.ReadAll(c.br); err != nil || string(got) != "ping" {
					t.Errorf("echo %q (%v)", got, err)
				}
			},
		},
		{
			name:    "relays a late 100 Continue and then the final response",
			request: "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
			upstream: func(nc net.Conn, br *bufio.Reader, req *http.Request) {
				time.Sleep(deadlinePause)
				io.WriteString(nc, "HTTP/1.1 100 Continue\r\n\r\n")
				b, _ := io.ReadAll(req.Body)
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"+string(b))
			},
			client: func(t *testing.T, c *client) {
				if head, err := readRawHead(c.br); err != nil || !strings.HasPrefix(head, "HTTP/1.1 100 ") {
					t.Fatalf("head %q (%v), want 100 Continue", head, err)
				}
				c.send("hello")
				if resp := c.read("PUT"); resp.StatusCode != 200 || resp.body != "hello" {
					t.Errorf("got %d %q", resp.StatusCode, resp.body)
				}
			},
		},
		{
			name:    "relays a late 103 Early Hints and then the final response",
			request: "GET /hints HTTP/1.1\r\nHost: a\r\n\r\n",
			upstream: func(nc net.Conn, br *bufio.Reader, _ *http.Request) {
				time.Sleep(deadlinePause)
				io.WriteString(nc, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"+
					"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
			},
			client: func(t *testing.T, c *client) {
				if head, err := readRawHead(c.br); err != nil || !strings.HasPrefix(head, "HTTP/1.1 103 ") {
					t.Fatalf("head %q (%v), want 103", head, err)
				}
				if resp := c.read("GET"); resp.StatusCode != 200 || resp.body != "done" {
					t.Errorf("got %d %q", resp.StatusCode, resp.body)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
				if _, err := readRawRequest(br); err != nil {
					return
				}
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				tt.upstream(nc, br, req)
			})
			srv := &Server{Router: staticRouter(be.addr()), Limits: Limits{StreamIdleTimeout: deadlineIdle}}
			c := dial(t, startProxy(t, srv))
			if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.body != "ok" {
				t.Fatalf("first request: %d %q", resp.StatusCode, resp.body)
			}
			time.Sleep(deadlinePause)
			c.send(tt.request)
			c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
			tt.client(t, c)
		})
	}
	t.Run("answers 100 Continue for an h2c upstream after a slow request head", func(t *testing.T) {
		t.Parallel()
		be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(w, r.Body)
		})
		router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
			return Upstream{Addr: be.addr(), Protocol: H2C}, nil
		})
		c := dial(t, startProxy(t, &Server{Router: router, Limits: Limits{StreamIdleTimeout: deadlineIdle}}))
		if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("first request: %d %q", resp.StatusCode, resp.body)
		}
		time.Sleep(deadlinePause)
		c.send("P")
		time.Sleep(deadlinePause)
		c.send("UT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		if head, err := readRawHead(c.br); err != nil || !strings.HasPrefix(head, "HTTP/1.1 100 ") {
			t.Fatalf("head %q (%v), want 100 Continue", head, err)
		}
		c.send("hello")
		if resp := c.read("PUT"); resp.StatusCode != 200 || resp.body != "hello" {
			t.Errorf("got %d %q", resp.StatusCode, resp.body)
		}
	})
}
