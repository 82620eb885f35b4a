package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// A DestinationRule's tls applies to entries whose traffic goes where the application addressed
// it (resolution NONE and DYNAMIC_DNS), with the requested host as the SNI for a wildcard entry.
func TestTLSOriginationAppliesToNoneAndDynamicDNSEntries(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "wildcard CA")
	cert, _, _ := pki.issue(t, "api.example.test", "api.example.test", "www.example.test")
	be := newTLSListener(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	serveHTTP(t, be, "api", true)
	dns := dnstest.Start(t)
	dns.Set("api.example.test", 30, "127.0.0.1")
	dns.Set("www.example.test", 30, "127.0.0.1")
	dns.Set("evil.example.test", 30, "127.0.0.1")
	for _, resolution := range []string{"NONE", "DYNAMIC_DNS"} {
		t.Run("resolution "+resolution, func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.example.test"]
  location: MESH_EXTERNAL
  ports: [{number: %d, name: http, protocol: HTTP}]
  resolution: %s
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wild-tls}
spec:
  host: "*.example.test"
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: %s}
`, be.port(), resolution, pki.caFile), Config{}, dns.Addr)
			c := h.client(nil)
			for _, host := range []string{"api.example.test", "www.example.test", "api.example.test"} {
				url := fmt.Sprintf("http://%s:%d/", host, be.port())
				if err := getBody(c, url, "api sni="+host+" client=none alpn="); err != nil {
					t.Fatal(err)
				}
			}
			// The certificate does not name evil.example.test: refused, never sent in plaintext.
			status, _, resp := get(t, c, fmt.Sprintf("http://evil.example.test:%d/", be.port()))
			if reason := resp.Header.Get("X-Meshentry-Reason"); status != 503 || !strings.Contains(reason, "expected a certificate for evil.example.test") {
				t.Fatalf("evil.example.test: %d, reason %q; want 503 naming the host expected", status, reason)
			}
			// A CONNECT tunnel to the same entry is wrapped too: plain HTTP inside reaches the backend.
			tunnel, code := h.connect(t, fmt.Sprintf("www.example.test:%d", be.port()))
			if code != 200 {
				t.Fatalf("CONNECT status %d", code)
			}
			defer tunnel.Close()
			fmt.Fprintf(tunnel, "GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n")
			line, err := bufio.NewReader(tunnel).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
				t.Fatalf("plain HTTP through the tunnel: %q, %v", line, err)
			}
		})
	}
}
