package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/telemetry"
	"github.com/meshentry/meshentry/internal/testutil/netpair"
)

// startLoopProxy is startProxy with the forward port on an evloop Group, closed as the
// command closes it: drained beside the proxy, cut with its pipes.
func startLoopProxy(t testing.TB, yamlDocs string, cfg Config) (*harness, *evloop.Group) {
	t.Helper()
	h := startProxy(t, yamlDocs, cfg, "")
	g, err := evloop.New(h.p.ForwardLoopOptions())
	if err != nil {
		t.Fatal(err)
	}
	stopCut := context.AfterFunc(h.p.PipeContext(), func() { g.Close() })
	addr, err := h.p.ListenForwardLoop(g, netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after startProxy's: cleanups run last first, so the Group drains first.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		g.Shutdown(ctx)
		stopCut()
	})
	return &harness{p: h.p, addr: addr.String()}, g
}

// connSink keeps the closed connection records.
type connSink struct {
	mu     sync.Mutex
	closed []telemetry.Conn
}

func (s *connSink) Request(*telemetry.Request) {}
func (s *connSink) ConnOpened(*telemetry.Conn) {}
func (s *connSink) ConnClosed(c *telemetry.Conn) {
	s.mu.Lock()
	s.closed = append(s.closed, *c)
	s.mu.Unlock()
}

// waitClosed waits for the n-th closed record and returns it.
func (s *connSink) waitClosed(t *testing.T, n int) telemetry.Conn {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		if len(s.closed) >= n {
			c := s.closed[n-1]
			s.mu.Unlock()
			return c
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no closed record %d", n)
		}
	}
}

