package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// DYNAMIC_DNS (Istio's resolution for wildcard hosts) resolves the name asked for at connection
// time through the proxy's resolver; declared endpoints are ignored, raw TCP and IP literals are
// refused. Validation may still refuse the resolution, so the snapshot is built directly.
func TestDynamicDNSResolvesTheRequestedNameAtConnectionTime(t *testing.T) {
	t.Parallel()
	web := backend.HTTP(t, "web", "127.0.0.1:0")
	tcp := countingListener(t)
	dns := dnstest.Start(t)
	dns.Set("a.dyn.example", 30, "127.0.0.1")
	snap := buildUnvalidated(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dynamic}
spec:
  hosts: ["*.dyn.example"]
  ports:
  - {number: %d, name: http, protocol: HTTP}
  - {number: %d, name: tcp, protocol: TCP}
  resolution: DYNAMIC_DNS
  endpoints: [{address: 127.0.0.2}]
`, web.Port(), tcp.port()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := serveSnapshot(t, ln, snap, Config{}, dns.Addr)
	t.Run("forwards HTTP to the address the Host resolves to, not the declared endpoint", func(t *testing.T) {
		before := dns.Queries()
		status, body, _ := get(t, h.client(nil), fmt.Sprintf("http://a.dyn.example:%d/d", web.Port()))
		if status != 200 || body != fmt.Sprintf("web a.dyn.example:%d /d", web.Port()) {
			t.Fatalf("got %d %q", status, body)
		}
		if dns.Queries() == before {
			t.Fatal("the name was not resolved through the DNS server")
		}
	})
	t.Run("tunnels a CONNECT to the address its authority resolves to", func(t *testing.T) {
		c, status := h.connect(t, fmt.Sprintf("a.dyn.example:%d", tcp.port()))
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		c.Close()
	})
	t.Run("answers 503 for a name that does not resolve", func(t *testing.T) {
		if status, body, _ := get(t, h.client(nil), fmt.Sprintf("http://b.dyn.example:%d/", web.Port())); status != 503 {
			t.Fatalf("got %d %q", status, body)
		}
	})
	t.Run("refuses an IP literal in place of the name", func(t *testing.T) {
		raw := rawRequest(t, h.addr, fmt.Sprintf("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", web.Port()))
		if strings.HasPrefix(raw, "HTTP/1.1 200") {
			t.Fatalf("got %q", raw)
		}
		if c, status := h.connect(t, fmt.Sprintf("127.0.0.1:%d", tcp.port())); status == 200 {
			c.Close()
			t.Fatal("CONNECT to an IP literal was tunnelled")
		}
	})
	t.Run("refuses captured raw TCP, which names no host", func(t *testing.T) {
		orig := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tcp.port()))
		c, _, _, err := h.p.dialCaptured(context.Background(), h.p.table.Load(), orig, "", false)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, errNoName) {
			t.Fatalf("err = %v, want errNoName", err)
		}
	})
	t.Run("routes captured TLS by its SNI", func(t *testing.T) {
		orig := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), uint16(tcp.port()))
		c, addr, _, err := h.p.dialCaptured(context.Background(), h.p.table.Load(), orig, "A.dyn.example", true)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if want := fmt.Sprintf("127.0.0.1:%d", tcp.port()); addr != want {
			t.Fatalf("dialled %s, want %s", addr, want)
		}
	})
	if got := tcp.accepted(2); got != 2 {
		t.Fatalf("the TCP target accepted %d connections, want 2 (the tunnel and the SNI)", got)
	}
}

func TestDynamicDNSIsNamedAsIstioNamesIt(t *testing.T) {
	t.Parallel()
	if got := registry.ResolutionDynamicDNS.String(); got != "DYNAMIC_DNS" {
		t.Fatalf("String() = %q", got)
	}
}

// buildUnvalidated decodes yamlDocs and builds a snapshot without validation.
func buildUnvalidated(t *testing.T, yamlDocs string) *registry.Snapshot {
	t.Helper()
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(yamlDocs), "default", &order)
	if len(diags) > 0 {
		t.Fatalf("decode: %v", diags)
	}
	return registry.Build(docs, 1)
}
