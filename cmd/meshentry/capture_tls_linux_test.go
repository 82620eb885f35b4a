package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity/ca"
	"github.com/meshentry/meshentry/internal/testutil/netns"
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// readableIdentity issues default/SA (with DNS names) from c into a directory the captured proxy's
// UID can read, and returns the directory.
func readableIdentity(t *testing.T, c *ca.CA, sa string, dns ...string) string {
	t.Helper()
	is, err := c.Issue(ca.IssueOptions{Namespace: "default", ServiceAccount: sa, DNSNames: dns})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "meshentry-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := is.Write(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	for _, f := range []string{"cert-chain.pem", "key.pem", "root-cert.pem"} {
		os.Chmod(filepath.Join(dir, f), 0o644)
	}
	return dir
}

// mutualEcho listens in ns as a TLS echo that presents the identity in dir, requires a client
// certificate from clientRoot, and greets with its name and the client's SPIFFE ID; refused counts
// the handshakes it refused.
func mutualEcho(t *testing.T, ns *netns.Namespace, name, dir string, clientRoot *x509.Certificate, refused *atomic.Int64) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert-chain.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(clientRoot)
	ln := ns.MustListen("127.0.0.1:0")
	t.Cleanup(func() { ln.Close() })
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tc.Handshake(); err != nil {
					refused.Add(1)
					return
				}
				peer := tc.ConnectionState().PeerCertificates[0]
				fmt.Fprintf(tc, "%s client=%s\n", name, peer.URIs[0])
				io.Copy(tc, tc)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestCapturedTCPIsWrappedInMutualTLS is example 02 under real capture: the application's
// plaintext TCP to the MongoDB VIP is redirected by iptables to meshentry, which wraps it in mutual
// TLS with the DestinationRule's certificate files to two backends.
func TestCapturedTCPIsWrappedInMutualTLS(t *testing.T) {
	ns := netns.New(t, "10.216.0.10/24", "10.216.0.200/24")
	c, other := pki.NewCA(t, "cluster.local"), pki.NewCA(t, "cluster.local")
	server := readableIdentity(t, c, "mongo", "mymongodb.somedomain")
	foreignServer := readableIdentity(t, other, "mongo", "mymongodb.somedomain")
	client := readableIdentity(t, c, "app")
	var refused atomic.Int64
	p1 := mutualEcho(t, ns, "mongo1", server, c.Root, &refused)
	p2 := mutualEcho(t, ns, "mongo2", server, c.Root, &refused)
	pForeign := mutualEcho(t, ns, "foreign", foreignServer, c.Root, &refused)
	config := mongoEntry("mymongodb", "10.216.0.0/26", client, server, p1, p2) + mongoEntry("foreign", "10.216.0.192/26", client, server, pForeign)
	startCaptured(t, ns, "10.216.0.0/24", config)

	t.Run("both backends receive the plaintext wrapped in mutual TLS with the rule's client certificate", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 20 && len(seen) < 2; i++ {
			got, err := nsTalk(ns, "10.216.0.10:27018")
			name, rest, _ := strings.Cut(got, " ")
			if err != nil || rest != "client=spiffe://cluster.local/ns/default/sa/app | ping" {
				t.Fatalf("got %q, %v", got, err)
			}
			seen[name] = true
		}
		if !seen["mongo1"] || !seen["mongo2"] {
			t.Fatalf("backends reached: %v, want both", seen)
		}
	})
	t.Run("a backend whose certificate another CA signed is refused by meshentry: the connection closes", func(t *testing.T) {
		before := refused.Load()
		got, err := nsTalk(ns, "10.216.0.200:27018")
		if err == nil || strings.Contains(err.Error(), "netns") {
			t.Fatalf("read %q, %v: want the proxy to close a connection to a refused backend", got, err)
		}
		// The backend saw meshentry hang up on its certificate.
		deadline := time.Now().Add(5 * time.Second)
		for refused.Load() == before {
			if time.Now().After(deadline) {
				t.Fatal("the foreign backend saw no refused handshake; was it reached at all?")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// mongoEntry is example 02's ServiceEntry for NAME.somedomain at cidr with endpoints on ports of
// 127.0.0.1, and a DestinationRule setting MUTUAL with the identity files in client (certificate and
// key) and server (the CA).
func mongoEntry(name, cidr, client, server string, ports ...string) string {
	eps := ""
	for _, p := range ports {
		eps += fmt.Sprintf("  - {address: 127.0.0.1, ports: {mongodb: %s}}\n", p)
	}
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s.somedomain]
  addresses: [%s]
  ports: [{number: 27018, name: mongodb, protocol: MONGO}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
%s---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s}
spec:
  host: %s.somedomain
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: %s/cert-chain.pem
      privateKey: %s/key.pem
      caCertificates: %s/root-cert.pem
`, name, name, cidr, eps, name, name, client, client, server)
}

// nsTalk sends a line to addr from inside ns and returns the greeting and echo read back.
func nsTalk(ns *netns.Namespace, addr string) (string, error) {
	conn, err := ns.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "ping\n")
	br := bufio.NewReader(conn)
	greeting, err := br.ReadString('\n')
	if err != nil {
		return greeting, err
	}
	echo, err := br.ReadString('\n')
	return strings.TrimSpace(greeting) + " | " + strings.TrimSpace(echo), err
}
