package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/testutil/netpair"
)

// readAllWithin reads c to its end, or for at most d.
func readAllWithin(c net.Conn, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestForwardLoopBounds holds the loop engine to the engine's bounds: each case runs through
// both paths, with the same short limits, and the answers (the bytes the client reads until
// the proxy closes) are the same; the loop counts the bound it hit.
func TestForwardLoopBounds(t *testing.T) {
	back := startRawBackend(t)
	full, _, _ := netpair.Hung(t)
	cfgYAML := httpLoopConfig(back.ln.Addr().(*net.TCPAddr).Port, 1) + strings.ReplaceAll(strings.ReplaceAll(
		httpLoopConfig(int(full.Port()), 1), "name: web", "name: full"), "web.test", "full.test")
	cfg := Config{Namespace: "istio-system", ConnectTimeout: 200 * time.Millisecond, MaxAttempts: 2,
		HTTP: httpfwd.Limits{IdleTimeout: 300 * time.Millisecond, HeaderReadTimeout: 300 * time.Millisecond,
			StreamIdleTimeout: 300 * time.Millisecond}}
	goPath := startProxy(t, cfgYAML, cfg, "")
	loopPath, _ := startLoopProxy(t, cfgYAML, cfg)
	const first = "GET /cl HTTP/1.1\r\nHost: web.test\r\n\r\n"
	tests := []struct {
		name  string
		send  string // after a first request and its response
		count func(httpfwd.LoopStats) uint64
	}{
		{name: "closes a keep-alive client idle past IdleTimeout",
			count: func(s httpfwd.LoopStats) uint64 { return s.IdleTimeouts }},
		{name: "answers 408 to a head not complete within HeaderReadTimeout", send: "GET /cl HTTP/1.1\r\nHo",
			count: func(s httpfwd.LoopStats) uint64 { return s.HeadTimeouts }},
		{name: "answers 504 when the upstream says nothing for StreamIdleTimeout", send: "GET /hang HTTP/1.1\r\nHost: web.test\r\n\r\n",
			count: func(s httpfwd.LoopStats) uint64 { return s.StreamTimeouts }},
		{name: "answers 503 once the connects past ConnectTimeout used the endpoints up", send: "GET / HTTP/1.1\r\nHost: full.test\r\n\r\n",
			count: func(s httpfwd.LoopStats) uint64 { return s.ConnectTimeouts }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.count(loopPath.p.ForwardLoopHTTPStats())
			var answers [2]string
			for i, addr := range []string{goPath.addr, loopPath.addr} {
				c := dial(t, addr)
				io.WriteString(c, first)
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				io.WriteString(c, tt.send)
				start := time.Now()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				rest, _ := io.ReadAll(br)
				if time.Since(start) > 3*time.Second {
					t.Errorf("path %d closed after %v", i, time.Since(start))
				}
				answers[i] = uuidPattern.ReplaceAllString(string(rest), "ID")
				c.Close()
			}
			if answers[0] != answers[1] {
				t.Errorf("on the loop:\n%q\nby the engine:\n%q", answers[1], answers[0])
			}
			if got := tt.count(loopPath.p.ForwardLoopHTTPStats()) - before; got != 1 {
				t.Errorf("counted %d times, want 1: %+v, answer %q", got, loopPath.p.ForwardLoopHTTPStats(), answers[1])
			}
		})
	}
}

// TestForwardLoopNeverReusesAConnectionOnWhichBytesArrived has the upstream send an unasked
// response on a connection idle in the loop's pool: the loop drops the connection at that
// edge, and the next request goes out on a fresh one and gets its own answer.
func TestForwardLoopNeverReusesAConnectionOnWhichBytesArrived(t *testing.T) {
	back := startRawBackend(t)
	h, _ := startLoopProxy(t, httpLoopConfig(back.ln.Addr().(*net.TCPAddr).Port, 1), Config{Namespace: "istio-system"})
	got := exchangeKeepAlive(t, h.addr, []string{"GET /extra HTTP/1.1\r\nHost: web.test\r\n\r\n"})
	if len(got) != 1 || !strings.HasSuffix(got[0], "first") {
		t.Fatalf("first answer %q", got)
	}
	waitFor(t, func() bool { return h.p.ForwardLoopHTTPStats().PoolIdleClosed == 1 }, "the pool to drop the connection")
	got = exchangeKeepAlive(t, h.addr, []string{"GET /204 HTTP/1.1\r\nHost: web.test\r\n\r\n"})
	if len(got) != 1 || !strings.HasPrefix(got[0], "HTTP/1.1 204") {
		t.Fatalf("the next request was answered %q", got)
	}
	if s := h.p.ForwardLoopHTTPStats(); s.PoolReused != 0 {
		t.Errorf("a connection was reused: %+v", s)
	}
}

