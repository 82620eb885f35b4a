package proxy

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// scopeEntry declares host in ns on port 80 (HTTP) and 8080 (HTTP), both served by be.
func scopeEntry(name, ns, host string, be *backend.Server) string {
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: %s}
spec:
  hosts: [%s]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: alt, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d, alt: %d}}]
`, name, ns, host, be.Port(), be.Port())
}

func sidecarYAML(name, ns, spec string) string {
	return "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec:\n" + spec
}

func TestSidecarNarrowsWhatTheProxyReaches(t *testing.T) {
	t.Parallel()
	own := backend.HTTP(t, "own", "127.0.0.1:0")
	foreign := backend.HTTP(t, "foreign", "127.0.0.1:0")
	common := backend.HTTP(t, "common", "127.0.0.1:0")
	entries := scopeEntry("own", "team", "own.example.com", own) + scopeEntry("foreign", "other", "foreign.example.com", foreign) +
		scopeEntry("common", "shared", "common.example.com", common)
	type want struct {
		url     string
		backend string // "" for a refusal
	}
	cases := []struct {
		name    string
		sidecar string
		cfg     Config
		wants   []want
	}{
		{
			name:    "a ./host Sidecar reaches its own namespace's host and refuses the others",
			sidecar: sidecarYAML("default", "team", "  egress:\n  - hosts: [./own.example.com]\n"),
			wants:   []want{{"http://own.example.com/", "own"}, {"http://foreign.example.com/", ""}, {"http://common.example.com/", ""}},
		},
		{
			name:    "an ns/host Sidecar reaches that namespace's host",
			sidecar: sidecarYAML("default", "team", "  egress:\n  - hosts: [other/foreign.example.com]\n"),
			wants:   []want{{"http://foreign.example.com/", "foreign"}, {"http://own.example.com/", ""}},
		},
		{
			name:    "a */host Sidecar reaches the host in any namespace",
			sidecar: sidecarYAML("default", "team", "  egress:\n  - hosts: [\"*/common.example.com\", \"*/*.example.org\"]\n"),
			wants:   []want{{"http://common.example.com/", "common"}, {"http://foreign.example.com/", ""}},
		},
		{
			name:    "a ~/* Sidecar reaches nothing",
			sidecar: sidecarYAML("default", "team", "  egress:\n  - hosts: [\"~/*\"]\n"),
			wants:   []want{{"http://own.example.com/", ""}, {"http://common.example.com/", ""}},
		},
		{
			name: "an egress listener with a port narrows that port only",
			sidecar: sidecarYAML("default", "team", "  egress:\n  - port: {number: 8080, name: alt, protocol: HTTP}\n    hosts: [other/*]\n"+
				"  - hosts: [./*]\n"),
			wants: []want{{"http://foreign.example.com:8080/", "foreign"}, {"http://own.example.com:8080/", ""},
				{"http://own.example.com/", "own"}, {"http://foreign.example.com/", ""}},
		},
		{
			name: "the Sidecar whose workloadSelector matches --labels applies",
			sidecar: sidecarYAML("default", "team", "  egress:\n  - hosts: [./*]\n") +
				sidecarYAML("picky", "team", "  workloadSelector: {labels: {app: picky}}\n  egress:\n  - hosts: [shared/*]\n"),
			cfg:   Config{Labels: map[string]string{"app": "picky"}},
			wants: []want{{"http://common.example.com/", "common"}, {"http://own.example.com/", ""}},
		},
		{
			name:    "the root namespace's default applies to a namespace without one",
			sidecar: sidecarYAML("default", "mesh-root", "  egress:\n  - hosts: [./*, shared/*]\n"),
			cfg:     Config{RootNamespace: "mesh-root"},
			wants:   []want{{"http://own.example.com/", "own"}, {"http://common.example.com/", "common"}, {"http://foreign.example.com/", ""}},
		},
		{
			name:    "outboundTrafficPolicy REGISTRY_ONLY overrides --outbound-policy ALLOW_ANY",
			sidecar: sidecarYAML("default", "team", "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n  egress:\n  - hosts: [./*]\n"),
			cfg:     Config{AllowAny: true},
			wants:   []want{{"http://own.example.com/", "own"}, {"http://foreign.example.com/", ""}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Namespace = "team"
			h := startProxy(t, entries+tc.sidecar, cfg, "")
			c := h.client(nil)
			for _, w := range tc.wants {
				status, body, _ := get(t, c, w.url)
				switch {
				case w.backend == "" && status != 502:
					t.Errorf("GET %s: %d %q, want 502 (out of the Sidecar's scope)", w.url, status, body)
				case w.backend != "" && (status != 200 || !strings.HasPrefix(body, w.backend+" ")):
					t.Errorf("GET %s: %d %q, want 200 from %s", w.url, status, body, w.backend)
				}
			}
		})
	}
}

// egressProxyYAML declares the egress proxy service, served by addr, and a Sidecar that sends
// every unmatched connection to it.
func egressProxyYAML(port int) string {
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress-proxy, namespace: team}
spec:
  hosts: [egress.proxy.internal]
  ports: [{number: 3128, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
`, port) + sidecarYAML("default", "team", "  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: egress.proxy.internal, port: {number: 3128}}\n  egress:\n  - hosts: [./*]\n")
}

func TestSidecarEgressProxyTakesUnmatchedTraffic(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	_, portStr, _ := net.SplitHostPort(echo.Addr().String())
	var port int
	fmt.Sscan(portStr, &port)
	h := startProxy(t, egressProxyYAML(port), Config{Namespace: "team"}, "")
	t.Run("a CONNECT to an undeclared host is tunnelled to the egress proxy", func(t *testing.T) {
		tun, status := h.connect(t, "unknown.example.org:443")
		if status != 200 {
			t.Fatalf("CONNECT status %d, want 200 through the egress proxy", status)
		}
		defer tun.Close()
		expectEcho(t, tun, "hello egress proxy")
	})
	t.Run("a captured connection to an undeclared address is piped to the egress proxy", func(t *testing.T) {
		addr := h.serveCapture(t, "192.0.2.77:5432")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expectEcho(t, c, "captured, then egress proxy")
	})
}

// expectEcho writes msg on c and fails unless the same bytes come back.
func expectEcho(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}
