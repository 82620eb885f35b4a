package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/resolve"
	"github.com/meshentry/meshentry/internal/telemetry"
	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// recordingSink keeps the piped connections' records, as a metrics or access-log sink sees them.
type recordingSink struct {
	mu             sync.Mutex
	opened, closed []telemetry.Conn
}

func (s *recordingSink) Request(*telemetry.Request) {}

func (s *recordingSink) ConnOpened(c *telemetry.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opened = append(s.opened, *c)
}

func (s *recordingSink) ConnClosed(c *telemetry.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = append(s.closed, *c)
}

// summary is what istio_tcp_* metrics and the access log take from the records, sorted: the
// parts that do not depend on timing or ephemeral ports.
func (s *recordingSink) summary() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.opened {
		out = append(out, fmt.Sprintf("opened %s upstream=%s service=%s", c.Authority, hostOnly(c.UpstreamHost), serviceName(c.Service)))
	}
	for _, c := range s.closed {
		out = append(out, fmt.Sprintf("closed %s upstream=%s service=%s received=%d sent=%d flags=%v local=%v",
			c.Authority, hostOnly(c.UpstreamHost), serviceName(c.Service), c.Received, c.Sent, c.Flags, c.DownstreamLocal != nil))
	}
	sort.Strings(out)
	return out
}

// hostOnly drops the port of an upstream, the backends' being ephemeral.
func hostOnly(hostPort string) string {
	host, _, _ := net.SplitHostPort(hostPort)
	return host
}

func serviceName(s *telemetry.Service) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%+v", *s)
}

// serverFirst greets each connection first, then echoes lines, until the test ends.
func serverFirst(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "greeting\n")
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, "echo: "+l)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

// loopConfig has a TCP server per case: a STATIC echo (the fast path), a STATIC server-first
// backend (the fast path), a DNS-resolution entry (refused by the fast path, so handed off), a
// port without a route, and an HTTP server (handed off).
func loopConfig(echo, greet, httpPort int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: egress}
spec:
  hosts: [echo.example.com]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greet, namespace: egress}
