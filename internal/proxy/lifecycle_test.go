package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/relay"
	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
	"github.com/meshentry/meshentry/internal/testutil/netpair"
)

// silentServer accepts connections and never writes or closes them until the test ends.
func silentServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln
}

func TestPipePassesHalfCloseOn(t *testing.T) {
	t.Parallel()
	// The upstream answers only after the client has finished sending, as many request/response
	// protocols over TCP do.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes", len(req))
	}()
	clientSide, proxySide := tcpPair(t)
	up, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		relay.Pipe(context.Background(), proxySide, up, relay.Options{})
		close(done)
	}()
	clientSide.Write([]byte("twelve bytes"))
	clientSide.(*net.TCPConn).CloseWrite()
	clientSide.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, err := io.ReadAll(clientSide)
	if err != nil || string(answer) != "got 12 bytes" {
		t.Fatalf("answer %q, %v", answer, err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("pipe did not return after both directions ended")
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) { return netpair.Sockets(t, "tcp", "127.0.0.1:0") }

func TestADeadAddressOfADNSNameCostsNoRequests(t *testing.T) {
	t.Parallel()
	live := backend.HTTP(t, "live", "127.0.0.6:0")
	dns := dnstest.Start(t)
	dns.Set("two.example.com", 30, "127.0.0.6", "127.0.0.7") // nothing listens on 127.0.0.7
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: two}
spec:
  hosts: [two.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}, {number: 443, name: tls, protocol: TLS, targetPort: %d}]
  resolution: DNS
`, live.Port(), live.Port()), Config{}, dns.Addr)
	c := h.client(nil)
	t.Run("over HTTP", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			if status, body, _ := get(t, c, "http://two.example.com/"); status != 200 || !strings.HasPrefix(body, "live ") {
				t.Fatalf("request %d: %d %q", i, status, body)
			}
		}
	})
	t.Run("over CONNECT", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			tunnel, status := h.connect(t, "two.example.com:443")
			if status != 200 {
				t.Fatalf("tunnel %d: status %d", i, status)
			}
			tunnel.Close()
		}
	})
	dead := fmt.Sprintf("127.0.0.7:%d", live.Port())
	if !h.p.health.Ejected(dead) {
		t.Errorf("the dead address %s is not ejected", dead)
	}
	if h.p.health.Ejected(fmt.Sprintf("two.example.com:%d", live.Port())) {
		t.Error("the name itself was ejected although one of its addresses works")
	}
}

// When every endpoint is ejected, picks ignore health (Envoy's panic mode); a retry must still move
// on from the endpoint that just failed rather than draw it again.
func TestRetriesMoveOnWhenEveryEndpointIsEjected(t *testing.T) {
	t.Parallel()
	live := backend.HTTP(t, "live", "127.0.0.1:0")
	// Port 1 is privileged and never bound by a test, so connects are refused; a closed
	// listener's port may be taken by a parallel test's server.
	const deadPort, deadAddr = "1", "127.0.0.1:1"
	health := balance.NewHealth(balance.HealthConfig{EjectFor: time.Hour})
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: panic}
spec:
  hosts: [panic.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: %s}}
  - {address: 127.0.0.1, ports: {http: %d}}
`, deadPort, live.Port()), Config{Health: health}, "")
	for _, key := range []string{deadAddr, live.Addr} {
		for i := 0; i < 5; i++ {
			health.ReportFailure(key)
		}
		if !health.Ejected(key) {
			t.Fatalf("setup: %s not ejected", key)
		}
	}
	c := h.client(nil)
	for i := 0; i < 40; i++ {
		if status, body, _ := get(t, c, "http://panic.example.com/"); status != 200 {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
	}
}

// With two DNS-named endpoints, one of them dead, a retry must leave the dead name once it has no
// other address to offer, so no request fails before the dead name is ejected.
func TestRetriesLeaveADNSEndpointWithNoAddressLeft(t *testing.T) {
	t.Parallel()
	live := backend.HTTP(t, "live", "127.0.0.8:0")
	dns := dnstest.Start(t)
	dns.Set("a.example.com", 30, "127.0.0.8")
	dns.Set("b.example.com", 30, "127.0.0.9") // nothing listens on 127.0.0.9
	yaml := fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pair}
spec:
  hosts: [pair.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}, {number: 443, name: tls, protocol: TLS, targetPort: %d}]
  resolution: DNS
  endpoints: [{address: a.example.com}, {address: b.example.com}]
`, live.Port(), live.Port())
	t.Run("over HTTP", func(t *testing.T) {
		h := startProxy(t, yaml, Config{}, dns.Addr)
		c := h.client(nil)
		for i := 0; i < 60; i++ {
			if status, body, _ := get(t, c, "http://pair.example.com/"); status != 200 {
				t.Fatalf("request %d: %d %q", i, status, body)
			}
			// New connections each time, so every request is routed afresh.
			c.CloseIdleConnections()
			h.p.pool.CloseIdle()
		}
	})
	t.Run("over CONNECT", func(t *testing.T) {
		h := startProxy(t, yaml, Config{}, dns.Addr)
		for i := 0; i < 60; i++ {
			tunnel, status := h.connect(t, "pair.example.com:443")
			if status != 200 {
				t.Fatalf("tunnel %d: status %d", i, status)
			}
			tunnel.Close()
		}
	})
}
