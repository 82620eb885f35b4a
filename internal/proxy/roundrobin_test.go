package proxy

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// DNS_ROUND_ROBIN (Envoy's LOGICAL_DNS) uses one name and takes a different address of it for each
// new connection.
func TestDNSRoundRobinTakesANewAddressPerConnection(t *testing.T) {
	t.Parallel()
	a := backend.HTTP(t, "a", "127.0.0.4:0")
	b := backend.HTTP(t, "b", fmt.Sprintf("127.0.0.5:%d", a.Port()))
	dns := dnstest.Start(t)
	dns.Set("rr.example.com", 30, "127.0.0.4", "127.0.0.5")
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rr}
spec:
  hosts: [rr.example.com]
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: %d}]
  resolution: DNS_ROUND_ROBIN
`, b.Port()), Config{}, dns.Addr)
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		tunnel, status := h.connect(t, "rr.example.com:443")
		if status != 200 {
			t.Fatalf("CONNECT status %d", status)
		}
		fmt.Fprintf(tunnel, "GET / HTTP/1.1\r\nHost: rr.example.com\r\nConnection: close\r\n\r\n")
		raw, _ := io.ReadAll(tunnel)
		tunnel.Close()
		body := string(raw)
		switch {
		case strings.HasSuffix(body, "a rr.example.com /"):
			seen["a"]++
		case strings.HasSuffix(body, "b rr.example.com /"):
			seen["b"]++
		default:
			t.Fatalf("unexpected answer %q", body)
		}
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("connections per address = %v, want 5 and 5", seen)
	}
}
