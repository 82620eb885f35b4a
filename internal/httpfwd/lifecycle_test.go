package httpfwd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUpstreamConnectionsAreReused(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	pool := &Pool{}
	defer pool.Close()
	addr := startProxy(t, &Server{Router: staticRouter(be.addr()), Pool: pool})
	for range 3 {
		c := dial(t, addr)
		for range 5 {
			if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		c.nc.Close()
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("backend accepted %d connections for 15 sequential requests, want 1", n)
	}
	waitFor(func() bool { return pool.Idle() >= 1 })
	if n := pool.Idle(); n != 1 {
		t.Errorf("pool holds %d idle connections, want 1", n)
	}
}

func TestPoolBoundsIdleConnections(t *testing.T) {
	t.Parallel()
	pool := &Pool{MaxIdlePerKey: 2, IdleTimeout: 300 * time.Millisecond}
	defer pool.Close()
	// Four concurrent requests need four connections; only two may stay.
	release := make(chan struct{})
	slow := startBackend(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	slowAddr := startProxy(t, &Server{Router: staticRouter(slow.addr()), Pool: pool})
	var wg sync.WaitGroup
	for range 4 {
		c := dial(t, slowAddr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		wg.Go(func() { c.read("GET") })
	}
	for slow.conns.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	waitFor(func() bool { return pool.Idle() >= 2 })
	if n := pool.Idle(); n != 2 {
		t.Errorf("pool holds %d idle connections, want the bound of 2", n)
	}
	t.Run("closes connections idle for longer than its timeout", func(t *testing.T) {
		waitFor(func() bool { return pool.Idle() == 0 })
		if n := pool.Idle(); n != 0 {
			t.Errorf("pool holds %d idle connections after the idle timeout", n)
		}
	})
}

// oneShotBackend answers one request per connection, then closes it without saying so, the
// way servers with short keep-alive timeouts leave pooled connections stale.
func oneShotBackend(t *testing.T) *rawBackend {
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
}

// dropSecondBackend answers the first request of each connection and closes the connection
// when the next one arrives, without answering it: the close crosses the request on the wire,
// which no check of an idle connection can see coming.
func dropSecondBackend(t *testing.T) *rawBackend {
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			readRawRequest(br)
		}
	})
}

func TestStalePooledConnections(t *testing.T) {
	t.Parallel()
	t.Run("drops a pooled connection the upstream closed before reusing it", func(t *testing.T) {
		t.Parallel()
		be := oneShotBackend(t)
		router := &recordingRouter{addr: be.addr()}
		c := dial(t, startProxy(t, &Server{Router: router}))
		for i := range 3 {
			resp := c.roundTrip("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
			if resp.StatusCode != 200 || resp.body != "ok" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, resp.body)
			}
			time.Sleep(20 * time.Millisecond) // let the close reach the proxy's pooled connection
		}
		if n := be.conns.Load(); n != 3 {
			t.Errorf("backend accepted %d connections, want 3", n)
		}
		router.mu.Lock()
		defer router.mu.Unlock()
		for _, err := range router.errs {
			if err != nil {
				t.Errorf("a stale connection was reported as an upstream failure: %v", err)
			}
		}
	})
	t.Run("resends a request without body when the connection closes under it", func(t *testing.T) {
		t.Parallel()
		be := dropSecondBackend(t)
		router := &recordingRouter{addr: be.addr()}
		c := dial(t, startProxy(t, &Server{Router: router}))
		for i := range 3 {
			resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp.StatusCode != 200 || resp.body != "ok" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, resp.body)
			}
		}
		if n := be.conns.Load(); n != 3 {
			t.Errorf("backend accepted %d connections, want 3", n)
		}
		router.mu.Lock()
		defer router.mu.Unlock()
		for _, err := range router.errs {
			if err != nil {
				t.Errorf("a stale connection was reported as an upstream failure: %v", err)
			}
		}
	})
	t.Run("does not resend a request whose body was consumed", func(t *testing.T) {
		t.Parallel()
		be := dropSecondBackend(t)
		c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
		c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp := c.roundTrip("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
		if resp.StatusCode != 502 {
			t.Errorf("status %d, want 502", resp.StatusCode)
		}
		if n := be.conns.Load(); n != 1 {
			t.Errorf("backend accepted %d connections, want 1: the request must not be resent", n)
		}
	})
}

func TestExpectContinue(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deny" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	t.Run("relays 100 Continue before the client sends its body", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		c.send("PUT /put HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		head, err := readRawHead(c.br)
		if err != nil || !strings.HasPrefix(head, "HTTP/1.1 100 Continue\r\n") {
			t.Fatalf("interim head %q (%v)", head, err)
		}
		c.send("hello")
		if resp := c.read("PUT"); resp.StatusCode != 200 || resp.body != "hello" {
			t.Errorf("got %d %q", resp.StatusCode, resp.body)
		}
	})
	t.Run("relays a final answer the upstream gives instead of 100 Continue", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		c.send("PUT /deny HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp := c.read("PUT")
		if resp.StatusCode != 401 || !resp.Close {
			t.Errorf("got %d close=%v, want 401 and the connection closed", resp.StatusCode, resp.Close)
		}
	})
	t.Run("sends the body anyway when the upstream ignores Expect", func(t *testing.T) {
		t.Parallel()
		raw := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(req.Body)
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"+string(b))
		})
		srv := &Server{Router: staticRouter(raw.addr()), Limits: Limits{ExpectContinueTimeout: 50 * time.Millisecond}}
		c := dial(t, startProxy(t, srv))
		c.send("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
		if resp := c.read("PUT"); resp.StatusCode != 200 || resp.body != "hello" {
			t.Errorf("got %d %q", resp.StatusCode, resp.body)
		}
	})
}

