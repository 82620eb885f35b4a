package proxy

import (
	"net"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// deadEntry declares host on port 443 with one endpoint where nothing listens.
func deadEntry(name, ip string) string {
	return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ` + name + `}
spec:
  hosts: [` + name + `.example.com]
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: 1}]
  resolution: STATIC
  endpoints: [{address: ` + ip + `}]
---
`
}

func TestUpdateDropsHealthOfEndpointsThatAreGone(t *testing.T) {
	t.Parallel()
	h := startProxy(t, deadEntry("gone", "127.0.0.9")+deadEntry("stays", "127.0.0.10"), Config{}, "")
	for _, host := range []string{"gone.example.com:443", "stays.example.com:443"} {
		for range 5 { // Istio's consecutive5xxErrors default: the fifth failure ejects
			if _, status := h.connect(t, host); status != 503 {
				t.Fatalf("CONNECT %s = %d, want 503 from a dead endpoint", host, status)
			}
		}
	}
	if !h.p.health.Ejected("127.0.0.9:1") || !h.p.health.Ejected("127.0.0.10:1") {
		t.Fatal("the dead endpoints were not ejected")
	}
	h.p.Update(compileSnapshot(t, deadEntry("stays", "127.0.0.10")))
	t.Run("forgets the endpoint that left the configuration", func(t *testing.T) {
		if h.p.health.Ejected("127.0.0.9:1") {
			t.Fatal("127.0.0.9:1 is still tracked as ejected after its ServiceEntry was removed")
		}
	})
	t.Run("keeps the ejection of the endpoint that stayed", func(t *testing.T) {
		if !h.p.health.Ejected("127.0.0.10:1") {
			t.Fatal("127.0.0.10:1 lost its ejection across the update")
		}
	})
}

func TestUpdateKeepsTheEjectedAddressesOfADNSNameThatStays(t *testing.T) {
	t.Parallel()
	live := echoServer(t)
	_, port, _ := net.SplitHostPort(live.Addr().String())
	dns := dnstest.Start(t)
	dns.Set("two.example.com", 30, "127.0.0.1", "127.0.0.7") // nothing listens on 127.0.0.7
	entry := `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: two}
spec:
  hosts: [two.example.com]
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: ` + port + `}]
  resolution: DNS
`
	h := startProxy(t, entry, Config{}, dns.Addr)
	dead := "127.0.0.7:" + port
	for i := 0; i < 20 && !h.p.health.Ejected(dead); i++ {
		tunnel, status := h.connect(t, "two.example.com:443")
		if status != 200 {
			t.Fatalf("tunnel %d: status %d", i, status)
		}
		tunnel.Close()
	}
	if !h.p.health.Ejected(dead) {
		t.Fatalf("%s was never ejected", dead)
	}
	h.p.Update(compileSnapshot(t, entry))
	if !h.p.health.Ejected(dead) {
		t.Fatalf("%s lost its ejection when a new snapshot kept its name", dead)
	}
	h.p.Update(compileSnapshot(t, deadEntry("other", "127.0.0.10")))
	if h.p.health.Ejected(dead) {
		t.Fatalf("%s is still tracked once its name left the configuration", dead)
	}
}
