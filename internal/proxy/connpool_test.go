package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// answer is one result of burst.
type answer struct {
	code   int
	reason string
	err    error
}

// burst sends n concurrent GETs through c and returns their results on a channel as they finish.
func burst(c *http.Client, url string, n int, fields ...string) chan answer {
	out := make(chan answer, n)
	for range n {
		go func() {
			code, _, hdr, err := do(c, url, fields...)
			a := answer{code: code, err: err}
			if hdr != nil {
				a.reason = hdr.Get("X-Meshentry-Reason")
			}
			out <- a
		}()
	}
	return out
}

func TestMaxConnectionsBoundsUpstreamConnectionsAndQueuesOrRefusesTheRest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		traffic string
		// refused is how many of the 20 requests get 503 at once.
		refused int
		// h2 sends them as streams of one HTTP/2 client connection.
		h2 bool
	}{
		{name: "queues the requests beyond two connections until one frees", traffic: "connectionPool: {tcp: {maxConnections: 2}}", refused: 0},
		{name: "refuses the requests beyond two connections and three pending", traffic: "connectionPool: {tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 3}}", refused: 15},
		{name: "queues the HTTP/2 streams beyond two connections until one frees", traffic: "connectionPool: {tcp: {maxConnections: 2}}", refused: 0, h2: true},
		{name: "refuses the HTTP/2 streams beyond two connections and three pending", traffic: "connectionPool: {tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 3}}", refused: 15, h2: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newDRBackend(t, "b", nil)
			b.holdAll.Store(true)
			h := startProxy(t, drDocs("pool.test", tc.traffic, b), Config{}, "")
			const n = 20
			var out chan answer
			if tc.h2 {
				out = burst(h2cClient(t), "http://"+h.addr+"/", n, "Host: pool.test")
			} else {
				out = burst(drClient(t, h), "http://pool.test/", n)
			}
			pollFor(t, "two requests at the backend", 5*time.Second, func() bool { return b.inflight.Load() == 2 })
			refused := 0
			for refused < tc.refused {
				select {
				case a := <-out:
					if a.err != nil || a.code != 503 || a.reason == "" {
						t.Fatalf("an overflowing request got %d (%q, %v), want 503 with a reason", a.code, a.reason, a.err)
					}
					refused++
				case <-time.After(5 * time.Second):
					t.Fatalf("only %d requests were refused, want %d", refused, tc.refused)
				}
			}
			// Give requests the limit ignores time to open more connections before the check.
			time.Sleep(200 * time.Millisecond)
			if got := b.maxOpen.Load(); got > 2 {
				t.Fatalf("%d upstream connections were open at once, want at most 2", got)
			}
			b.unblock()
			for range n - tc.refused {
				if a := <-out; a.err != nil || a.code != 200 {
					t.Fatalf("a request within the limits got %d (%v)", a.code, a.err)
				}
			}
			if got := b.maxOpen.Load(); got > 2 {
				t.Fatalf("%d upstream connections were open at once, want at most 2", got)
			}
		})
	}
}

func TestHTTP2MaxRequestsRefusesRequestsBeyondThoseInFlight(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		h2   bool
	}{
		{name: "refuses HTTP/1.1 requests beyond three in flight"},
		{name: "refuses HTTP/2 streams beyond three in flight", h2: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newDRBackend(t, "b", nil)
			b.holdAll.Store(true)
			h := startProxy(t, drDocs("inflight.test", "connectionPool: {http: {http2MaxRequests: 3}}", b), Config{}, "")
			var out chan answer
			if tc.h2 {
				out = burst(h2cClient(t), "http://"+h.addr+"/", 10, "Host: inflight.test")
			} else {
				out = burst(drClient(t, h), "http://inflight.test/", 10)
			}
			checkInFlight(t, b, out)
		})
	}
}