func TestFullDuplexUpstream(t *testing.T) {
	t.Parallel()
	// An upstream that answers while it still reads the body must not deadlock the proxy.
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		buf := make([]byte, 64<<10)
		for {
			n, err := req.Body.Read(buf)
			if n > 0 {
				io.WriteString(nc, strconv.FormatInt(int64(n), 16)+"\r\n")
				nc.Write(buf[:n])
				io.WriteString(nc, "\r\n")
			}
			if err != nil {
				break
			}
		}
		io.WriteString(nc, "0\r\n\r\n")
	})
	body := payload(8 << 20)
	c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
	go io.WriteString(c.nc, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8388608\r\n\r\n"+string(body))
	resp := c.read("POST")
	if digest([]byte(resp.body)) != digest(body) {
		t.Errorf("echo of %d bytes differs", len(resp.body))
	}
}

func TestUpgrade(t *testing.T) {
	t.Parallel()
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil || req.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(req.Header.Get("Connection"), "upgrade") {
			io.WriteString(nc, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(nc, br) // echo until the client half-closes
	})
	c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
	c.send("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly ")
	head, err := readRawHead(c.br)
	if err != nil || !strings.HasPrefix(head, "HTTP/1.1 101 ") || !strings.Contains(head, "Upgrade: websocket\r\n") {
		t.Fatalf("head %q (%v)", head, err)
	}
	c.send("bytes")
	c.nc.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c.br)
	if err != nil || string(got) != "early bytes" {
		t.Errorf("echo %q (%v), want %q", got, err, "early bytes")
	}
}

func TestConnect(t *testing.T) {
	t.Parallel()
	t.Run("hands a CONNECT request and its connection to OnConnect", func(t *testing.T) {
		t.Parallel()
		srv := &Server{
			Router: staticRouter("127.0.0.1:1"),
			OnConnect: func(_ context.Context, head *RequestHead, nc net.Conn, buffered []byte) {
				defer nc.Close()
				io.WriteString(nc, "HTTP/1.1 200 Connection Established\r\n\r\n")
				io.WriteString(nc, head.Host+" "+strconv.Itoa(head.Port)+" "+string(buffered))
			},
		}
		c := dial(t, startProxy(t, srv))
		c.send("CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\nhello")
		if head, err := readRawHead(c.br); err != nil || !strings.HasPrefix(head, "HTTP/1.1 200") {
			t.Fatalf("head %q (%v)", head, err)
		}
		if rest, _ := io.ReadAll(c.br); string(rest) != "db.example 443 hello" {
			t.Errorf("OnConnect saw %q", rest)
		}
	})
	t.Run("answers 501 to CONNECT without OnConnect", func(t *testing.T) {
		t.Parallel()
		c := dial(t, startProxy(t, &Server{Router: staticRouter("127.0.0.1:1")}))
		if resp := c.roundTrip("CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\n"); resp.StatusCode != 501 {
			t.Errorf("status %d, want 501", resp.StatusCode)
		}
	})
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	type entry struct {
		method, host, upstream, id string
		status                     int
		err                        error
	}
	got := make(chan entry, 4)
	srv := &Server{
		Router: staticRouter(be.addr()),
		AccessLog: func(r *AccessRecord) {
			got <- entry{method: r.Request.Method, host: r.Request.Host, upstream: r.Upstream,
				id: string(r.RequestID), status: r.Status, err: r.Err}
		},
	}
	c := dial(t, startProxy(t, srv))
	c.roundTrip("GET / HTTP/1.1\r\nHost: Logged.Test\r\nX-Request-Id: id-1\r\n\r\n")
	want := entry{method: "GET", host: "logged.test", upstream: be.addr(), id: "id-1", status: 200}
	if e := <-got; e != want {
		t.Errorf("record %+v, want %+v", e, want)
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	srv := &Server{Router: staticRouter(be.addr())}
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v with only an idle connection", d)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	if !c.closed() {
		t.Error("idle connection left open")
	}
}

// waitFor polls cond for up to three seconds; a response reaches the client just before its
// upstream connection returns to the pool, so pool counts settle a moment later.
func waitFor(cond func() bool) {
	for deadline := time.Now().Add(3 * time.Second); !cond() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseAbortsRequestsInFlight(t *testing.T) {
	t.Parallel()
	got := make(chan struct{})
	release := make(chan struct{})
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		readRawRequest(br)
		close(got)
		<-release
	})
	defer close(release)
	srv := &Server{Router: staticRouter(be.addr())}
	ln := listen(t)
	go srv.Serve(ln)
	c := dial(t, ln.Addr().String())
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	<-got
	srv.Close()
	waited := make(chan struct{})
	go func() {
		srv.serveGroup.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(2 * time.Second):
		t.Fatal("a request waiting on its upstream outlived Close")
	}
	if !c.closed() {
		t.Error("client connection left open")
	}
}

func TestPanickingRouter(t *testing.T) {
	t.Parallel()
	router := RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
		if req.Host == "boom.test" {
			panic("router bug")
		}
		return Upstream{}, &Reject{Status: 403}
	})
	addr := startProxy(t, &Server{Router: router})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: boom.test\r\n\r\n")
	if !c.closed() {
		t.Fatal("connection left open after a panic")
	}
	if resp := dial(t, addr).roundTrip("GET / HTTP/1.1\r\nHost: fine.test\r\n\r\n"); resp.StatusCode != 403 {
		t.Errorf("the server stopped answering after a panic: %d", resp.StatusCode)
	}
}
