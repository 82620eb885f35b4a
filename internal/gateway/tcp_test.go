package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// echoServer answers every line with "echo: " and the line, until the test ends.
func echoServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				context.AfterFunc(ctx, func() { c.Close() })
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, "echo: "+l)
				}
			}()
		}
	}()
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestGatewayTCPServers routes opaque bytes with tcp routes, in the clear and after the gateway
// terminated TLS on a TLS server.
func TestGatewayTCPServers(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	root := pki.NewCA(t, "cluster.local")
	creds := t.TempDir()
	credential(t, root, creds, "echo-cred", "echo.example.com")
	h := startGateway(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: egress}
spec:
  hosts: [echo.example.com]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - {port: {number: 9000, name: tcp, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 9443, name: tls, protocol: TLS}, hosts: [echo.example.com], tls: {mode: SIMPLE, credentialName: echo-cred}}
  - {port: {number: 9001, name: tcp-unrouted, protocol: TCP}, hosts: ["*"]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: egress}
spec:
  hosts: [echo.example.com]
  gateways: [istio-system/egressgateway]
  tcp:
  - match: [{port: 9000}, {port: 9443}]
    route: [{destination: {host: echo.example.com, port: {number: 9000}}}]
`, echo), "", func(c *Config) { c.Credentials = NewCredentials(creds, nil) })
	roots := x509.NewCertPool()
	roots.AddCert(root.Root)
	talk := func(t *testing.T, c net.Conn) (string, error) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "hello\n"); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	t.Run("a TCP server pipes to the tcp route's destination", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", h.addrs[9000].String())
		must(t, err)
		if got, err := talk(t, c); got != "echo: hello\n" {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("a TLS server in SIMPLE mode terminates, then pipes by the tcp route", func(t *testing.T) {
		t.Parallel()
		c, err := tls.Dial("tcp", h.addrs[9443].String(), &tls.Config{RootCAs: roots, ServerName: "echo.example.com"})
		must(t, err)
		if got, err := talk(t, c); got != "echo: hello\n" {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("a TCP port no route takes closes the connection", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", h.addrs[9001].String())
		must(t, err)
		if got, err := talk(t, c); err == nil {
			t.Errorf("got %q from a port no route takes", got)
		}
	})
}

// TestGatewayAutoPassthroughTakesTheSubsetItsSNINames sends AUTO_PASSTHROUGH connections whose
// SNI names subset v2 and sees each reach the v2 endpoint, the only one whose CA the client trusts.
func TestGatewayAutoPassthroughTakesTheSubsetItsSNINames(t *testing.T) {
	t.Parallel()
	v1CA, v2CA := backend.NewCA(t), backend.NewCA(t)
	sniV1, sniV2 := "outbound_.443_.v1_.tls.example.com", "outbound_.443_.v2_.tls.example.com"
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		return ln
	}
	v1 := backend.TLS(t, "v1", listen(), v1CA, sniV1, sniV2)
	v2 := backend.TLS(t, "v2", listen(), v2CA, sniV1, sniV2)
	h := startGateway(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: egress}
spec:
  hosts: [tls.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {tls: %d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {tls: %d}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls, namespace: egress}
spec:
  host: tls.example.com
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - {port: {number: 15443, name: tls, protocol: TLS}, hosts: ["*.example.com"], tls: {mode: AUTO_PASSTHROUGH}}
`, v1.Port(), v2.Port()), "", nil)
	for i := range 6 {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", h.addrs[15443].String(),
			backend.TLSClient(v2CA, sniV2))
		if err != nil {
			t.Fatalf("connection %d did not reach subset v2: %v", i, err)
		}
		c.Close()
	}
}