// forwardLoopConfig declares the services the forward loop tests CONNECT to, on port 9000.
func forwardLoopConfig(upPort, downPort int) string {
	entry := func(name, resolution, endpoints string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: istio-system}
spec:
  hosts: [%[1]s.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: %[2]s
%[3]s---
`, name, resolution, endpoints)
	}
	at := func(port int) string {
		return fmt.Sprintf("  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]\n", port)
	}
	return entry("static", "STATIC", at(upPort)) + entry("down", "STATIC", at(downPort)) + entry("dns", "DNS", at(upPort))
}

// exchangeRaw sends raw on a new connection to addr, half-closes and reads to the end.
func exchangeRaw(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c) // a reset after a refusal ends it as well
	return string(b)
}

// TestForwardLoopAnswersAsTheGoPath sends the same bytes to a forward port served by Go and
// to one on an evloop Group: the answers are the same byte for byte, and so are the
// connection records; the loop keeps the tunnels it can serve and hands the rest to Go.
func TestForwardLoopAnswersAsTheGoPath(t *testing.T) {
	up := echoServer(t)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downPort := down.Addr().(*net.TCPAddr).Port
	down.Close()
	cfgYAML := forwardLoopConfig(up.Addr().(*net.TCPAddr).Port, downPort)
	goSink, loopSink := &connSink{}, &connSink{}
	goPath := startProxy(t, cfgYAML, Config{Namespace: "istio-system", Telemetry: goSink}, "")
	loopPath, g := startLoopProxy(t, cfgYAML, Config{Namespace: "istio-system", Telemetry: loopSink})
	tests := []struct {
		name     string
		raw      string
		onLoop   bool // the loop tunnels it rather than hand it off
		recorded bool // a connection record follows
		randomID bool // the engine answers with a request id of its own
	}{
		{name: "tunnels to a STATIC endpoint, bytes sent with the head included",
			raw: "CONNECT static.test:9000 HTTP/1.1\r\nHost: static.test:9000\r\n\r\nping", onLoop: true, recorded: true},
		{name: "answers an endpoint that refuses as connectFailed does",
			raw: "CONNECT down.test:9000 HTTP/1.1\r\nHost: down.test\r\nX-Request-Id: loop-down-1\r\n\r\n", onLoop: true, recorded: true},
		{name: "tunnels another host on a declared TCP port, which Istio matches by its number",
			raw: "CONNECT other.test:9000 HTTP/1.1\r\nHost: other.test\r\n\r\n", onLoop: true, recorded: true},
		{name: "hands a CONNECT to an undeclared host and port to Go, which refuses it",
			raw: "CONNECT nowhere.test:9001 HTTP/1.1\r\nHost: nowhere.test\r\nX-Request-Id: loop-refused-1\r\n\r\n"},
		{name: "hands a DNS service's CONNECT to Go, which tunnels it",
			raw: "CONNECT dns.test:9000 HTTP/1.1\r\nHost: dns.test\r\n\r\npong", recorded: true},
		{name: "hands a malformed CONNECT to the engine",
			raw: "CONNECT static.test:9000 HTTP/1.1\r\n\r\n", randomID: true},
		{name: "refuses an HTTP request to an undeclared host on the loop, as the engine does",
			raw: "GET http://nowhere.test/ HTTP/1.1\r\nHost: nowhere.test\r\nX-Request-Id: loop-http-1\r\nConnection: close\r\n\r\n", onLoop: true},
		{name: "hands an HTTP request with a body to the engine",
			raw: "POST http://nowhere.test/ HTTP/1.1\r\nHost: nowhere.test\r\nX-Request-Id: loop-http-2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"},
	}
	records := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := g.Stats()
			want := exchangeRaw(t, goPath.addr, tt.raw)
			got := exchangeRaw(t, loopPath.addr, tt.raw)
			if tt.randomID {
				got, want = uuidPattern.ReplaceAllString(got, "ID"), uuidPattern.ReplaceAllString(want, "ID")
			}
			if got != want {
				t.Errorf("on the loop:\n%q\nby Go:\n%q", got, want)
			}
			if handed := g.Stats().Handoffs - before.Handoffs; handed != int64(boolToInt(!tt.onLoop)) {
				t.Errorf("%d handed off, want the loop to serve it: %v", handed, tt.onLoop)
			}
			if !tt.recorded {
				return
			}
			records++
			w, l := goSink.waitClosed(t, records), loopSink.waitClosed(t, records)
			if w.Authority != l.Authority || w.Received != l.Received || w.Sent != l.Sent || w.Flags != l.Flags ||
				w.UpstreamHost != l.UpstreamHost || (w.Service == nil) != (l.Service == nil) ||
				w.Service != nil && w.Service.Name != l.Service.Name {
				t.Errorf("records differ:\nloop %+v\nGo   %+v", l, w)
			}
		})
	}
}

// uuidPattern matches the request ids the engine makes up.
var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestForwardLoopConnectionCap holds a tunnel the loop serves, or an HTTP connection handed to
// the engine, under the proxy's cap: a connection over it is closed at once and counted, as
// the Go listener closes it, and the place comes back when the holder ends.
func TestForwardLoopConnectionCap(t *testing.T) {
	echo := echoServer(t)
	_, port, _ := net.SplitHostPort(echo.Addr().String())
	h, g := startLoopProxy(t, echoEntry(port), Config{MaxConnections: 1})
	const head = "CONNECT echo.internal:7000 HTTP/1.1\r\nHost: echo.internal:7000\r\n\r\n"
	refusals := func() uint64 { return h.p.Stats().RefusedAtCap + uint64(g.Stats().Overflow) }
	tunnel, status := h.connect(t, "echo.internal:7000")
	if status != 200 {
		t.Fatalf("CONNECT under the cap = %d", status)
	}
	roundTrip(t, tunnel, []byte("held"))
	over := dial(t, h.addr)
	io.WriteString(over, head)
	if !refusedAtOnce(t, over) || refusals() != 1 {
		t.Fatalf("a CONNECT over the cap was kept open, or not counted (%d)", refusals())
	}
	tunnel.Close()
	waitFor(t, func() bool { return g.Stats().Open == 0 }, "the tunnel to end")
	// An HTTP connection handed to the engine holds the place while it stays open.
	held := dial(t, h.addr)
	io.WriteString(held, "GET http://nowhere.test:9/ HTTP/1.1\r\nHost: nowhere.test:9\r\n\r\n")
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := held.Read(make([]byte, 1)); err != nil {
		t.Fatalf("the engine did not answer the HTTP request: %v", err)
	}
	over = dial(t, h.addr)
	io.WriteString(over, head)
	if !refusedAtOnce(t, over) || refusals() != 2 {
		t.Fatalf("a CONNECT beside a held HTTP connection at the cap was kept open, or not counted (%d)", refusals())
	}
	held.Close()
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		io.WriteString(c, head)
		c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
		return err == nil && resp.StatusCode == 200
	}, "a CONNECT to succeed once the place came back")
}

// TestForwardLoopClientResetDuringConnect reports a client that reset while its tunnel's
// upstream connect hung as the engine reports a client gone before its tunnel opened
// (DownstreamClosed, nothing opened), at the reset rather than at the connect timeout.
func TestForwardLoopClientResetDuringConnect(t *testing.T) {
	sink := &connSink{}
	hung, _, _ := netpair.Hung(t)
	h, g := startLoopProxy(t, forwardLoopConfig(int(hung.Port()), 1), Config{Namespace: "istio-system", Telemetry: sink})
	c := dial(t, h.addr)
	io.WriteString(c, "CONNECT static.test:9000 HTTP/1.1\r\nHost: static.test:9000\r\n\r\n")
	waitFor(t, func() bool { return g.Stats().Pairs == 1 }, "the tunnel's connect to start")
	start := time.Now()
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset
	rec := sink.waitClosed(t, 1)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("recorded %v after the reset", took)
	}
	if rec.Flags != telemetry.DownstreamClosed || rec.UpstreamHost != "" || rec.Service == nil {
		t.Errorf("record %+v, want DownstreamClosed to the service, no upstream host", rec)
	}
	waitFor(t, func() bool { return g.Stats().Open == 0 }, "the loop to let the connection go")
}

// TestLoopOptionsTakeEventLoops gives the forward and gateway Groups the loops the config asks
// for (--event-loops), and one per GOMAXPROCS when it asks for none; a Group made from them
// runs that many.
func TestLoopOptionsTakeEventLoops(t *testing.T) {
	for _, loops := range []int{0, 1, 3} {
		h := startProxy(t, "", Config{EventLoops: loops}, "")
		for name, o := range map[string]evloop.Options{"forward": h.p.ForwardLoopOptions(), "gateway": h.p.GatewayLoopOptions()} {
			if o.Loops != loops {
				t.Errorf("EventLoops %d: %s Options.Loops = %d", loops, name, o.Loops)
			}
			g, err := evloop.New(o)
			if err != nil {
				t.Fatal(err)
			}
			want := loops
			if want == 0 {
				want = runtime.GOMAXPROCS(0)
			}
			if g.Loops() != want {
				t.Errorf("EventLoops %d: %s Group runs %d loops, want %d", loops, name, g.Loops(), want)
			}
			g.Close()
		}
	}
}
