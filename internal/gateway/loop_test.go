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
func loopConfig(echo, greet, httpPort, closed int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: flaky, namespace: egress}
spec:
  hosts: [flaky.example.com]
  ports: [{number: 9004, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[4]d}}, {address: 127.0.0.1, ports: {tcp: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: down, namespace: egress}
spec:
  hosts: [down.example.com]
  ports: [{number: 9005, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[4]d}}, {address: 127.0.0.2, ports: {tcp: %[4]d}}]
---
apiVersion: networking.istio.io/v1
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
  - {port: {number: 9004, name: tcp-flaky, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 9005, name: tcp-down, protocol: TCP}, hosts: ["*"]}
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
  - match: [{port: 9004}]
    route: [{destination: {host: flaky.example.com, port: {number: 9004}}}]
  - match: [{port: 9005}]
    route: [{destination: {host: down.example.com, port: {number: 9005}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: http, namespace: egress}
spec:
  hosts: [httpbin.com]
  gateways: [istio-system/egressgateway]
  http:
  - route: [{destination: {host: httpbin.com, port: {number: 80}}}]
`, echo, greet, httpPort, closed)
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
	{"a refused endpoint, then the next one", lineClient(9004, 0)},
	{"every endpoint refuses: closed", closedBy(9005)},
	{"no route: refused", closedBy(9001)},
	{"HTTP server handed off", func(t *testing.T, h *harness) string {
		status, body, err := get(h.client(80, nil), "http://httpbin.com/get")
		return fmt.Sprintf("%d %q %v", status, body, err)
	}},
}

// closedBy dials port and reads until the gateway closes the connection.
func closedBy(port uint32) func(t *testing.T, h *harness) string {
	return func(t *testing.T, h *harness) string {
		c, err := net.Dial("tcp", h.addrs[port].String())
		must(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 1))
		return fmt.Sprintf("read %d, closed %v", n, err != nil)
	}
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
	h := startGateway(t, loopConfig(echo, greet, httpbin.Port(), closedPort(t)), "", func(c *Config) {
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
	waitFor(t, "the pipes' telemetry", func() bool { return len(sink.summary()) >= 9 })
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
	// Relayed: echo, server-first, flaky (a failed connect when the closed endpoint is picked
	// first) and down (two); handed off: the DNS entry, the unrouted port, HTTP.
	if s.Accepted != 7 || s.Handoffs != 3 || s.ConnectFailures < 2 || s.ConnectFailures > 3 || s.Open != 0 {
		t.Errorf("loop Stats %+v, want 7 accepted, 3 handed off, 2 or 3 connect failures", s)
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

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestEventLoopShutdownDrains stops accepting at Shutdown, lets a pipe the loop relays run
// until its client ends it (the proxy's Shutdown waits for it too), and cuts it at the drain's
// deadline otherwise.
func TestEventLoopShutdownDrains(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Duration
		cut      bool // the deadline passes before the client ends the pipe
	}{
		{"the client ends the pipe", 5 * time.Second, false},
		{"the deadline cuts the pipe", 300 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := echoServer(t)
			h := startGateway(t, loopConfig(echo, echo, echo, closedPort(t)), "", func(c *Config) { c.EventLoop = true })
			addr := h.addrs[9000].String()
			c, err := net.Dial("tcp", addr)
			must(t, err)
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			say := func(line string) error {
				if _, err := io.WriteString(c, line+"\n"); err != nil {
					return err
				}
				got, err := br.ReadString('\n')
				if err == nil && got != "echo: "+line+"\n" {
					err = fmt.Errorf("got %q", got)
				}
				return err
			}
			must(t, say("before"))
			ctx, cancel := context.WithTimeout(context.Background(), tt.deadline)
			defer cancel()
			gwDone, proxyDone := make(chan error, 1), make(chan error, 1)
			go func() { gwDone <- h.gw.Shutdown(ctx) }()
			go func() { proxyDone <- h.gw.cfg.Proxy.Shutdown(ctx) }()
			waitFor(t, "the listener's close", func() bool {
				c2, err := net.Dial("tcp", addr)
				if err == nil {
					c2.Close()
				}
				return err != nil
			})
			if tt.cut {
				if n, err := br.ReadByte(); err == nil {
					t.Errorf("read %q from a pipe the drain cut", n)
				}
				if err := <-gwDone; err == nil {
					t.Error("the gateway's Shutdown cut a pipe and returned nil")
				}
				<-proxyDone
				return
			}
			must(t, say("while draining"))
			select {
			case err := <-gwDone:
				t.Fatalf("Shutdown returned %v before the pipe ended", err)
			case err := <-proxyDone:
				t.Fatalf("the proxy's Shutdown returned %v before the pipe ended", err)
			case <-time.After(50 * time.Millisecond):
			}
			c.Close()
			if err := <-gwDone; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-proxyDone; err != nil {
				t.Errorf("the proxy's Shutdown: %v", err)
			}
		})
	}
}

// TestEventLoopPortCap closes a connection over a port's MaxConnections at once and counts it,
// as ServeListener does, on the fast path and on a handed-off port alike.
func TestEventLoopPortCap(t *testing.T) {
	echo := echoServer(t)
	h := startGateway(t, loopConfig(echo, echo, echo, closedPort(t)), "", func(c *Config) {
		c.EventLoop, c.MaxConnections = true, 1
	})
	for i, port := range []uint32{9000, 9003} {
		first, err := net.Dial("tcp", h.addrs[port].String())
		must(t, err)
		// The first is relayed: it holds the port's one slot.
		io.WriteString(first, "hold\n")
		first.SetDeadline(time.Now().Add(5 * time.Second))
		if l, err := bufio.NewReader(first).ReadString('\n'); err != nil || l != "echo: hold\n" {
			t.Fatalf("port %d: first connection read %q, %v", port, l, err)
		}
		if got := closedBy(port)(t, h); got != "read 0, closed true" {
			t.Errorf("port %d: the connection over the cap: %s", port, got)
		}
		if n := h.gw.Stats().Overflow.Load(); n != uint64(i+1) {
			t.Errorf("port %d: Overflow %d, want %d", port, n, i+1)
		}
		first.Close()
		waitFor(t, "the slot's release", func() bool { return h.gw.Open(port) == 0 })
	}
}
