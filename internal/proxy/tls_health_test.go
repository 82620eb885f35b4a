package proxy

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTLSHandshakeFailuresCountAsConnectFailuresOfTheEndpoint(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "trusted CA")
	other := newTestPKI(t, "other CA")
	foreign, _, _ := other.issue(t, "api.example.test", "api.example.test")
	be := newTLSListener(t, &tls.Config{Certificates: []tls.Certificate{foreign}})
	serveHTTP(t, be, "api", true)
	h := startProxy(t, originationYAML(be.port(), "        mode: SIMPLE\n        caCertificates: "+pki.caFile+"\n"), Config{}, "")
	const requests = 3
	for i := 0; i < requests; i++ {
		if status, body, _ := get(t, h.client(nil), "http://api.example.test/"); status != 503 {
			t.Fatalf("status %d (%q), want 503", status, body)
		}
	}
	var fails uint64
	failing := false
	for _, c := range h.p.Clusters() {
		if c.Name != "outbound|80||api.example.test" {
			continue
		}
		for _, ep := range c.Endpoints {
			fails += ep.Counts.CxConnectFail
			failing = failing || ep.Failing
		}
	}
	if fails < requests || !failing {
		t.Fatalf("the endpoint has %d connect failures (failing %v) after %d refused handshakes; want them counted against it", fails, failing, requests)
	}
	if got := h.p.Stats().TLSHandshakeFailures; got < requests {
		t.Fatalf("TLSHandshakeFailures = %d, want at least %d", got, requests)
	}
}

func TestTLSHandshakeIsBoundedByTheConnectTimeout(t *testing.T) {
	t.Parallel()
	// A server that accepts and never answers the ClientHello.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	held := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		for len(held) > 0 {
			(<-held).Close()
		}
	})
	pki := newTestPKI(t, "CA")
	h := startProxy(t, originationYAML(ln.Addr().(*net.TCPAddr).Port, "        mode: SIMPLE\n        caCertificates: "+pki.caFile+"\n"),
		Config{ConnectTimeout: 300 * time.Millisecond, MaxAttempts: 1}, "")
	start := time.Now()
	status, _, resp := get(t, h.client(nil), "http://api.example.test/")
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("the request took %v; the handshake should end at the 300 ms connect timeout", took)
	}
	reason := resp.Header.Get("X-Meshentry-Reason")
	if status != 503 || !strings.Contains(reason, "TLS (SIMPLE) handshake") {
		t.Fatalf("status %d, reason %q; want 503 naming the TLS handshake", status, reason)
	}
	if got := h.p.Stats().TLSHandshakeFailures; got != 1 {
		t.Fatalf("TLSHandshakeFailures = %d, want 1", got)
	}
}
