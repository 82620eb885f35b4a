package proxy

import (
	"net"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

func TestConnectExample03LandsOnTheEgressFirewall(t *testing.T) {
	t.Parallel()
	ca := backend.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	firewall := backend.TLS(t, "firewall", ln, ca, "en.wikipedia.org", "de.wikipedia.org")
	h := startProxy(t, example03(t)+l4Entry("firewall", "internal-egress-firewall.ns1.svc.cluster.local", 443, "TLS", firewall.Port()),
		Config{Dial: loopbackOnly}, "")
	for _, sni := range []string{"en.wikipedia.org", "de.wikipedia.org"} {
		t.Run("a tunnel to "+sni+" is answered by the firewall", func(t *testing.T) {
			tun, status := h.connect(t, sni+":443")
			if status != 200 {
				t.Fatalf("CONNECT status %d, want 200", status)
			}
			if body := httpsOver(t, tun, ca, sni); body != "firewall "+sni+" /via-tunnel" {
				t.Fatalf("body %q, want the firewall's answer for %s", body, sni)
			}
		})
	}
}

func TestConnectTLSRouteSplitsByWeight(t *testing.T) {
	t.Parallel()
	a, b := listenLoopback(t), listenLoopback(t)
	announcer(t, "a", a)
	announcer(t, "b", b)
	h := startProxy(t, splitConfig(a, b), Config{Dial: loopbackOnly}, "")
	// The capture test measures the split over 2,000 connections; a tunnel costs more, so this one
	// checks the same choice on the CONNECT path over 400, with a margin of over four sigma.
	const n = 400
	counts := shares(t, n, func() (net.Conn, error) { return tunnel(h.addr, "api.example.com:443") }, nil)
	if share := 100 * float64(counts["a"]) / n; share < 60 || share > 80 || counts["a"]+counts["b"] != n {
		t.Fatalf("a got %.1f%% of %d tunnels (%v), want 70 ± 10", share, n, counts)
	}
	conn, err := tunnel(h.addr, "other.example.com:443")
	if err != nil {
		t.Fatal(err)
	}
	if name, err := reached(conn, nil); err != nil || name != "b" {
		t.Fatalf("other.example.com reached %q (%v), want b", name, err)
	}
}

func TestConnectTCPRoutesByPortAndSubnet(t *testing.T) {
	t.Parallel()
	subnet, port, fallback := listenLoopback(t), listenLoopback(t), listenLoopback(t)
	announcer(t, "subnet", subnet)
	announcer(t, "port", port)
	announcer(t, "fallback", fallback)
	h := startProxy(t, tcpRouteConfig(subnet, port, fallback), Config{Dial: loopbackOnly}, "")
	cases := []struct {
		name      string
		authority string
		want      string
	}{
		{name: "an address inside the match's subnet takes the subnet rule", authority: "10.213.74.20:5432", want: "subnet"},
		{name: "another address on port 6379 takes the port rule", authority: "10.213.74.21:6379", want: "port"},
		{name: "another address on port 5432 falls to the rule without match", authority: "10.213.74.21:5432", want: "fallback"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tunnel(h.addr, tc.authority)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := reached(conn, nil); err != nil || got != tc.want {
				t.Fatalf("%s reached %q (%v), want %s", tc.authority, got, err, tc.want)
			}
		})
	}
}

func TestRouteToAnUndeclaredHostClosesTheConnection(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(example03(t), "internal-egress-firewall.ns1.svc.cluster.local", "nowhere.ns1.svc.cluster.local", 1)
	h := startProxy(t, cfg, Config{Dial: loopbackOnly}, "")
	if _, status := h.connect(t, "en.wikipedia.org:443"); status == 200 {
		t.Fatal("a tunnel opened though the route's destination is declared nowhere")
	}
}

// listenLoopback listens on 127.0.0.1:0 until the test ends.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestSidecarImportsTheEgressFirewallThroughTheVirtualService(t *testing.T) {
	t.Parallel()
	ca := backend.NewCA(t)
	firewall := backend.TLS(t, "firewall", listenLoopback(t), ca, "en.wikipedia.org")
	docs := example03(t) + l4Entry("firewall", "internal-egress-firewall.ns1.svc.cluster.local", 443, "TLS", firewall.Port()) +
		sidecarYAML("default", "default", "  egress:\n  - hosts: [./wikipedia.org, \"./*.wikipedia.org\"]\n")
	h := startProxy(t, docs, Config{Dial: loopbackOnly}, "")
	t.Run("the route's destination is reachable though the Sidecar's hosts do not name it", func(t *testing.T) {
		tun, status := h.connect(t, "en.wikipedia.org:443")
		if status != 200 {
			t.Fatalf("CONNECT status %d, want 200", status)
		}
		if body := httpsOver(t, tun, ca, "en.wikipedia.org"); body != "firewall en.wikipedia.org /via-tunnel" {
			t.Fatalf("body %q, want the firewall's answer", body)
		}
	})
	t.Run("the destination itself stays out of scope for a direct tunnel", func(t *testing.T) {
		if _, status := h.connect(t, "internal-egress-firewall.ns1.svc.cluster.local:443"); status == 200 {
			t.Fatal("a direct tunnel to the firewall opened, though the Sidecar imports it only on the VirtualService's behalf")
		}
	})
}

func TestAVirtualServiceTheSidecarDoesNotImportDoesNotRoute(t *testing.T) {
	t.Parallel()
	ca := backend.NewCA(t)
	firewall := backend.TLS(t, "firewall", listenLoopback(t), ca, "en.wikipedia.org")
	// The VirtualService lives in namespace routes; the Sidecar imports default's hosts only.
	vsInRoutes := strings.Replace(example03(t), "  name: tls-routing\n", "  name: tls-routing\n  namespace: routes\n", 1)
	docs := vsInRoutes + l4Entry("firewall", "internal-egress-firewall.ns1.svc.cluster.local", 443, "TLS", firewall.Port())
	for _, tc := range []struct {
		name    string
		sidecar string
		want    int
	}{
		{name: "a Sidecar importing */ hosts takes the other namespace's VirtualService", sidecar: "  egress:\n  - hosts: [\"*/*.wikipedia.org\", \"*/wikipedia.org\"]\n", want: 200},
		{name: "a Sidecar importing default/ hosts only leaves it out, so the tunnel goes to the original destination (unresolvable here)",
			sidecar: "  egress:\n  - hosts: [\"default/*.wikipedia.org\", \"default/wikipedia.org\"]\n", want: 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, docs+sidecarYAML("default", "default", tc.sidecar), Config{Dial: loopbackOnly}, "")
			tun, status := h.connect(t, "en.wikipedia.org:443")
			if status != tc.want {
				t.Fatalf("CONNECT status %d, want %d", status, tc.want)
			}
			if tun != nil {
				tun.Close()
			}
		})
	}
}
