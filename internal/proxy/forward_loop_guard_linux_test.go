package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/httpfwd"
)

// TestForwardLoopAnswersALoopAsTheEngine routes a request to a STATIC endpoint that is the
// loop's own port: the loop answers 508 as the engine does for its own port, and never
// connects.
func TestForwardLoopAnswersALoopAsTheEngine(t *testing.T) {
	// The loop's port is taken first, so that the registry can name it.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	cfgYAML := httpLoopConfig(port, 1)
	h := startProxy(t, cfgYAML, Config{Namespace: "istio-system"}, "")
	g, err := evloop.New(h.p.ForwardLoopOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if _, err := h.p.ListenForwardLoop(g, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))); err != nil {
		t.Skipf("the port went to another: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	req := "GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\nX-Request-Id: loop-1\r\n\r\n"
	got := exchangeKeepAlive(t, addr, []string{req})
	goPath := startProxy(t, httpLoopConfig(port, 1), Config{Namespace: "istio-system", SelfAddrs: []netip.AddrPort{netip.MustParseAddrPort(addr)}}, "")
	want := exchangeKeepAlive(t, goPath.addr, []string{req})
	if len(got) != 1 || len(want) != 1 || got[0] != want[0] || !strings.HasPrefix(got[0], "HTTP/1.1 508 ") {
		t.Fatalf("on the loop %q, by the engine %q", got, want)
	}
	if s := g.Stats(); s.Dials != 0 {
		t.Errorf("the loop dialled %d times", s.Dials)
	}
}

// TestForwardLoopCheckRefusesAConnectThatReachedAWildcardListener is the guard once connected:
// a connect to a wildcard listener's port whose two ends share an address (one the address
// list did not know) is the proxy reaching itself, refused as ErrLoop; others pass.
func TestForwardLoopCheckRefusesAConnectThatReachedAWildcardListener(t *testing.T) {
	h := startProxy(t, httpLoopConfig(1, 1), Config{Namespace: "istio-system"}, "")
	h.p.sec.addListener(&net.TCPAddr{IP: net.IPv4zero, Port: 39700})
	lh := loopHTTP{p: h.p}
	tests := []struct {
		name          string
		remote, local string
		loop          bool
	}{
		{name: "refuses a connect whose ends share an address on the wildcard port", remote: "10.1.2.3:39700", local: "10.1.2.3:50000", loop: true},
		{name: "passes a connect to another host on that port", remote: "10.1.2.4:39700", local: "10.1.2.3:50000"},
		{name: "passes a connect to another port", remote: "10.1.2.3:39701", local: "10.1.2.3:50000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lh.Check(netip.MustParseAddrPort(tt.remote), netip.MustParseAddrPort(tt.local))
			if got := errors.Is(err, httpfwd.ErrLoop); got != tt.loop {
				t.Errorf("Check = %v, want a loop: %v", err, tt.loop)
			}
		})
	}
}

// TestForwardLoopAnswersPipelinedRequests writes several requests at once, as a pipelining
// client does: the loop answers those it serves in turn, as the engine does, and hands the
// connection to the engine at the first it does not, replaying what it read of it.
func TestForwardLoopAnswersPipelinedRequests(t *testing.T) {
	back := startRawBackend(t)
	cfgYAML := httpLoopConfig(back.ln.Addr().(*net.TCPAddr).Port, 1)
	goPath := startProxy(t, cfgYAML, Config{Namespace: "istio-system"}, "")
	loopPath, g := startLoopProxy(t, cfgYAML, Config{Namespace: "istio-system"})
	const get = "GET /cl HTTP/1.1\r\nHost: web.test\r\n\r\n"
	tests := []struct {
		name             string
		reqs             string
		served, handoffs uint64 // requests the loop answers, connections it hands off
	}{
		{name: "three, the last refused", served: 3, reqs: get + "GET /chunked HTTP/1.1\r\nHost: web.test\r\n\r\n" +
			"GET http://nowhere.test/ HTTP/1.1\r\nHost: nowhere.test\r\nX-Request-Id: p-3\r\nConnection: close\r\n\r\n"},
		{name: "a request with a body behind one the loop serves", served: 1, handoffs: 1,
			reqs: get + "POST /cl HTTP/1.1\r\nHost: web.test\r\nContent-Length: 2\r\n\r\nhi" + get},
		{name: "an empty line between two requests", served: 1, handoffs: 1, reqs: get + "\r\n" + get},
		{name: "a head the client ends halfway", served: 1, handoffs: 1, reqs: get + "GET /cl HTTP/1.1\r\nHo"},
		{name: "a head that parses only whole", served: 1, handoffs: 1, reqs: get + "GET /cl HTTP/1.1\r\nHost: web.test\r\nBad Field\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, beforeServed := g.Stats(), loopPath.p.ForwardLoopHTTPStats().Requests
			want := exchangeRaw(t, goPath.addr, tt.reqs)
			got := exchangeRaw(t, loopPath.addr, tt.reqs)
			if normalized(got) != normalized(want) {
				t.Errorf("on the loop:\n%q\nby the engine:\n%q", got, want)
			}
			if n := loopPath.p.ForwardLoopHTTPStats().Requests - beforeServed; n != tt.served {
				t.Errorf("the loop served %d requests, want %d", n, tt.served)
			}
			if n := uint64(g.Stats().Handoffs - before.Handoffs); n != tt.handoffs {
				t.Errorf("%d connections handed off, want %d", n, tt.handoffs)
			}
		})
	}
}

// normalized is s with the request ids the proxies make up replaced.
func normalized(s string) string { return uuidPattern.ReplaceAllString(s, "ID") }
