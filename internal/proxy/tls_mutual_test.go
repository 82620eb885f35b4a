package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// mongoYAML is the reference page's example 02 on loopback: MongoDB on two "VMs" (two ports of
// 127.0.0.1) behind a VIP, with a DestinationRule setting MUTUAL TLS from the given files.
func mongoYAML(p1, p2 int, cert, key, caFile string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external-svc-mongocluster
spec:
  hosts: [mymongodb.somedomain]
  addresses: [192.192.192.192/24]
  ports:
  - number: 27018
    name: mongodb
    protocol: MONGO
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {mongodb: %d}
  - address: 127.0.0.1
    ports: {mongodb: %d}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: mtls-mongocluster
spec:
  host: mymongodb.somedomain
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: %s
      privateKey: %s
      caCertificates: %s
`, p1, p2, cert, key, caFile)
}

// mongoBackend is a TLS echo that requires a client certificate from clientCA.
func mongoBackend(t *testing.T, name string, server tls.Certificate, clientCA *testPKI) *tlsListener {
	t.Helper()
	l := newTLSListener(t, &tls.Config{Certificates: []tls.Certificate{server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.pool})
	serveTLSEcho(l, name)
	return l
}

// talk sends a line on c and returns the greeting and echo read back, or the read error.
func talk(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "ping\n"); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil {
		return greeting, err
	}
	echo, err := br.ReadString('\n')
	return strings.TrimSpace(greeting) + " | " + strings.TrimSpace(echo), err
}

func TestMutualTLSWrapsTheApplicationsPlaintextTCPForBothMongoBackends(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "mongo CA")
	serverCert, _, _ := pki.issue(t, "mymongodb.somedomain", "mymongodb.somedomain")
	_, clientCert, clientKey := pki.issue(t, "meshentry-client")
	b1 := mongoBackend(t, "mongo1", serverCert, pki)
	b2 := mongoBackend(t, "mongo2", serverCert, pki)
	h := startProxy(t, mongoYAML(b1.port(), b2.port(), clientCert, clientKey, pki.caFile), Config{}, "")

	t.Run("CONNECT tunnels reach both backends in mutual TLS with the client certificate", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 20 && len(seen) < 2; i++ {
			tunnel, status := h.connectServerFirst(t, "mymongodb.somedomain:27018")
			if status != 200 {
				t.Fatalf("CONNECT status %d", status)
			}
			got, err := talk(tunnel)
			tunnel.Close()
			if err != nil {
				t.Fatalf("through the tunnel: %q, %v", got, err)
			}
			name, rest, _ := strings.Cut(got, " ")
			if rest != "client=meshentry-client | ping" {
				t.Fatalf("backend answered %q, want its name, client=meshentry-client and the echo", got)
			}
			seen[name] = true
		}
		if !seen["mongo1"] || !seen["mongo2"] {
			t.Fatalf("backends reached: %v, want both", seen)
		}
	})

	t.Run("captured TCP to the VIP is wrapped in mutual TLS too", func(t *testing.T) {
		addr := h.serveCapture(t, "192.192.192.10:27018")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, err := talk(c)
		if err != nil || !strings.HasSuffix(got, "client=meshentry-client | ping") {
			t.Fatalf("captured connection: %q, %v", got, err)
		}
	})
	if f := h.p.Stats().TLSHandshakeFailures; f != 0 {
		t.Fatalf("TLSHandshakeFailures = %d, want 0", f)
	}
}

func TestMutualTLSRefusalsCloseTheConnectionOnEitherSide(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "mongo CA")
	other := newTestPKI(t, "another CA")
	goodServer, _, _ := pki.issue(t, "mymongodb.somedomain", "mymongodb.somedomain")
	foreignServer, _, _ := other.issue(t, "mymongodb.somedomain", "mymongodb.somedomain")
	_, goodCert, goodKey := pki.issue(t, "meshentry-client")
	_, wrongCert, wrongKey := other.issue(t, "impostor")
	tests := []struct {
		name             string
		server           tls.Certificate
		cert, key        string
		wantStatus       int
		wantOurFailure   bool
		wantBackendRefus bool
	}{
		{name: "a wrong client certificate is refused by the backend and the application gets no byte",
			server: goodServer, cert: wrongCert, key: wrongKey, wantStatus: 200, wantBackendRefus: true},
		{name: "a backend whose certificate another CA signed is refused by meshentry with 503",
			server: foreignServer, cert: goodCert, key: goodKey, wantStatus: 503, wantOurFailure: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b1 := mongoBackend(t, "mongo1", tc.server, pki)
			b2 := mongoBackend(t, "mongo2", tc.server, pki)
			h := startProxy(t, mongoYAML(b1.port(), b2.port(), tc.cert, tc.key, pki.caFile), Config{}, "")
			tunnel, status := h.connectServerFirst(t, "mymongodb.somedomain:27018")
			if status != tc.wantStatus {
				t.Fatalf("CONNECT status %d, want %d", status, tc.wantStatus)
			}
			if tunnel != nil {
				defer tunnel.Close()
				if got, err := talk(tunnel); err == nil {
					t.Fatalf("the application read %q through a refused connection", got)
				}
			}
			if tc.wantBackendRefus {
				waitFor(t, func() bool { return b1.fail.Load()+b2.fail.Load() > 0 }, "a backend to refuse the client certificate")
			}
			if got := h.p.Stats().TLSHandshakeFailures; (got > 0) != tc.wantOurFailure {
				t.Fatalf("TLSHandshakeFailures = %d, want counted: %v", got, tc.wantOurFailure)
			}
			if b1.ok.Load()+b2.ok.Load() != 0 && tc.wantOurFailure {
				t.Fatalf("a refused backend completed a handshake")
			}

			// Through capture the refusal is a closed connection.
			addr := h.serveCapture(t, "192.192.192.10:27018")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got, err := talk(c); err == nil {
				t.Fatalf("the captured application read %q through a refused connection", got)
			}
		})
	}
}
