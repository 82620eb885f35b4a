package httpfwd

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// okBackend answers every request with 200 "ok", keep-alive; a request for /slow waits for
// release first.
func okBackend(t *testing.T, release <-chan struct{}) *rawBackend {
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		for {
			req, err := readRawRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/slow" {
				<-release
			}
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
}

func TestIdleConnectionsHoldNoBuffers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	be := okBackend(t, release)
	srv := &Server{Router: staticRouter(be.addr())}
	addr := startProxy(t, srv)
	const idle = 5
	for i := range idle {
		c := dial(t, addr)
		if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.body != "ok" {
			t.Fatalf("client %d: %d %q", i, resp.StatusCode, resp.body)
		}
	}
	waitFor(func() bool { return srv.BufferedConns() == 0 })
	if n := srv.BufferedConns(); n != 0 {
		t.Fatalf("%d of %d idle keep-alive connections hold buffers, want none", n, idle)
	}
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(func() bool { return srv.BufferedConns() == 1 })
	if n := srv.BufferedConns(); n != 1 {
		t.Fatalf("BufferedConns = %d with one request in flight, want 1", n)
	}
	close(release)
	if resp := busy.read("GET"); resp.body != "ok" {
		t.Fatalf("slow request: %d %q", resp.StatusCode, resp.body)
	}
	waitFor(func() bool { return srv.BufferedConns() == 0 })
	if n := srv.BufferedConns(); n != 0 {
		t.Errorf("BufferedConns = %d once the slow request was answered, want 0", n)
	}
}

func TestARequestArrivingInPiecesAfterAnIdleWait(t *testing.T) {
	t.Parallel()
	be := okBackend(t, nil)
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	long := "GET /" + strings.Repeat("p", 3*arrivalSize) + " HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := []struct {
		name   string
		pieces []string
	}{
		{name: "a head split across reads is read whole", pieces: strings.SplitAfter("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "\n")},
		{name: "a head longer than the arrival room is read on into the buffer", pieces: []string{long}},
		{name: "two pipelined requests are both answered", pieces: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"}},
		{name: "a body that follows its head is forwarded", pieces: []string{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", strings.Repeat("b", 5000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			time.Sleep(20 * time.Millisecond) // the connection waits without buffers now
			for _, p := range tt.pieces {
				c.send(p)
				time.Sleep(10 * time.Millisecond)
			}
			want := strings.Count(strings.Join(tt.pieces, ""), "HTTP/1.1\r\n")
			for i := range want {
				if resp := c.read("GET"); resp.StatusCode != 200 || resp.body != "ok" {
					t.Fatalf("response %d: %d %q", i, resp.StatusCode, resp.body)
				}
			}
		})
	}
}

func TestAnIdleConnectionStillEnds(t *testing.T) {
	t.Parallel()
	t.Run("closes after the idle timeout", func(t *testing.T) {
		t.Parallel()
		be := okBackend(t, nil)
		srv := &Server{Router: staticRouter(be.addr()), Limits: Limits{IdleTimeout: 300 * time.Millisecond}}
		c := dial(t, startProxy(t, srv))
		c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		start := time.Now()
		if !c.closed() {
			t.Fatal("the idle connection stayed open")
		}
		if took := time.Since(start); took < 250*time.Millisecond {
			t.Errorf("closed after %v, before the 300ms idle timeout", took)
		}
		if st := srv.Stats(); st.IdleTimeouts != 1 {
			t.Errorf("IdleTimeouts = %d, want 1", st.IdleTimeouts)
		}
	})
	t.Run("closes when the server drains", func(t *testing.T) {
		t.Parallel()
		be := okBackend(t, nil)
		srv := &Server{Router: staticRouter(be.addr())}
		c := dial(t, startProxy(t, srv))
		c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v (the idle connection did not close)", err)
		}
		if !c.closed() {
			t.Error("the idle connection stayed open after the drain")
		}
	})
}