// h2cClient is a client whose requests are streams of HTTP/2 connections without TLS.
func h2cClient(t *testing.T) *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// checkInFlight checks that of 10 requests to a holding backend 7 are refused and 3 reach it.
func checkInFlight(t *testing.T, b *drBackend, out chan answer) {
	t.Helper()
	for range 7 {
		select {
		case a := <-out:
			if a.err != nil || a.code != 503 || a.reason == "" {
				t.Fatalf("a request beyond three in flight got %d (%q, %v), want 503 with a reason", a.code, a.reason, a.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the requests beyond three in flight were not refused")
		}
	}
	// The three admitted may still be on their way to the backend.
	pollFor(t, "three requests at the backend", 5*time.Second, func() bool { return b.inflight.Load() >= 3 })
	if got := b.hits.Load(); got != 3 {
		t.Fatalf("%d requests reached the backend, want 3", got)
	}
	b.unblock()
	for range 3 {
		if a := <-out; a.code != 200 {
			t.Fatalf("a request in flight got %d (%v)", a.code, a.err)
		}
	}
}

func TestMaxRequestsPerConnectionOpensANewConnectionPerRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		traffic string
		accepts int64
	}{
		{name: "opens one connection per request with maxRequestsPerConnection 1", traffic: "connectionPool: {http: {maxRequestsPerConnection: 1}}", accepts: 5},
		{name: "reuses one connection without it", traffic: "", accepts: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newDRBackend(t, "b", nil)
			h := startProxy(t, drDocs("perconn.test", tc.traffic, b), Config{}, "")
			c := drClient(t, h)
			for range 5 {
				if code, body, _ := fetch(t, c, "http://perconn.test/"); code != 200 {
					t.Fatalf("status %d: %s", code, body)
				}
			}
			if got := b.accepts.Load(); got != tc.accepts {
				t.Fatalf("the backend accepted %d connections for 5 requests, want %d", got, tc.accepts)
			}
		})
	}
}

func TestIdleTimeoutClosesAnIdlePooledConnection(t *testing.T) {
	t.Parallel()
	b := newDRBackend(t, "b", nil)
	h := startProxy(t, drDocs("idle.test", "connectionPool: {http: {idleTimeout: 200ms}}", b), Config{}, "")
	if code, body, _ := fetch(t, drClient(t, h), "http://idle.test/"); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	// The pool's own idle timeout is 90 s: only the DestinationRule's closes it this soon.
	pollFor(t, "the idle upstream connection closed", 5*time.Second, func() bool { return b.open.Load() == 0 })
	if b.accepts.Load() != 1 {
		t.Fatalf("the backend accepted %d connections, want 1", b.accepts.Load())
	}
}

// dialRecorder is a proxy Dial that records each dial's connect deadline and the connections it
// made.
type dialRecorder struct {
	mu        sync.Mutex
	deadlines []time.Duration
	conns     []net.Conn
	dials     atomic.Int64
	// hang makes every dial wait for its context; refuse fails it at once, as refusing does
	// every dial to refuseAddr.
	hang, refuse bool
	refuseAddr   string
	refused      atomic.Int64
}

func (d *dialRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	if dl, ok := ctx.Deadline(); ok {
		d.mu.Lock()
		d.deadlines = append(d.deadlines, time.Until(dl))
		d.mu.Unlock()
	}
	switch {
	case d.hang:
		<-ctx.Done()
		return nil, fmt.Errorf("dial %s: %w", addr, ctx.Err())
	case d.refuse, addr == d.refuseAddr:
		d.refused.Add(1)
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	c, err := (&net.Dialer{KeepAlive: -1}).DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func TestConnectTimeoutBoundsEachConnectAttempt(t *testing.T) {
	t.Parallel()
	b := newDRBackend(t, "b", nil)
	d := &dialRecorder{hang: true}
	h := startProxy(t, drDocs("ct.test", "connectionPool: {tcp: {connectTimeout: 100ms}}", b), Config{Dial: d.dial}, "")
	start := time.Now()
	code, _, _ := fetch(t, drClient(t, h), "http://ct.test/")
	if code != 503 {
		t.Fatalf("a connect that never completes got %d, want 503", code)
	}
	// Three attempts of 100 ms; the default is 5 s each.
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the request took %v", took)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dl := range d.deadlines {
		if dl > time.Second {
			t.Fatalf("a connect attempt was given %v, want 100ms", dl)
		}
	}
}

func TestMaxRetriesBoundsTheConnectAttempts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		traffic string
		dials   int64
	}{
		{name: "makes two attempts with maxRetries 1", traffic: "connectionPool: {http: {maxRetries: 1}}", dials: 2},
		{name: "makes three without it", traffic: "", dials: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Three endpoints whose every connect is refused, by the proxy's Dial: a closed
			// port could be taken meanwhile by another test's listener.
			var dead []*drBackend
			for range 3 {
				dead = append(dead, newDRBackend(t, "dead", nil))
			}
			docs := drDocs("retry.test", tc.traffic, dead...)
			d := &dialRecorder{refuse: true}
			h := startProxy(t, docs, Config{Dial: d.dial}, "")
			if code, _, _ := fetch(t, drClient(t, h), "http://retry.test/"); code != 503 {
				t.Fatalf("status %d, want 503", code)
			}
			if got := d.dials.Load(); got != tc.dials {
				t.Fatalf("%d connect attempts, want %d", got, tc.dials)
			}
		})
	}
}

