package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// clientHello returns the first TLS record a client sends for sni: a ClientHello the proxy
// sniffs, written on connections whose backend never answers TLS.
func clientHello(t *testing.T, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	}()
	b.SetDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	a.Close()
	<-done
	return append(hdr, body...)
}

// announcer accepts connections on ln and writes "name\n" on each, then reads until the client
// closes, so a test learns which backend a connection reached without completing any protocol.
func announcer(t *testing.T, name string, ln net.Listener) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, name+"\n")
				io.Copy(io.Discard, c)
			}()
		}
	}()
}

// reached writes first on c and returns the name the backend announced.
func reached(c net.Conn, first []byte) (string, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if len(first) > 0 {
		if _, err := c.Write(first); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no backend announced itself: %w", err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// staticEntry declares host on one port of protocol proto, served by a loopback backend port.
func l4Entry(name, host string, port uint32, proto string, backendPort int) string {
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s]
  ports: [{number: %d, name: p, protocol: %s}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: %d}}]
`, name, host, port, proto, backendPort)
}

// portOf is the TCP port a listener is bound to.
func portOf(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// example03 is the reference example 03, as written: TLS to wikipedia steered by SNI to the
// egress firewall internal-egress-firewall.ns1.svc.cluster.local.
func example03(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/validate/examples/03-external-svc-redirect.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
