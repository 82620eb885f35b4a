package httpfwd

import (
	"bufio"
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// parkRequest is a small keep-alive request answered by benchBackend.
const parkRequest = "GET /hello HTTP/1.1\r\nHost: park.test\r\n\r\n"

// keepAliveClients opens n connections to addr and makes one request on each.
func keepAliveClients(t *testing.T, addr string, n int) []*client {
	t.Helper()
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = dial(t, addr)
		if r := cs[i].roundTrip(parkRequest); r.StatusCode != 200 {
			t.Fatalf("request %d = %d", i, r.StatusCode)
		}
	}
	return cs
}

// waitUntil polls cond until it holds or 5 s passed.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// servingGoroutines counts goroutines whose stack shows the serving loop, as opposed to resume.
func servingGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "httpfwd.(*conn).serve(")
}

func TestParkedConnectionsHoldOnlyTheirSmallState(t *testing.T) {
	const n = 50
	srv := &Server{Router: staticRouter(benchBackend(t)), IdleRelease: 50 * time.Millisecond}
	addr := startProxy(t, srv)
	before := servingGoroutines() // any other test's, which are none of this one's
	cs := keepAliveClients(t, addr, n)
	waitUntil(t, "every connection parked", func() bool { return srv.Stats().Parked >= n })

	srv.mu.Lock()
	for c := range srv.active {
		if c.work != nil || c.bufs != nil || c.br != nil {
			t.Errorf("a parked connection holds work %v, buffers %v", c.work != nil, c.bufs != nil)
		}
	}
	srv.mu.Unlock()
	if got := srv.BufferedConns(); got != 0 {
		t.Errorf("BufferedConns = %d while every connection is idle, want 0", got)
	}
	// The goroutines that served the requests (and grew their stacks) are gone: each parked
	// connection waits on the fresh one resume started.
	if got := servingGoroutines() - before; got != 0 {
		t.Errorf("%d goroutines still in the serving loop, want 0", got)
	}
	// What a parked connection keeps is its conn, a few hundred bytes; the per-request state
	// (heads, pipes, exchange, the arrival room) is several KiB.
	if size, max := unsafe.Sizeof(conn{}), uintptr(512); size > max {
		t.Errorf("conn is %d bytes, want at most %d: move per-request state into work", size, max)
	}
	if size, min := unsafe.Sizeof(work{}), uintptr(2048); size < min {
		t.Errorf("work is only %d bytes: did the per-request state move back into conn?", size)
	}

	// Parked connections go on serving, each as before.
	for i, c := range cs {
		if r := c.roundTrip(parkRequest); r.StatusCode != 200 || r.body != "Hello, World!" {
			t.Fatalf("request %d after parking = %d %q", i, r.StatusCode, r.body)
		}
	}
	if parked := srv.Stats().Parked; parked > 2*n {
		t.Errorf("Parked = %d after %d connections parked once", parked, n)
	}
}

func TestParkedConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, srv *Server, addr string)
	}{
		{name: "a parked connection is closed when its idle timeout ends", run: func(t *testing.T, srv *Server, addr string) {
			c := keepAliveClients(t, addr, 1)[0]
			waitUntil(t, "the connection parked", func() bool { return srv.Stats().Parked == 1 })
			start := time.Now()
			if !c.closedWithin(5 * time.Second) {
				t.Fatal("parked connection still open 5 s after its 300 ms idle timeout")
			}
			waitUntil(t, "the idle timeout counted", func() bool { return srv.Stats().IdleTimeouts == 1 })
			if el := time.Since(start); el < 150*time.Millisecond {
				t.Fatalf("closed %v after parking, before the idle timeout", el)
			}
		}},
		{name: "a drain closes a parked connection at once", run: func(t *testing.T, srv *Server, addr string) {
			c := keepAliveClients(t, addr, 1)[0]
			waitUntil(t, "the connection parked", func() bool { return srv.Stats().Parked == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown with one parked connection: %v", err)
			}
			if !c.closedWithin(2 * time.Second) {
				t.Fatal("the parked connection outlived the drain")
			}
		}},
		{name: "a request split across the wake-up is read whole", run: func(t *testing.T, srv *Server, addr string) {
			c := keepAliveClients(t, addr, 1)[0]
			waitUntil(t, "the connection parked", func() bool { return srv.Stats().Parked == 1 })
			c.send(parkRequest[:1])
			time.Sleep(20 * time.Millisecond)
			c.send(parkRequest[1:])
			if r := c.read("GET"); r.StatusCode != 200 {
				t.Fatalf("split request after parking = %d", r.StatusCode)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &Server{Router: staticRouter(benchBackend(t)), IdleRelease: 20 * time.Millisecond,
				Limits: Limits{IdleTimeout: 300 * time.Millisecond}}
			tt.run(t, srv, startProxy(t, srv))
		})
	}
}

func TestServeConnWaitsForItsParkedConnection(t *testing.T) {
	t.Parallel()
	srv := &Server{Router: staticRouter(benchBackend(t)), IdleRelease: 20 * time.Millisecond}
	t.Cleanup(func() { srv.Close() })
	ln := listen(t)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		srv.ServeConn(context.Background(), nc)
	}()
	c := keepAliveClients(t, ln.Addr().String(), 1)[0]
	waitUntil(t, "the connection parked", func() bool { return srv.Stats().Parked == 1 })
	select {
	case <-returned:
		t.Fatal("ServeConn returned while its connection was parked, still open")
	case <-time.After(50 * time.Millisecond):
	}
	if r := c.roundTrip(parkRequest); r.StatusCode != 200 {
		t.Fatalf("request after parking = %d", r.StatusCode)
	}
	c.nc.Close()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return 5 s after its client closed")
	}
}

// closedWithin reports whether the proxy closes the connection within d.
func (c *client) closedWithin(d time.Duration) bool {
	c.nc.SetReadDeadline(time.Now().Add(d))
	_, err := bufio.NewReader(c.nc).ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func TestLimitsIdleReleaseSetsWhenConnectionsPark(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lim      Limits
		wantPark bool
	}{
		{name: "a short IdleRelease in Limits parks an idle connection", lim: Limits{IdleRelease: 20 * time.Millisecond}, wantPark: true},
		{name: "a negative IdleRelease in Limits never parks", lim: Limits{IdleRelease: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &Server{Router: staticRouter(benchBackend(t)), Limits: tt.lim}
			c := keepAliveClients(t, startProxy(t, srv), 1)[0]
			if tt.wantPark {
				waitUntil(t, "the connection parked", func() bool { return srv.Stats().Parked == 1 })
			} else {
				// Past the one-second default, which a negative value must not fall back to.
				time.Sleep(1500 * time.Millisecond)
				if n := srv.Stats().Parked; n != 0 {
					t.Fatalf("%d connections parked with IdleRelease -1", n)
				}
			}
			if r := c.roundTrip(parkRequest); r.StatusCode != 200 {
				t.Fatalf("request after the wait = %d", r.StatusCode)
			}
		})
	}
}