// TestForwardLoopDrain drains a loop with a keep-alive client idle and a request in flight:
// the idle client is closed, the request finishes with Connection: close, and the Group's
// Shutdown returns without cutting anything.
func TestForwardLoopDrain(t *testing.T) {
	back := startRawBackend(t)
	h, g := startLoopProxy(t, httpLoopConfig(back.ln.Addr().(*net.TCPAddr).Port, 1), Config{Namespace: "istio-system"})
	idle := dial(t, h.addr)
	io.WriteString(idle, "GET /cl HTTP/1.1\r\nHost: web.test\r\n\r\n")
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	busy := dial(t, h.addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: web.test\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // the request is upstream
	done := make(chan error, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { done <- h.p.Shutdown(ctx) }()
	go func() { done <- g.Shutdown(ctx) }()
	if rest, err := readAllWithin(idle, 2*time.Second); rest != "" || err != nil {
		t.Errorf("the idle client read %q, %v: want the close", rest, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "slow" || !resp.Close {
		t.Errorf("in flight: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	if s := h.p.ForwardLoopHTTPStats(); s.DrainClosed != 1 {
		t.Errorf("drain closed %d idle clients, want 1", s.DrainClosed)
	}
}

// TestForwardLoopPoolKeepsAtMostMaxIdlePerKey has two requests in flight at once on one loop,
// each on its own upstream connection: once both are answered, the loop's pool keeps one
// (MaxIdleUpstreamConns) and closes the other, counted.
func TestForwardLoopPoolKeepsAtMostMaxIdlePerKey(t *testing.T) {
	back := startRawBackend(t)
	h := startProxy(t, httpLoopConfig(back.ln.Addr().(*net.TCPAddr).Port, 1), Config{Namespace: "istio-system", MaxIdleUpstreamConns: 1}, "")
	o := h.p.ForwardLoopOptions()
	o.Loops = 1 // one loop, one pool
	g, err := evloop.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	addr, err := h.p.ListenForwardLoop(g, netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []string, 2)
	for range 2 {
		go func() {
			done <- exchangeKeepAlive(t, addr.String(), []string{"GET /slow HTTP/1.1\r\nHost: web.test\r\n\r\n"})
		}()
	}
	for range 2 {
		if got := <-done; len(got) != 1 || !strings.HasSuffix(got[0], "slow") {
			t.Fatalf("answer %q", got)
		}
	}
	if s := h.p.ForwardLoopHTTPStats(); s.PoolFull != 1 {
		t.Errorf("%d connections closed at the pool's bound, want 1: %+v", s.PoolFull, s)
	}
}

// TestForwardLoopParksAnIdleKeepAliveClient has two keep-alive clients take turns on one loop:
// each wait for a next request gives the request state back (a park), and each request after
// one is served on a state taken again, its answer whole, with the chunked and the plain body
// alike.
func TestForwardLoopParksAnIdleKeepAliveClient(t *testing.T) {
	back := startRawBackend(t)
	h, _ := startLoopProxy(t, httpLoopConfig(back.ln.Addr().(*net.TCPAddr).Port, 1), Config{Namespace: "istio-system"})
	a, b := dial(t, h.addr), dial(t, h.addr)
	readers := map[net.Conn]*bufio.Reader{a: bufio.NewReader(a), b: bufio.NewReader(b)}
	for i, step := range []struct {
		c          net.Conn
		path, body string
	}{{a, "/cl", "hello"}, {b, "/chunked", "hello, w"}, {a, "/chunked", "hello, w"}, {b, "/cl", "hello"}, {a, "/cl", "hello"}} {
		io.WriteString(step.c, "GET "+step.path+" HTTP/1.1\r\nHost: web.test\r\n\r\n")
		resp, err := http.ReadResponse(readers[step.c], nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != step.body {
			t.Fatalf("request %d %s: %d %q %v, want 200 %q", i+1, step.path, resp.StatusCode, body, err, step.body)
		}
		waitFor(t, func() bool { return h.p.ForwardLoopHTTPStats().Parks == uint64(i+1) }, "the client to park")
	}
	if s := h.p.ForwardLoopHTTPStats(); s.Requests != 5 || s.Handoffs != 0 {
		t.Errorf("loop stats %+v, want the 5 requests served on the loop", s)
	}
}