func TestTCPKeepaliveIsSetOnUpstreamSockets(t *testing.T) {
	t.Parallel()
	b := newDRBackend(t, "b", nil)
	d := &dialRecorder{}
	traffic := "connectionPool: {tcp: {tcpKeepalive: {time: 37s, interval: 7s, probes: 4}}}"
	h := startProxy(t, drDocs("ka.test", traffic, b), Config{Dial: d.dial}, "")
	if code, body, _ := fetch(t, drClient(t, h), "http://ka.test/"); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	d.mu.Lock()
	conns := d.conns
	d.mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("%d upstream connections, want 1", len(conns))
	}
	want := map[string][3]int{
		"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 37},
		"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 7},
		"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 4},
	}
	raw, err := conns[0].(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range want {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), opt[0], opt[1]) }); err != nil || gerr != nil {
			t.Fatal(errors.Join(err, gerr))
		}
		if got != opt[2] {
			t.Errorf("%s is %d, want %d", name, got, opt[2])
		}
	}
}

func TestMaxConnectionsClosesATunnelBeyondTheLimit(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	port := echo.Addr().(*net.TCPAddr).Port
	docs := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.test]
  ports: [{number: %d, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db.test
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}
`, port)
	h := startProxy(t, docs, Config{}, "")
	authority := fmt.Sprintf("db.test:%d", port)
	first, status := h.connect(t, authority)
	if status != 200 {
		t.Fatalf("the first tunnel got %d", status)
	}
	if _, status := h.connect(t, authority); status != 503 {
		t.Fatalf("a second tunnel with maxConnections 1 got %d, want 503", status)
	}
	// The counted upstream still passes a half-close on: the echo sees the end and closes.
	first.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := first.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	first.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(first); err != nil || string(got) != "ping" {
		t.Fatalf("after a half-close the tunnel gave %q, %v; want the echo and its end", got, err)
	}
	if got := h.p.Stats().PoolOverflows; got != 1 {
		t.Fatalf("PoolOverflows is %d, want 1", got)
	}
	first.Close()
	// The slot frees once the proxy saw the first tunnel close.
	pollFor(t, "a tunnel after the first closed", 5*time.Second, func() bool {
		c, status := h.connect(t, authority)
		if c != nil {
			c.Close()
		}
		return status == 200
	})
}

func TestConnectionLimitsOutlastAReloadThatKeepsThem(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	port := echo.Addr().(*net.TCPAddr).Port
	docs := func(max int) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.test]
  ports: [{number: %d, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db.test
  trafficPolicy: {connectionPool: {tcp: {maxConnections: %d}}}
`, port, max)
	}
	h := startProxy(t, docs(1), Config{}, "")
	authority := fmt.Sprintf("db.test:%d", port)
	first, status := h.connect(t, authority)
	if status != 200 {
		t.Fatalf("the first tunnel got %d", status)
	}
	defer first.Close()
	h.p.Update(compileSnapshot(t, docs(1)))
	if c, status := h.connect(t, authority); status != 503 {
		if c != nil {
			c.Close()
		}
		t.Fatalf("after a reload with the same limit a second tunnel got %d, want 503: the open one was forgotten", status)
	}
	// New settings are a new cluster to Envoy, with counters of its own.
	h.p.Update(compileSnapshot(t, docs(2)))
	c, status := h.connect(t, authority)
	if status != 200 {
		t.Fatalf("after a reload raising the limit a tunnel got %d", status)
	}
	c.Close()
}

func TestAnOverflowIsLoggedUO(t *testing.T) {
	t.Parallel()
	b := newDRBackend(t, "b", nil)
	b.holdAll.Store(true)
	h, out := startLogged(t, drDocs("uo.test", "connectionPool: {http: {http2MaxRequests: 1}}", b), Config{})
	c := drClient(t, h)
	held := burst(c, "http://uo.test/held", 1)
	pollFor(t, "the first request at the backend", 5*time.Second, func() bool { return b.inflight.Load() == 1 })
	code, _, hdr := fetch(t, c, "http://uo.test/over", "X-Request-Id: rid-over")
	if code != 503 || hdr.Get("X-Meshentry-Reason") == "" {
		t.Fatalf("the request over the limit got %d with reason %q", code, hdr.Get("X-Meshentry-Reason"))
	}
	if line := out.line(t, `"rid-over"`); !strings.Contains(line, " 503 UO ") {
		t.Fatalf("access log line %q, want 503 UO", line)
	}
	b.unblock()
	if a := <-held; a.code != 200 {
		t.Fatalf("the request in flight got %d (%v)", a.code, a.err)
	}
}
