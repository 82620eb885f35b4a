package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// TestCapturedExample03UnderASidecar runs `meshentry run` with transparent capture on the
// reference example 03, an egress firewall standing in for internal-egress-firewall, and a Sidecar
// that --labels selects: wikipedia's SNI lands on the firewall, a host the Sidecar does not import
// is closed although a ServiceEntry declares it, and the Sidecar's REGISTRY_ONLY overrides
// --outbound-policy ALLOW_ANY.
func TestCapturedExample03UnderASidecar(t *testing.T) {
	ns := netns.New(t, "10.213.80.10/24")
	ca := backend.NewCA(t)
	firewall := backend.TLS(t, "firewall", ns.MustListen("127.0.0.1:0"), ca, "en.wikipedia.org", "de.wikipedia.org", "blocked.example.com")
	example, err := os.ReadFile("../../testdata/validate/examples/03-external-svc-redirect.yaml")
	if err != nil {
		t.Fatal(err)
	}
	config := string(example) + fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal-egress-firewall, namespace: ns1}
spec:
  hosts: [internal-egress-firewall.ns1.svc.cluster.local]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: blocked}
spec:
  hosts: [blocked.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: %d}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client-only}
spec:
  workloadSelector: {labels: {app: client}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  egress:
  - hosts: [./wikipedia.org, "./*.wikipedia.org"]
`, firewall.Port(), firewall.Port())
	startCaptured(t, ns, "10.213.80.0/24", config, "--labels", "app=client", "--outbound-policy", "ALLOW_ANY")
	for _, sni := range []string{"en.wikipedia.org", "de.wikipedia.org"} {
		t.Run("SNI "+sni+" lands on the egress firewall", func(t *testing.T) {
			if body, err := nsHTTPSGet(t, ns, ca, "10.213.80.10:443", sni, "/wiki"); err != nil || body != "firewall "+sni+" /wiki" {
				t.Fatalf("got %q, %v; want the firewall's answer", body, err)
			}
		})
	}
	t.Run("a declared host the Sidecar does not import is closed", func(t *testing.T) {
		if body, err := nsHTTPSGet(t, ns, ca, "10.213.80.10:443", "blocked.example.com", "/wiki"); err == nil {
			t.Fatalf("handshake succeeded: %q", body)
		}
	})
	t.Run("the Sidecar's REGISTRY_ONLY closes an undeclared SNI despite --outbound-policy ALLOW_ANY", func(t *testing.T) {
		// Under ALLOW_ANY this would go to 10.213.80.10:443, where nothing listens but the capture
		// itself; the proxy must close it before dialling anything.
		c := nsDial(t, ns, "10.213.80.10:443")
		defer c.Close()
		tc := tls.Client(c, &tls.Config{ServerName: "www.example.org", InsecureSkipVerify: true})
		if err := tc.Handshake(); err == nil {
			t.Fatal("handshake succeeded for an SNI no ServiceEntry declares")
		}
	})
}
