package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/identity/ca"
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// meshIdentity is a trust domain made with internal/identity/ca and identities issued in it.
type meshIdentity struct {
	ca *ca.CA
}

func newMesh(t *testing.T) *meshIdentity {
	t.Helper()
	return &meshIdentity{ca: pki.NewCA(t, "cluster.local")}
}

// write issues default/SA into dir (a fresh one when empty) and returns dir.
func (m *meshIdentity) write(t *testing.T, dir, sa string) string {
	t.Helper()
	return pki.Issue(t, m.ca, dir, "default", sa, ca.IssueOptions{})
}

// source loads the identity in dir.
func (m *meshIdentity) source(t *testing.T, dir string) *identity.Source {
	t.Helper()
	s, err := identity.NewSource(identity.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sidecar is an HTTP backend behind mutual TLS with the identity default/SA of m, requiring a
// client of the trust domain, offering Istio's ALPN; it closes every connection after one
// request so that each request shows the client identity of a new handshake.
func (m *meshIdentity) sidecar(t *testing.T, sa string) *tlsListener {
	t.Helper()
	cfg := m.source(t, m.write(t, "", sa)).ServerConfig()
	cfg.NextProtos = []string{"istio"}
	l := newTLSListener(t, cfg)
	serveHTTP(t, l, sa, false)
	return l
}

// meshYAML is a MESH_INTERNAL (or MESH_EXTERNAL) service on port 8000 with one endpoint, the
// entry's subjectAltNames and endpoint labels, and the DestinationRule given (may be empty).
func meshYAML(host, location string, port int, sans, labels, rule string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
spec:
  hosts: [%s]
  location: %s
  ports:
  - number: 8000
    name: http
    protocol: HTTP
  resolution: STATIC
  subjectAltNames: [%s]
  endpoints:
  - address: 127.0.0.1
    ports: {http: %d}
    labels: {%s}
%s`, strings.Split(host, ".")[0], host, location, sans, port, labels, rule)
}

const istioMutualRule = `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin-mtls
spec:
  host: httpbin.mesh.test
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
%s`

func TestIstioMutualChecksTheServersSPIFFEID(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	client := m.source(t, m.write(t, "", "sleep"))
	const httpbin, other = "spiffe://cluster.local/ns/default/sa/httpbin", "spiffe://cluster.local/ns/default/sa/other"
	tests := []struct {
		name       string
		entrySANs  string
		ruleFields string
		wantStatus int
		want       []string
	}{
		{name: "a server with the ID the ServiceEntry lists passes, with Istio's SNI and ALPN",
			entrySANs: httpbin, wantStatus: 200,
			want: []string{"httpbin sni=outbound_.8000_._.httpbin.mesh.test client=spiffe://cluster.local/ns/default/sa/sleep alpn=istio"}},
		{name: "the DestinationRule's subjectAltNames take precedence over the ServiceEntry's",
			entrySANs: other, ruleFields: "      subjectAltNames: [" + httpbin + "]\n", wantStatus: 200,
			want: []string{"httpbin sni="}},
		{name: "with no subjectAltNames any identity of the trust domain passes",
			wantStatus: 200, want: []string{"httpbin sni="}},
		{name: "a server with another SPIFFE ID is refused with a reason naming both",
			entrySANs: other, wantStatus: 503,
			want: []string{"TLS (ISTIO_MUTUAL) handshake with outbound|8000||httpbin.mesh.test failed", "peer presented " + httpbin + ", expected " + other}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := m.sidecar(t, "httpbin")
			h := startProxy(t, meshYAML("httpbin.mesh.test", "MESH_INTERNAL", be.port(), tc.entrySANs, "", fmt.Sprintf(istioMutualRule, tc.ruleFields)),
				Config{Identity: client}, "")
			status, body, resp := get(t, h.client(nil), "http://httpbin.mesh.test:8000/")
			if status != tc.wantStatus {
				t.Fatalf("status %d (%q), want %d", status, body, tc.wantStatus)
			}
			got := body
			if status != 200 {
				got = resp.Header.Get("X-Meshentry-Reason")
				t.Logf("x-meshentry-reason: %s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("got %q, want it to hold %q", got, w)
				}
			}
		})
	}
}

func TestIstioMutualWithoutAnIdentityRefusesTheRoute(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	be := m.sidecar(t, "httpbin")
	h := startProxy(t, meshYAML("httpbin.mesh.test", "MESH_INTERNAL", be.port(), "", "", fmt.Sprintf(istioMutualRule, "")), Config{}, "")
	status, _, resp := get(t, h.client(nil), "http://httpbin.mesh.test:8000/")
	if reason := resp.Header.Get("X-Meshentry-Reason"); status != 503 || !strings.Contains(reason, "--identity-dir") {
		t.Fatalf("status %d, reason %q; want 503 naming --identity-dir", status, reason)
	}
	if n := be.ok.Load() + be.fail.Load(); n != 0 {
		t.Fatalf("the backend saw %d connections; a refused route must not dial", n)
	}
}

func TestAutoMTLSPicksMutualTLSOnlyForLabelledMeshInternalEndpoints(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	client := m.source(t, m.write(t, "", "sleep"))
	mtls := m.sidecar(t, "httpbin")
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, plainLn, "plain", true)
	plain := plainLn.Addr().(*net.TCPAddr).Port
	const label = `security.istio.io/tlsMode: istio`
	tests := []struct {
		name     string
		location string
		port     int
		labels   string
		identity *identity.Source
		want     string
	}{
		{name: "a labelled MESH_INTERNAL endpoint gets mutual TLS", location: "MESH_INTERNAL", port: mtls.port(), labels: label,
			identity: client, want: "httpbin sni=outbound_.8000_._.httpbin.mesh.test client=spiffe://cluster.local/ns/default/sa/sleep alpn=istio"},
		{name: "an unlabelled MESH_INTERNAL endpoint gets plaintext", location: "MESH_INTERNAL", port: plain,
			identity: client, want: "plain sni= client=none alpn="},
		{name: "a labelled MESH_EXTERNAL endpoint gets plaintext", location: "MESH_EXTERNAL", port: plain, labels: label,
			identity: client, want: "plain sni= client=none alpn="},
		{name: "a labelled endpoint gets plaintext when the proxy has no identity", location: "MESH_INTERNAL", port: plain, labels: label,
			want: "plain sni= client=none alpn="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, meshYAML("httpbin.mesh.test", tc.location, tc.port, "", tc.labels, ""), Config{Identity: tc.identity}, "")
			if status, body, _ := get(t, h.client(nil), "http://httpbin.mesh.test:8000/"); status != 200 || body != tc.want {
				t.Fatalf("got %d %q, want 200 %q", status, body, tc.want)
			}
		})
	}
}

func TestIstioMutualPresentsARotatedIdentityOnNewConnections(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	dir := m.write(t, "", "sleep")
	client := m.source(t, dir)
	be := m.sidecar(t, "httpbin")
	h := startProxy(t, meshYAML("httpbin.mesh.test", "MESH_INTERNAL", be.port(), "", "", fmt.Sprintf(istioMutualRule, "")), Config{Identity: client}, "")
	c := h.client(nil)
	for _, sa := range []string{"sleep", "sleep-v2"} {
		if sa != "sleep" {
			m.write(t, dir, sa)
			if err := client.Reload(); err != nil {
				t.Fatal(err)
			}
		}
		want := "client=spiffe://cluster.local/ns/default/sa/" + sa + " "
		if status, body, _ := get(t, c, "http://httpbin.mesh.test:8000/"); status != 200 || !strings.Contains(body, want) {
			t.Fatalf("as %s: got %d %q, want 200 with %q", sa, status, body, want)
		}
	}
}
