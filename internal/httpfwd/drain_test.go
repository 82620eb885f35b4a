package httpfwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// slowBackend answers GET /slow only once release is closed, after sending on got, and any
// other request at once; it keeps its connections alive.
func slowBackend(t *testing.T, got chan<- string, release <-chan struct{}) *rawBackend {
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		for {
			req, err := readRawRequest(br)
			if err != nil {
				return
			}
			body := "fast"
			if req.URL.Path != "/fast" {
				got <- req.URL.Path
				<-release
				body = "slow"
			}
			fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
}

// shutdownAsync runs Shutdown with a wide deadline and returns its result when it comes.
func shutdownAsync(srv *Server) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	return done
}

func TestDrainFinishesHTTP1RequestsInFlight(t *testing.T) {
	t.Parallel()
	got, release := make(chan string, 1), make(chan struct{})
	be := slowBackend(t, got, release)
	srv := &Server{Router: staticRouter(be.addr())}
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	idle := dial(t, ln.Addr().String())
	if resp := idle.roundTrip("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("before the drain: status %d, close %v", resp.StatusCode, resp.Close)
	}
	slow := dial(t, ln.Addr().String())
	slow.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-got

	srv.Drain()
	if !srv.Draining() {
		t.Error("Draining is false after Drain")
	}
	done := shutdownAsync(srv)
	t.Run("a new connection is refused", func(t *testing.T) {
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second); err == nil {
			c.Close()
			t.Error("the listener still accepts while draining")
		}
	})
	t.Run("an idle keep-alive connection is closed promptly", func(t *testing.T) {
		start := time.Now()
		if !idle.closed() {
			t.Fatal("the idle connection is still open")
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("the idle connection took %v to close", d)
		}
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	default:
	}
	close(release)
	t.Run("the request in flight completes and closes its connection", func(t *testing.T) {
		resp := slow.read("GET")
		if resp.StatusCode != 200 || resp.body != "slow" {
			t.Errorf("got %d %q, want 200 \"slow\"", resp.StatusCode, resp.body)
		}
		// net/http moves Connection: close of an HTTP/1.1 response to Close.
		if !resp.Close {
			t.Error("the response lacks Connection: close")
		}
		if !slow.closed() {
			t.Error("the connection stayed open after its response")
		}
	})
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last request finished")
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
}

func TestDrainSendsHTTP2ClientsGoAway(t *testing.T) {
	t.Parallel()
	got, release := make(chan string, 2), make(chan struct{})
	be := slowBackend(t, got, release)
	srv := &Server{Router: staticRouter(be.addr())}
	addr := startProxy(t, srv)
	c := dialH2(t, addr)
	c.get(1, "a.test")
	c.get(3, "a.test")
	<-got
	<-got

	srv.Drain()
	done := shutdownAsync(srv)
	f := c.next(nil)
	ga, ok := f.(*http2.GoAwayFrame)
	if !ok {
		t.Fatalf("first frame after the drain is %v, want GOAWAY", f.Header())
	}
	if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 3 {
		t.Errorf("GOAWAY code %v, last stream %d; want NO_ERROR and 3, the highest stream started", ga.ErrCode, ga.LastStreamID)
	}

	close(release)
	status, ended := map[uint32]string{}, map[uint32]bool{}
	for len(ended) < 2 {
		switch f := c.next(nil).(type) {
		case *http2.MetaHeadersFrame:
			status[f.StreamID] = f.PseudoValue("status")
			if f.StreamEnded() {
				ended[f.StreamID] = true
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				ended[f.StreamID] = true
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset with %v", f.StreamID, f.ErrCode)
		}
	}
	for _, id := range []uint32{1, 3} {
		if status[id] != "200" {
			t.Errorf("stream %d: status %q, want 200", id, status[id])
		}
	}
	for {
		// Only frames the server may still send, such as a PING, can come before the close.
		if _, err := c.fr.ReadFrame(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("the connection ended with %v, want a clean close", err)
			}
			break
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the HTTP/2 connection closed")
	}
}

func TestShutdownClosesWhatOutlastsItsDeadline(t *testing.T) {
	t.Parallel()
	got, release := make(chan string, 1), make(chan struct{})
	defer close(release)
	be := slowBackend(t, got, release)
	srv := &Server{Router: staticRouter(be.addr())}
	addr := startProxy(t, srv)
	c := dial(t, addr)
	c.send("GET /never HTTP/1.1\r\nHost: a\r\n\r\n")
	<-got
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown returned %v, want the deadline's error", err)
	}
	if d := time.Since(start); d < 450*time.Millisecond || d > 5*time.Second {
		t.Errorf("Shutdown took %v with a 500ms deadline", d)
	}
	if !c.closed() {
		t.Error("the request's connection is still open after Shutdown returned")
	}
}

// openConns is how many client connections the server is serving.
func (s *Server) openConns() int {
	s.init() // Serve may not have made the set yet, on its own goroutine
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

func TestDrainGivesANewConnectionAGraceForItsFirstRequest(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "answered") })
	tests := []struct {
		name string
		// send is written after the drain began; empty sends nothing.
		send      string
		wantClose time.Duration // with nothing sent: the connection closes no sooner
	}{
		{name: "a request sent just after the drain began is answered with Connection: close",
			send: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "a connection that sends nothing is closed when the grace ends", wantClose: firstRequestGrace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &Server{Router: staticRouter(be.Listener.Addr().String())}
			ln := listen(t)
			go srv.Serve(ln)
			c := dial(t, ln.Addr().String())
			waitFor(func() bool { return srv.openConns() == 1 })
			if n := srv.openConns(); n != 1 {
				t.Fatalf("the server serves %d connections, want the one dialled", n)
			}
			start := time.Now()
			srv.Drain()
			done := shutdownAsync(srv)
			if tt.send != "" {
				resp := c.roundTrip(tt.send)
				if resp.StatusCode != 200 || resp.body != "answered" || !resp.Close {
					t.Errorf("got %d %q close=%v, want 200 \"answered\" with Connection: close", resp.StatusCode, resp.body, resp.Close)
				}
			}
			c.nc.SetReadDeadline(time.Now().Add(tt.wantClose + 3*time.Second))
			if _, err := c.br.ReadByte(); err == nil || isTimeout(err) {
				t.Fatalf("the connection is still open: %v", err)
			}
			if d := time.Since(start); d < tt.wantClose-50*time.Millisecond {
				t.Errorf("closed %v into the drain, before the %v grace", d, tt.wantClose)
			}
			if err := <-done; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}

func TestServeConnDuringADrain(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "answered") })
	srv := &Server{Router: staticRouter(be.Listener.Addr().String())}
	ln := listen(t)
	handOver := func() *client {
		c := dial(t, ln.Addr().String())
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.ServeConn(context.Background(), nc)
		}()
		t.Cleanup(func() { <-served })
		return c
	}
	srv.Drain()
	t.Run("a connection handed over while draining gets one request answered", func(t *testing.T) {
		c := handOver()
		resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != 200 || !resp.Close {
			t.Errorf("got %d close=%v, want 200 with Connection: close", resp.StatusCode, resp.Close)
		}
		if !c.closed() {
			t.Error("the connection stayed open after its response")
		}
	})
	srv.Close()
	t.Run("a connection handed over after Close is closed at once", func(t *testing.T) {
		if c := handOver(); !c.closed() {
			t.Error("the connection is open after Close")
		}
	})
}
