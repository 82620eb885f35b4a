package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// A request addressed to the proxy's own listener made it dial itself, request after request, until
// every descriptor was used; the admin listener was reachable through it too. Each such dial must
// be answered at once with 508 Loop Detected (CONNECT alike) and the admin API never reached.
func TestTheProxyNeverDialsItsOwnListeners(t *testing.T) {
	t.Parallel()
	admin := backend.HTTP(t, "admin", "127.0.0.1:0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := ln.Addr().(*net.TCPAddr).Port
	dns := dnstest.Start(t)
	dns.Set("loop.example.com", 30, "127.0.0.1")
	dns.Set("static-loop.example.com", 30, "127.0.0.1")
	h := startProxyOn(t, ln, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static-loop}
spec:
  hosts: [static-loop.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %[1]d, tls: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns-loop}
spec:
  hosts: [dns-loop.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: loop.example.com, ports: {http: %[1]d}}]
`, self), Config{AllowAny: true, SelfAddrs: []netip.AddrPort{netip.MustParseAddrPort(admin.Addr)}}, dns.Addr)
	httpCases := []struct {
		name   string
		target string
	}{
		{name: "answers 508 to a passthrough request for the proxy's own address", target: fmt.Sprintf("127.0.0.1:%d", self)},
		{name: "answers 508 to the unspecified address with the proxy's port", target: fmt.Sprintf("0.0.0.0:%d", self)},
		{name: "answers 508 to a name that resolves to the proxy's own address", target: fmt.Sprintf("loop.example.com:%d", self)},
		{name: "answers 508 to a STATIC endpoint that is the proxy itself", target: "static-loop.example.com"},
		{name: "answers 508 to a DNS endpoint that resolves to the proxy itself", target: "dns-loop.example.com"},
		{name: "never reaches the admin listener through the proxy", target: admin.Addr},
	}
	for _, tc := range httpCases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			raw := rawRequest(t, h.addr, "GET http://"+tc.target+"/debug/pprof/ HTTP/1.1\r\nHost: "+tc.target+"\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(raw, "HTTP/1.1 508") || strings.Contains(raw, "admin ") {
				t.Fatalf("got %q", raw)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("took %v to refuse", d)
			}
		})
	}
	connectCases := []struct {
		name      string
		authority string
	}{
		{name: "answers 508 to a CONNECT to the proxy's own address", authority: fmt.Sprintf("127.0.0.1:%d", self)},
		{name: "answers 508 to a CONNECT to the admin listener", authority: admin.Addr},
		{name: "answers 508 to a CONNECT whose STATIC endpoint is the proxy itself", authority: "static-loop.example.com:9443"},
	}
	for _, tc := range connectCases {
		t.Run(tc.name, func(t *testing.T) {
			c, status := h.connect(t, tc.authority)
			if c != nil {
				c.Close()
			}
			if status != 508 {
				t.Fatalf("CONNECT %s: status %d, want 508", tc.authority, status)
			}
		})
	}
	t.Run("counts every refused loop", func(t *testing.T) {
		if got, want := h.p.SecurityStats().Loops, uint64(len(httpCases)+len(connectCases)); got != want {
			t.Fatalf("Loops = %d, want %d", got, want)
		}
	})
}

func TestGuardKnowsEveryAddressAWildcardListenerAnswers(t *testing.T) {
	t.Parallel()
	var g guard
	g.init(Config{SelfAddrs: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:15001"), netip.MustParseAddrPort("127.0.0.1:15000")}}, nil)
	local := netip.Addr{}
	for a := range localAddrs() {
		if !a.IsLoopback() && a.Zone() == "" {
			local = a
			break
		}
	}
	tests := []struct {
		name string
		ap   string
		want bool
	}{
		{name: "loopback on the wildcard's port", ap: "127.0.0.1:15001", want: true},
		{name: "another loopback address on the wildcard's port", ap: "127.9.9.9:15001", want: true},
		{name: "IPv6 loopback on the wildcard's port", ap: "[::1]:15001", want: true},
		{name: "IPv4-mapped loopback on the exact listener", ap: "[::ffff:127.0.0.1]:15000", want: true},
		{name: "the unspecified address on the exact listener's port", ap: "0.0.0.0:15000", want: true},
		{name: "another loopback address beside the exact listener", ap: "127.0.0.2:15000", want: false},
		{name: "a remote address on the wildcard's port", ap: "192.0.2.1:15001", want: false},
		{name: "loopback on another port", ap: "127.0.0.1:8080", want: false},
	}
	if local.IsValid() {
		tests = append(tests, struct {
			name string
			ap   string
			want bool
		}{name: "an interface address on the wildcard's port", ap: netip.AddrPortFrom(local, 15001).String(), want: true})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := g.isSelf(netip.MustParseAddrPort(tc.ap)); got != tc.want {
				t.Fatalf("isSelf(%s) = %v, want %v", tc.ap, got, tc.want)
			}
		})
	}
}

// startProxyOn is startProxy on a listener the test opened first, so the config can name its port.
func startProxyOn(t testing.TB, ln net.Listener, yamlDocs string, cfg Config, dnsAddr string) *harness {
	t.Helper()
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(yamlDocs), "default", &order)
	res := compile.Documents(config.Result{Documents: docs, Diagnostics: diags}, 1)
	if n := res.Errors(); n > 0 {
		t.Fatalf("config has %d errors: %v", n, res.Diagnostics)
	}
	return serveSnapshot(t, ln, res.Snapshot, cfg, dnsAddr)
}

// serveSnapshot serves snap on ln with a resolver asking dnsAddr, until the test ends.
func serveSnapshot(t testing.TB, ln net.Listener, snap *registry.Snapshot, cfg Config, dnsAddr string) *harness {
	t.Helper()
	if cfg.Resolver == nil {
		if dnsAddr == "" {
			dnsAddr = "127.0.0.1:1"
		}
		r, err := resolve.New(resolve.Config{Server: dnsAddr, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		cfg.Resolver = r
	}
	p := New(cfg, snap)
	go p.ServeForward(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return &harness{p: p, addr: ln.Addr().String()}
}
