package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity/ca"
	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// egressConfig is an egress gateway with one server of each kind in front of an HTTP backend
// (httpbin.com, STATIC; none.example.com, resolution NONE) and a TLS one (tls.example.com).
func egressConfig(httpPort, tlsPort int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: egress}
spec:
  hosts: [httpbin.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none, namespace: egress}
spec:
  hosts: [none.example.com]
  ports: [{number: %[1]d, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: egress}
spec:
  hosts: [tls.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: %[2]d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [egress/httpbin.com, egress/none.example.com, unrouted.example.com]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [tls.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [httpbin.com]
    tls: {mode: SIMPLE, credentialName: httpbin-cred}
  - port: {number: 9443, name: https-mutual, protocol: HTTPS}
    hosts: [httpbin.com]
    tls: {mode: MUTUAL, credentialName: httpbin-cred}
  - port: {number: 7443, name: https-istio, protocol: HTTPS}
    hosts: [httpbin.com]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 15443, name: tls-auto, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: egress}
spec:
  hosts: [httpbin.com, none.example.com]
  gateways: [istio-system/egressgateway]
  http:
  - match: [{authority: {exact: none.example.com}}]
    route: [{destination: {host: none.example.com, port: {number: %[1]d}}}]
  - route: [{destination: {host: httpbin.com, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls, namespace: egress}
spec:
  hosts: [tls.example.com]
  gateways: [istio-system/egressgateway]
  tls:
  - match: [{port: 443, sniHosts: [tls.example.com]}]
    route: [{destination: {host: tls.example.com, port: {number: 443}}}]
`, httpPort, tlsPort)
}

// egressFixture is a gateway serving egressConfig with every backend it needs, and what a
// client needs to trust it.
type egressFixture struct {
	h         *harness
	root      *ca.CA
	roots     *x509.CertPool
	backendCA *backend.CA
	autoSNI   string
}

// startEgress starts egressConfig's backends and gateway.
func startEgress(t *testing.T) *egressFixture {
	httpb := backend.HTTP(t, "httpbin", "127.0.0.1:0")
	f := &egressFixture{backendCA: backend.NewCA(t), autoSNI: "outbound_.443_._.tls.example.com", root: pki.NewCA(t, "cluster.local")}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	tlsb := backend.TLS(t, "tlsbackend", tlsLn, f.backendCA, "tls.example.com", f.autoSNI)
	dns := dnstest.Start(t)
	dns.Set("none.example.com", 30, "127.0.0.1")
	creds := t.TempDir()
	credential(t, f.root, creds, "httpbin-cred", "httpbin.com")
	credStore := NewCredentials(creds, nil)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	t.Cleanup(func() { cancel(); <-runDone })
	f.h = startGateway(t, egressConfig(httpb.Port(), tlsb.Port()), dns.Addr, func(c *Config) {
		c.Credentials = credStore
		c.Identity = identitySource(t, f.root, "istio-system", "egressgateway")
	})
	go func() { defer close(runDone); credStore.Run(ctx) }()
	f.roots = x509.NewCertPool()
	f.roots.AddCert(f.root.Root)
	return f
}

// TestGatewayPlaintextServer checks host acceptance and routing on an HTTP server.
func TestGatewayPlaintextServer(t *testing.T) {
	t.Parallel()
	h := startEgress(t).h
	t.Run("a request for a declared host reaches the VirtualService's destination", func(t *testing.T) {
		t.Parallel()
		status, body, err := get(h.client(80, nil), "http://httpbin.com/get")
		if err != nil || status != 200 || body != "httpbin httpbin.com /get" {
			t.Errorf("got %d %q, %v", status, body, err)
		}
	})
	t.Run("a host no server declares is answered 404", func(t *testing.T) {
		t.Parallel()
		status, body, err := get(h.client(80, nil), "http://evil.com/")
		if err != nil || status != 404 || !strings.Contains(body, "not among the hosts") {
			t.Errorf("got %d %q, %v", status, body, err)
		}
	})
	t.Run("a declared host no VirtualService routes is answered 404", func(t *testing.T) {
		t.Parallel()
		status, body, err := get(h.client(80, nil), "http://unrouted.example.com/")
		if err != nil || status != 404 || !strings.Contains(body, "no VirtualService") {
			t.Errorf("got %d %q, %v", status, body, err)
		}
	})
	t.Run("a NONE service at the gateway resolves the requested host", func(t *testing.T) {
		t.Parallel()
		status, body, err := get(h.client(80, nil), "http://none.example.com/x")
		if err != nil || status != 200 || body != "httpbin none.example.com /x" {
			t.Errorf("got %d %q, %v", status, body, err)
		}
	})
}

// TestGatewayTLSServers checks each TLS mode of a server against real clients and backends.
func TestGatewayTLSServers(t *testing.T) {
	t.Parallel()
	f := startEgress(t)
	h, root, roots, backendCA, autoSNI := f.h, f.root, f.roots, f.backendCA, f.autoSNI
	t.Run("SIMPLE terminates with the credential folder", func(t *testing.T) {
		t.Parallel()
		status, body, err := get(h.client(8443, &tls.Config{RootCAs: roots}), "https://httpbin.com/s")
		if err != nil || status != 200 || body != "httpbin httpbin.com /s" {
			t.Errorf("got %d %q, %v", status, body, err)
		}
	})
	t.Run("MUTUAL refuses a client without a certificate and serves one with", func(t *testing.T) {
		t.Parallel()
		if _, _, err := get(h.client(9443, &tls.Config{RootCAs: roots}), "https://httpbin.com/"); err == nil {
			t.Error("a client without a certificate was served")
		}
		client := identitySource(t, root, "egress", "sleep").Current().SVID
		cert := tls.Certificate{PrivateKey: client.PrivateKey}
		for _, c := range client.Certificates {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
		status, body, err := get(h.client(9443, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}), "https://httpbin.com/m")
		if err != nil || status != 200 || body != "httpbin httpbin.com /m" {
			t.Errorf("got %d %q, %v", status, body, err)
		}
	})
	t.Run("ISTIO_MUTUAL accepts a sidecar of the trust domain", func(t *testing.T) {
		t.Parallel()
		cfg := identitySource(t, root, "egress", "sleep").ClientConfig()
		cfg.ServerName = "httpbin.com"
		status, body, err := get(h.client(7443, cfg), "https://httpbin.com/i")
		if err != nil || status != 200 || body != "httpbin httpbin.com /i" {
			t.Errorf("got %d %q, %v", status, body, err)
		}
		other := identitySource(t, pki.NewCA(t, "cluster.local"), "egress", "sleep").ClientConfig()
		other.ServerName = "httpbin.com"
		if _, _, err := get(h.client(7443, other), "https://httpbin.com/"); err == nil {
			t.Error("a client of another CA was served")
		}
	})
	t.Run("PASSTHROUGH routes by SNI without terminating", func(t *testing.T) {
		t.Parallel()
		status, body, err := get(h.client(443, backend.TLSClient(backendCA, "tls.example.com")), "https://tls.example.com/p")
		if err != nil || status != 200 || body != "tlsbackend tls.example.com /p" {
			t.Errorf("got %d %q, %v", status, body, err)
		}
		if _, _, err := get(h.client(443, backend.TLSClient(backendCA, "other.example.com")), "https://other.example.com/"); err == nil {
			t.Error("an SNI no server declares was routed")
		}
	})
	t.Run("AUTO_PASSTHROUGH routes by the cluster its SNI names", func(t *testing.T) {
		t.Parallel()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", h.addrs[15443].String(),
			&tls.Config{ServerName: autoSNI, InsecureSkipVerify: true}) // the backend's own certificate is checked below
		must(t, err)
		defer c.Close()
		leaf := c.ConnectionState().PeerCertificates[0]
		if !slices.Contains(leaf.DNSNames, autoSNI) {
			t.Errorf("the connection reached a server presenting %v", leaf.DNSNames)
		}
	})
}

// TestGatewayFollowsARenewedCredential renews a SIMPLE server's folder and sees new handshakes
// present the new certificate without a restart.
func TestGatewayFollowsARenewedCredential(t *testing.T) {
	t.Parallel()
	httpb := backend.HTTP(t, "httpbin", "127.0.0.1:0")
	root := pki.NewCA(t, "cluster.local")
	creds := t.TempDir()
	credential(t, root, creds, "httpbin-cred", "httpbin.com")
	store := NewCredentials(creds, nil)
	h := startGateway(t, egressConfig(httpb.Port(), 1), "", func(c *Config) {
		c.Credentials = store
		c.Identity = identitySource(t, root, "istio-system", "egressgateway")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); store.Run(ctx) }()
	defer func() { cancel(); <-done }()
	roots := x509.NewCertPool()
	roots.AddCert(root.Root)
	serial := func() string {
		c, err := tls.Dial("tcp", h.addrs[8443].String(), &tls.Config{RootCAs: roots, ServerName: "httpbin.com"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	credential(t, root, creds, "httpbin-cred", "httpbin.com")
	waitFor(t, "the renewed certificate being served", func() bool { return serial() != before })
	if store.Reloads() == 0 {
		t.Error("the reload was not counted")
	}
}

// TestGatewayRefusesAPortItCannotBind names the server whose port is taken.
func TestGatewayRefusesAPortItCannotBind(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer taken.Close()
	port := uint16(taken.Addr().(*net.TCPAddr).Port)
	yaml := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
`
	g := newGateway(t, yaml, "", func(c *Config) { c.Ports[80] = port })
	err = g.Listen()
	if err == nil || !strings.Contains(err.Error(), "Gateway istio-system/g server 0 (port 80 HTTP) at gw.yaml:7") {
		t.Fatalf("Listen = %v, want an error naming the server", err)
	}
}
