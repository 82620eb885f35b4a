package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientHello returns the first TLS record a client sends for sni: a ClientHello the proxy
// sniffs, written on connections whose backend never answers TLS.
func clientHello(t *testing.T, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	}()
	b.SetDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	a.Close()
	<-done
	return append(hdr, body...)
}

// announcer accepts connections on ln and writes "name\n" on each, then reads until the client
// closes, so a test learns which backend a connection reached without completing any protocol.
func announcer(t *testing.T, name string, ln net.Listener) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, name+"\n")
				io.Copy(io.Discard, c)
			}()
		}
	}()
}

// reached writes first on c and returns the name the backend announced.
func reached(c net.Conn, first []byte) (string, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if len(first) > 0 {
		if _, err := c.Write(first); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no backend announced itself: %w", err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// staticEntry declares host on one port of protocol proto, served by a loopback backend port.
func l4Entry(name, host string, port uint32, proto string, backendPort int) string {
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s]
  ports: [{number: %d, name: p, protocol: %s}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: %d}}]
`, name, host, port, proto, backendPort)
}

// portOf is the TCP port a listener is bound to.
func portOf(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// example03 is the reference example 03, as written: TLS to wikipedia steered by SNI to the
// egress firewall internal-egress-firewall.ns1.svc.cluster.local.
func example03(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/validate/examples/03-external-svc-redirect.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tunnel opens a CONNECT tunnel to authority through the forward proxy at addr.
func tunnel(addr, authority string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %w", authority, err)
	}
	if resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: status %d (%s)", authority, resp.StatusCode, resp.Header.Get("X-Meshentry-Reason"))
	}
	if br.Buffered() > 0 {
		b, _ := br.Peek(br.Buffered())
		return newPrefixed(c, b), nil
	}
	return c, nil
}

// shares opens n connections with dial, eight at a time, and counts the backends they reached.
func shares(t *testing.T, n int, dial func() (net.Conn, error), first []byte) map[string]int {
	t.Helper()
	const workers = 8
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/workers; i++ {
				conn, err := dial()
				if err == nil {
					var name string
					if name, err = reached(conn, first); err == nil {
						mu.Lock()
						counts[name]++
						mu.Unlock()
						continue
					}
				}
				errs <- err
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return counts
}

// loopbackOnly is a Config.Dial that refuses anything but loopback, so that a test whose routing
// went wrong cannot send traffic to the addresses it only names.
func loopbackOnly(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("test dial refuses %q", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// splitConfig is a tls route sending api.example.com 70/30 to a.internal and b.internal, and
// other.example.com to b.internal alone.
func splitConfig(a, b net.Listener) string {
	return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com, other.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: split}
spec:
  hosts: [api.example.com, other.example.com]
  tls:
  - match: [{sniHosts: [api.example.com]}]
    route:
    - {destination: {host: a.internal}, weight: 70}
    - {destination: {host: b.internal}, weight: 30}
  - match: [{sniHosts: [other.example.com]}]
    route:
    - {destination: {host: b.internal}}
` + l4Entry("a", "a.internal", 443, "TLS", portOf(a)) + l4Entry("b", "b.internal", 443, "TLS", portOf(b))
}

// tcpRouteConfig routes db.internal (10.213.74.0/24, ports 5432 and 6379) by destination subnet,
// then port, then to a default.
func tcpRouteConfig(subnet, port, fallback net.Listener) string {
	return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  addresses: [10.213.74.0/24]
  ports: [{number: 5432, name: pg, protocol: TCP}, {number: 6379, name: redis, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db-routes}
spec:
  hosts: [db.internal]
  tcp:
  - match: [{destinationSubnets: [10.213.74.20/32]}]
    route: [{destination: {host: subnet.internal, port: {number: 7000}}}]
  - match: [{port: 6379}]
    route: [{destination: {host: port.internal, port: {number: 7000}}}]
  - route: [{destination: {host: fallback.internal, port: {number: 7000}}}]
` + l4Entry("subnet", "subnet.internal", 7000, "TCP", portOf(subnet)) +
		l4Entry("port", "port.internal", 7000, "TCP", portOf(port)) + l4Entry("fallback", "fallback.internal", 7000, "TCP", portOf(fallback))
}

// failureLog is a debug logger whose lines the test shows when it fails, so a connection the
// proxy closed says why.
func failureLog(t *testing.T) *slog.Logger {
	t.Helper()
	var mu sync.Mutex
	var buf strings.Builder
	w := writerTo(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if buf.Len() < 1<<20 {
			buf.Write(p)
		}
		return len(p), nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("proxy log:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// writerTo adapts a function to io.Writer.
type writerTo func([]byte) (int, error)

func (f writerTo) Write(p []byte) (int, error) { return f(p) }
