package proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/httpfwd"
)

// loopDialRecorder keeps every address the loop engine (through its LoopRoute) and the Go engine
// (through Config.Dial) were about to connect to.
type loopDialRecorder struct {
	mu    sync.Mutex
	addrs []string
}

func (d *loopDialRecorder) add(a string) {
	d.mu.Lock()
	d.addrs = append(d.addrs, a)
	d.mu.Unlock()
}

func (d *loopDialRecorder) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.addrs
	d.addrs = nil
	return a
}

// recordingRoute is the proxy's LoopRoute with each address it gives recorded.
type recordingRoute struct {
	httpfwd.LoopRoute
	rec *loopDialRecorder
}

func (r recordingRoute) Addr(up *httpfwd.Upstream) (netip.AddrPort, bool) {
	a, ok := r.LoopRoute.Addr(up)
	if ok {
		r.rec.add(a.String())
	}
	return a, ok
}

// FuzzForwardLoopHTTP sends arbitrary bytes to a forward port on an event loop, whose loop
// engine serves HTTP requests: whatever they are, every connect the port makes (on the loop,
// or by the engine it hands a connection to) goes to an endpoint address the registry
// declares, never to the proxy itself, and the process does not panic.
func FuzzForwardLoopHTTP(f *testing.F) {
	back := startRawBackend(f)
	backPort := back.ln.Addr().(*net.TCPAddr).Port
	// retried.test's VirtualService rules only route and retry, so the loop serves them: to the
	// backend, to the proxy's own address (self.test), to a host nothing declares.
	cfgYAML := forwardFuzzConfig + "---\n" + httpLoopConfig(backPort, 39504) + loopEntry("retried", backPort) + `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: retried, namespace: istio-system}
spec:
  hosts: [retried.test]
  http:
  - match: [{uri: {prefix: /self}}]
    route: [{destination: {host: self.test, port: {number: 9200}}}]
  - match: [{uri: {prefix: /nowhere}}]
    route: [{destination: {host: nowhere.test}}]
  - route: [{destination: {host: retried.test}, weight: 50}, {destination: {host: web.test, port: {number: 9300}}, weight: 50}]
    retries: {attempts: 2, retryOn: 5xx}
`
	for _, seed := range []string{
		"GET http://retried.test/503 HTTP/1.1\r\nHost: retried.test\r\n\r\nGET /bad HTTP/1.1\r\nHost: retried.test\r\n\r\n",
		"GET http://retried.test/self HTTP/1.1\r\nHost: retried.test\r\n\r\n",
		"GET /nowhere HTTP/1.1\r\nHost: retried.test\r\n\r\n",
		"GET /cl HTTP/1.1\r\nHost: web.test\r\n\r\n",
		"GET http://web.test/chunked HTTP/1.1\r\nHost: web.test\r\n\r\nGET /interim HTTP/1.1\r\nHost: web.test\r\n\r\n",
		"GET http://web.test:9300/ HTTP/1.1\r\nHost: web.test\r\n\r\n",
		"GET http://static.test:9000/ HTTP/1.1\r\nHost: static.test\r\n\r\n",
		"GET http://self.test:9200/ HTTP/1.1\r\nHost: self.test\r\n\r\n",
		"GET http://127.0.0.1:39599/ HTTP/1.1\r\nHost: 127.0.0.1:39599\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: 127.0.0.1:39599\r\n\r\n",
		"GET http://dns.test:9400/ HTTP/1.1\r\nHost: dns.test\r\n\r\n",
		"GET http://down.test/ HTTP/1.1\r\nHost: down.test\r\n\r\n",
		"GET /cl HTTP/1.1\r\nHost: web.test\r\nVia: 1.1 x\r\n\r\nPOST /cl HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1\r\n\r\nx",
		"GET /cl HTTP/1.1\r\nHost: WEB.TEST.\r\n\r\nGET /bad HTTP/1.1\r\nHost: web.test\r\n\r\n",
		"HEAD /eof HTTP/1.1\r\nHost: web.test\r\n\r\n",
		"GET /cl HTTP/1.1\r\nHost: web.test\r\nHost: other.test\r\n\r\n",
		"GET /cl HTTP/1.1\r\nHo",
		"\r\nGET /cl HTTP/1.1\r\nHost: web.test\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x16\x03\x01\x00\x05hello",
		"",
	} {
		f.Add([]byte(seed))
	}
	rec := &loopDialRecorder{}
	var dialer net.Dialer
	cfg := Config{Namespace: "istio-system", SelfAddrs: []netip.AddrPort{selfAddr},
		HTTP: httpfwd.Limits{HeaderReadTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond,
			StreamIdleTimeout: 500 * time.Millisecond},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			rec.add(addr)
			return dialer.DialContext(ctx, network, addr)
		}}
	h := startProxy(f, cfgYAML, cfg, "")
	g, err := evloop.New(h.p.ForwardLoopOptions())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { g.Close() })
	addr, err := h.p.listenForwardLoop(g, netip.MustParseAddrPort("127.0.0.1:0"), recordingRoute{loopHTTP{p: h.p, lim: h.p.connLimit}, rec})
	if err != nil {
		f.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, svc := range h.p.Snapshot().Services {
		for _, port := range svc.Ports {
			for _, e := range port.Endpoints {
				allowed[e.Dial()] = true
			}
		}
	}
	delete(allowed, selfAddr.String())
	// The harness sees the loop's connects: a request the loop serves is recorded.
	if got := exchangeKeepAlive(f, addr.String(), []string{"GET /cl HTTP/1.1\r\nHost: web.test\r\n\r\n"}); len(got) != 1 {
		f.Fatalf("the loop did not answer: %q", got)
	}
	if got := rec.take(); len(got) != 1 || got[0] != back.ln.Addr().String() {
		f.Fatalf("recorded connects %q, want the backend's", got)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); err != nil && time.Since(start) > 4*time.Second {
			// Every bound here is under a second: a connection still open is one the proxy lost.
			t.Fatalf("no end after %v (%v) for %q", time.Since(start), err, in)
		}
		for _, a := range rec.take() {
			if !allowed[a] {
				t.Fatalf("connected to %s, which the registry does not declare (%q)", a, in)
			}
		}
	})
}
