package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// capturedNS is a proxy capturing, in its own network namespace, every TCP connection to the
// namespace's 10.213.74.0/24 addresses with a real iptables REDIRECT; backends listen on the
// namespace's loopback.
type capturedNS struct {
	ns *netns.Namespace
	h  *harness
}

// startCapturedNS compiles yamlDocs (built by docs from the namespace, for backends' ports) and
// serves it on a capture listener that iptables redirects 10.213.74.0/24 to.
func startCapturedNS(t *testing.T, ns *netns.Namespace, yamlDocs string) *capturedNS {
	t.Helper()
	capLn := ns.MustListen("127.0.0.1:0")
	fwd := ns.MustListen("127.0.0.1:0")
	ns.IPTables("-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.213.74.0/24", "-j", "REDIRECT", "--to-ports", strconv.Itoa(portOf(capLn)))
	cfg := Config{
		Logger: failureLog(t),
		// A loaded CI machine may hold a client between its connect and its ClientHello for longer
		// than the 200 ms default, after which the proxy takes the connection as server-first TCP.
		SniffTimeout: 5 * time.Second,
		// Upstream dials happen inside the namespace and only to loopback.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var derr error
				c, derr = loopbackOnly(ctx, network, addr)
				return derr
			})
			return c, err
		},
	}
	var h *harness
	if err := ns.Do(func() error {
		h = serveSnapshot(t, fwd, compileSnapshot(t, yamlDocs), cfg, "")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	go h.p.ServeCapture(capLn)
	return &capturedNS{ns: ns, h: h}
}

func newRouteNS(t *testing.T) *netns.Namespace {
	return netns.New(t, "10.213.74.10/24", "10.213.74.20/24", "10.213.74.21/24")
}

func TestCapturedExample03LandsOnTheEgressFirewall(t *testing.T) {
	ns := newRouteNS(t)
	ca := backend.NewCA(t)
	firewall := backend.TLS(t, "firewall", ns.MustListen("127.0.0.1:0"), ca, "en.wikipedia.org", "de.wikipedia.org")
	c := startCapturedNS(t, ns, example03(t)+
		l4Entry("firewall", "internal-egress-firewall.ns1.svc.cluster.local", 443, "TLS", firewall.Port()))
	for _, sni := range []string{"en.wikipedia.org", "de.wikipedia.org"} {
		t.Run("SNI "+sni+" is answered by the firewall, not the address dialled", func(t *testing.T) {
			conn, err := ns.Dial("tcp", "10.213.74.10:443")
			if err != nil {
				t.Fatal(err)
			}
			tc := tls.Client(conn, backend.TLSClient(ca, sni))
			defer tc.Close()
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(tc, "GET /wiki HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", sni)
			resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
			if err != nil {
				t.Fatalf("HTTPS through capture: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if want := "firewall " + sni + " /wiki"; string(body) != want {
				t.Fatalf("body %q, want %q", body, want)
			}
		})
	}
	_ = c
}

func TestCapturedTLSRouteSplitsByWeight(t *testing.T) {
	ns := newRouteNS(t)
	a, b := ns.MustListen("127.0.0.1:0"), ns.MustListen("127.0.0.1:0")
	announcer(t, "a", a)
	announcer(t, "b", b)
	startCapturedNS(t, ns, splitConfig(a, b))
	const n = 2000
	counts := shares(t, n, func() (net.Conn, error) { return ns.Dial("tcp", "10.213.74.10:443") }, clientHello(t, "api.example.com"))
	if share := 100 * float64(counts["a"]) / n; share < 65 || share > 75 || counts["a"]+counts["b"] != n {
		t.Fatalf("a got %.1f%% of %d connections (%v), want 70 ± 5", share, n, counts)
	}
	t.Run("the second rule takes its own SNI", func(t *testing.T) {
		conn, err := ns.Dial("tcp", "10.213.74.10:443")
		if err != nil {
			t.Fatal(err)
		}
		if name, err := reached(conn, clientHello(t, "other.example.com")); err != nil || name != "b" {
			t.Fatalf("reached %q (%v), want b", name, err)
		}
	})
}

func TestCapturedTCPRoutesByPortAndSubnet(t *testing.T) {
	ns := newRouteNS(t)
	subnet, port, fallback := ns.MustListen("127.0.0.1:0"), ns.MustListen("127.0.0.1:0"), ns.MustListen("127.0.0.1:0")
	announcer(t, "subnet", subnet)
	announcer(t, "port", port)
	announcer(t, "fallback", fallback)
	startCapturedNS(t, ns, tcpRouteConfig(subnet, port, fallback))
	cases := []struct {
		name string
		dial string
		want string
	}{
		{name: "a destination inside the match's subnet takes the subnet rule", dial: "10.213.74.20:5432", want: "subnet"},
		{name: "the subnet rule wins on any port", dial: "10.213.74.20:6379", want: "subnet"},
		{name: "another address on port 6379 takes the port rule", dial: "10.213.74.21:6379", want: "port"},
		{name: "another address on port 5432 falls to the rule without match", dial: "10.213.74.21:5432", want: "fallback"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := ns.Dial("tcp", tc.dial)
			if err != nil {
				t.Fatal(err)
			}
			// Server-first: the backend speaks before the client sends anything.
			got, err := reached(conn, nil)
			if err != nil || got != tc.want {
				t.Fatalf("%s reached %q (%v), want %s", tc.dial, got, err, tc.want)
			}
		})
	}
}
