package proxy

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// An IP literal smuggled into a host name ("[::ffff:127.0.0.1%.bar.com]") ended in a declared
// wildcard's suffix, so the wildcard NONE entries of examples 05 and 03 matched it and the proxy
// dialled the literal: any address was reachable on a declared port. Here the "secret" backend
// listens on loopback where only names may lead, and must see no connection from the proxy.
func TestIPLiteralsSmuggledIntoHostsReachNothing(t *testing.T) {
	t.Parallel()
	secret := backend.HTTP(t, "secret", "127.0.0.1:0")
	tunnelled := countingListener(t)
	dns := dnstest.Start(t)
	dns.Set("www.bar.com", 30, "127.0.0.1")
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: external-svc-wildcard-example}
spec:
  hosts: ["*.bar.com"]
  ports: [{number: %d, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: external-svc-redirect}
spec:
  hosts: [wikipedia.org, "*.wikipedia.org"]
  ports: [{number: %d, name: https, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: any-db}
spec:
  hosts: ["*.db.internal"]
  ports: [{number: %d, name: tcp, protocol: TCP}]
  resolution: NONE
`, secret.Port(), tunnelled.port(), tunnelled.port()), Config{}, dns.Addr)
	p := secret.Port()
	httpCases := []struct {
		name string
		req  string
	}{
		{name: "refuses a zone ID in an absolute-form target", req: fmt.Sprintf("GET http://[::ffff:127.0.0.1%%.bar.com]:%d/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)},
		{name: "refuses a zone ID in an origin-form Host", req: fmt.Sprintf("GET / HTTP/1.1\r\nHost: [::ffff:127.0.0.1%%.bar.com]:%d\r\nConnection: close\r\n\r\n", p)},
		{name: "refuses a percent-encoded zone ID", req: fmt.Sprintf("GET http://[::ffff:127.0.0.1%%25.bar.com]:%d/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)},
		{name: "refuses a bare IPv4 address the wildcard does not declare", req: fmt.Sprintf("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", p)},
	}
	for _, tc := range httpCases {
		t.Run(tc.name, func(t *testing.T) {
			raw := rawRequest(t, h.addr, tc.req)
			if strings.HasPrefix(raw, "HTTP/1.1 200") || strings.Contains(raw, "secret ") {
				t.Fatalf("the proxy forwarded it to the literal's address: %q", raw)
			}
		})
	}
	connectCases := []struct {
		name      string
		authority string
	}{
		{name: "refuses a CONNECT with a zone ID under a wildcard TLS host", authority: fmt.Sprintf("[::ffff:127.0.0.1%%.wikipedia.org]:%d", tunnelled.port())},
		{name: "refuses a CONNECT to an IP literal that an address-less NONE entry only matched by port", authority: fmt.Sprintf("127.0.0.1:%d", tunnelled.port())},
	}
	for _, tc := range connectCases {
		t.Run(tc.name, func(t *testing.T) {
			if c, status := h.connect(t, tc.authority); status == 200 {
				c.Close()
				t.Fatalf("CONNECT %s was tunnelled", tc.authority)
			}
		})
	}
	t.Run("still forwards a name under the wildcard to its resolved address", func(t *testing.T) {
		status, body, _ := get(t, h.client(nil), fmt.Sprintf("http://www.bar.com:%d/ok", p))
		if status != 200 || body != fmt.Sprintf("secret www.bar.com:%d /ok", p) {
			t.Fatalf("got %d %q", status, body)
		}
	})
	if n := tunnelled.accepted(0); n != 0 {
		t.Fatalf("the tunnel target accepted %d connections, want 0", n)
	}
}

// A single-IP VIP of a NONE entry is an address the registry declares: a client may name it.
func TestADeclaredVIPIsReachableByItsAddress(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "vip", "127.0.0.1:0")
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vip}
spec:
  hosts: [vip.internal]
  addresses: [127.0.0.1]
  ports: [{number: %d, name: http, protocol: HTTP}]
  resolution: NONE
`, be.Port()), Config{}, "")
	status, body, _ := get(t, h.client(nil), fmt.Sprintf("http://127.0.0.1:%d/v", be.Port()))
	if status != 200 || !strings.HasPrefix(body, "vip ") {
		t.Fatalf("got %d %q", status, body)
	}
	if tunnel, status := h.connect(t, fmt.Sprintf("127.0.0.1:%d", be.Port())); status != 200 {
		t.Fatalf("CONNECT to the declared VIP: status %d", status)
	} else {
		tunnel.Close()
	}
}

// acceptCounter is a TCP listener that counts and closes what it accepts.
type acceptCounter struct {
	ln net.Listener
	n  chan struct{}
}

func countingListener(t *testing.T) *acceptCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptCounter{ln: ln, n: make(chan struct{}, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			a.n <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return a
}

func (a *acceptCounter) port() int { return a.ln.Addr().(*net.TCPAddr).Port }

// accepted waits until want connections have been accepted, or a moment longer when want is
// reached early, and returns the count: accepts land asynchronously after the dial returned.
func (a *acceptCounter) accepted(want int) int {
	deadline := time.Now().Add(2 * time.Second)
	for len(a.n) < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	return len(a.n)
}

// Under ALLOW_ANY an IP literal may be reached, but an authority with a zone ID names no
// destination at all and is refused as a bad request, whatever the policy.
func TestAuthoritiesWithAZoneIDAreRefusedUnderAllowAny(t *testing.T) {
	t.Parallel()
	secret := backend.HTTP(t, "secret", "127.0.0.1:0")
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: unrelated}
spec:
  hosts: [unrelated.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`, Config{AllowAny: true}, "")
	p := secret.Port()
	tests := []struct {
		name string
		req  string
	}{
		{name: "answers 400 to a zone ID in an absolute-form target", req: fmt.Sprintf("GET http://[::ffff:127.0.0.1%%.bar.com]:%d/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)},
		{name: "answers 400 to a zone ID in an origin-form Host", req: fmt.Sprintf("GET / HTTP/1.1\r\nHost: [::ffff:127.0.0.1%%25eth0]:%d\r\nConnection: close\r\n\r\n", p)},
		{name: "answers 400 to a CONNECT with a zone ID", req: fmt.Sprintf("CONNECT [::ffff:127.0.0.1%%lo]:%d HTTP/1.1\r\nHost: x\r\n\r\n", p)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := rawRequest(t, h.addr, tc.req)
			if !strings.HasPrefix(raw, "HTTP/1.1 400") {
				t.Fatalf("got %q", raw)
			}
		})
	}
	t.Run("still passes a plain IP literal through", func(t *testing.T) {
		raw := rawRequest(t, h.addr, fmt.Sprintf("GET http://127.0.0.1:%d/plain HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", p))
		if !strings.HasPrefix(raw, "HTTP/1.1 200") || !strings.HasSuffix(raw, "/plain") {
			t.Fatalf("got %q", raw)
		}
	})
}