spec:
  hosts: [greet.example.com]
  ports: [{number: 9002, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[2]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: egress}
spec:
  hosts: [dns.example.com]
  ports: [{number: 9003, name: tcp, protocol: TCP}]
  resolution: DNS
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: egress}
spec:
  hosts: [httpbin.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %[3]d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - {port: {number: 9000, name: tcp-echo, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 9001, name: tcp-unrouted, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 9002, name: tcp-greet, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 9003, name: tcp-dns, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: [httpbin.com]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: egress}
spec:
  hosts: ["*"]
  gateways: [istio-system/egressgateway]
  tcp:
  - match: [{port: 9000}]
    route: [{destination: {host: echo.example.com, port: {number: 9000}}}]
  - match: [{port: 9002}]
    route: [{destination: {host: greet.example.com, port: {number: 9002}}}]
  - match: [{port: 9003}]
    route: [{destination: {host: dns.example.com, port: {number: 9003}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: http, namespace: egress}
spec:
  hosts: [httpbin.com]
  gateways: [istio-system/egressgateway]
  http:
  - route: [{destination: {host: httpbin.com, port: {number: 80}}}]
`, echo, greet, httpPort)
}

// loopScenario is one client of the comparison; it returns what the client saw.
type loopScenario struct {
	name string
	run  func(t *testing.T, h *harness) string
}

// lineClient dials port, reads want greetings first when the server speaks first, then sends
// one line and reads its echo, and returns it all.
func lineClient(port uint32, greetings int) func(t *testing.T, h *harness) string {
	return func(t *testing.T, h *harness) string {
		c, err := net.Dial("tcp", h.addrs[port].String())
		must(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		var got strings.Builder
		for range greetings {
			l, err := br.ReadString('\n')
			got.WriteString(l)
			if err != nil {
				return got.String() + err.Error()
			}
		}
		if _, err := io.WriteString(c, "hello\n"); err != nil {
			return got.String() + err.Error()
		}
		l, err := br.ReadString('\n')
		got.WriteString(l)
		if err != nil {
			got.WriteString(err.Error())
		}
		return got.String()
	}
}

var loopScenarios = []loopScenario{
	{"echo through the fast path", lineClient(9000, 0)},
	{"server-first through the fast path", lineClient(9002, 1)},
	{"DNS resolution handed off to GatewayPipe", lineClient(9003, 0)},
	{"no route: refused", func(t *testing.T, h *harness) string {
		c, err := net.Dial("tcp", h.addrs[9001].String())
		must(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 1))
		return fmt.Sprintf("read %d, closed %v", n, err != nil)
	}},
	{"HTTP server handed off", func(t *testing.T, h *harness) string {
		status, body, err := get(h.client(80, nil), "http://httpbin.com/get")
		return fmt.Sprintf("%d %q %v", status, body, err)
	}},
}

// loopOutcome is what a run of the scenarios shows from outside and in the counters.
type loopOutcome struct {
	seen      []string
	telemetry []string
	notFound  uint64
	overflow  uint64
}

func runLoopScenarios(t *testing.T, eventLoop bool) (loopOutcome, *harness) {
	echo, greet := echoServer(t), serverFirst(t)
	httpbin := backend.HTTP(t, "httpbin", "127.0.0.1:0")
	sink := &recordingSink{}
	h := startGateway(t, loopConfig(echo, greet, httpbin.Port()), "", func(c *Config) {
		c.EventLoop = eventLoop
		c.Telemetry = sink
		// The TCP records come from the proxy's sink; the HTTP ones from the gateway's.
		c.Proxy = proxyWithTelemetry(t, c.Proxy, sink)
	})
	var out loopOutcome
	for _, sc := range loopScenarios {
		out.seen = append(out.seen, sc.name+": "+sc.run(t, h))
	}
	// The records of a pipe are reported after its client saw it close.
	waitFor(t, "the pipes' telemetry", func() bool { return len(sink.summary()) >= 6 })
	out.telemetry = sink.summary()
	out.notFound, out.overflow = h.gw.Stats().NotFound.Load(), h.gw.Stats().Overflow.Load()
	return out, h
}

// TestEventLoopServesAsNetDoes runs the same clients against the gateway with and without
// Config.EventLoop: the bytes both ways, the refusals, the counters and the TCP telemetry
// records must be the same, and the loop must have relayed the fast-path ports itself.
func TestEventLoopServesAsNetDoes(t *testing.T) {
	withNet, _ := runLoopScenarios(t, false)
	withLoop, h := runLoopScenarios(t, true)
	for i := range withNet.seen {
		if withNet.seen[i] != withLoop.seen[i] {
			t.Errorf("with the event loop %q, without %q", withLoop.seen[i], withNet.seen[i])
		}
	}
	for _, want := range []string{"echo: hello\n", "greeting\necho: hello\n", "200"} {
		if !strings.Contains(strings.Join(withLoop.seen, "|"), want) {
			t.Errorf("no client saw %q: %q", want, withLoop.seen)
		}
	}
	if strings.Join(withNet.telemetry, "\n") != strings.Join(withLoop.telemetry, "\n") {
		t.Errorf("telemetry with the event loop:\n%s\nwithout:\n%s", strings.Join(withLoop.telemetry, "\n"), strings.Join(withNet.telemetry, "\n"))
	}
	if withNet.notFound != 1 || withLoop.notFound != 1 || withLoop.overflow != withNet.overflow {
		t.Errorf("NotFound %d/%d, Overflow %d/%d (loop/net), want one NotFound each", withLoop.notFound, withNet.notFound,
			withLoop.overflow, withNet.overflow)
	}
	s := h.gw.LoopStats()
	// Relayed: echo and server-first; handed off: the DNS entry, the unrouted port, HTTP.
	if s.Accepted != 5 || s.Handoffs != 3 || s.ConnectFailures != 0 {
		t.Errorf("loop Stats %+v, want 5 accepted, 3 handed off", s)
	}
}

// proxyWithTelemetry replaces the harness's proxy, stopped here, by one reporting to sink.
func proxyWithTelemetry(t *testing.T, old *proxy.Proxy, sink telemetry.Sink) *proxy.Proxy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	old.Shutdown(ctx)
	res, err := resolve.New(resolve.Config{Server: "127.0.0.1:1", Timeout: time.Second})
	must(t, err)
	t.Cleanup(res.Close)
	return proxy.New(proxy.Config{Namespace: "istio-system", Resolver: res, MaxConnections: -1, Telemetry: sink}, old.Snapshot())
}
