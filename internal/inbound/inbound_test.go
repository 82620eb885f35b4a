package inbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"github.com/meshentry/meshentry/internal/testutil/pki"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

const (
	serverID = "spiffe://cluster.local/ns/shop/sa/httpbin"
	clientID = "spiffe://cluster.local/ns/shop/sa/sleep"
)

// mesh is a trust domain with a server identity (the inbound listener's) and a client one.
type mesh struct {
	ca                   *ca.CA
	serverDir, clientDir string
}

func newMesh(t *testing.T) mesh {
	t.Helper()
	c := pki.NewCA(t, "cluster.local")
	return mesh{ca: c, serverDir: pki.Issue(t, c, "", "shop", "httpbin", ca.IssueOptions{}),
		clientDir: pki.Issue(t, c, "", "shop", "sleep", ca.IssueOptions{})}
}

// clientConfig is what an outbound meshentry uses for ISTIO_MUTUAL, offering alpn.
func (m mesh) clientConfig(t *testing.T, alpn ...string) *tls.Config {
	cfg := source(t, m.clientDir).ClientConfig()
	cfg.NextProtos = alpn
	return cfg
}

func TestInboundForwardsHTTPWithTheCallersIdentity(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	be := startXFCCBackend(t)
	_, addr := startInbound(t, Config{Target: be.addr, Identity: source(t, m.serverDir)})
	element := fmt.Sprintf(`By=%s;Hash=%s;Subject="";URI=%s`, serverID, leafHash(t, m.clientDir), clientID)

	tests := []struct {
		name     string
		alpn     []string
		header   string // fields the client adds
		wantALPN string // checked when set
		want     string
	}{
		{name: "sets XFCC for an Istio client whose ALPN does not say HTTP (sniffed)",
			alpn: []string{"istio-peer-exchange", "istio"}, want: element},
		{name: "sets XFCC for a client that negotiated http/1.1", alpn: []string{"http/1.1"}, want: element},
		{name: "prefers http/1.1 for a client that offers h2 as well", alpn: []string{"h2", "http/1.1"}, wantALPN: "http/1.1", want: element},
		{name: "sets XFCC for a client that offered no ALPN at all", want: element},
		{name: "appends its element to the XFCC the client sent, as APPEND_FORWARD does",
			alpn: []string{"istio"}, header: "X-Forwarded-Client-Cert: By=spiffe://a/b;URI=spiffe://a/c\r\n",
			want: "By=spiffe://a/b;URI=spiffe://a/c," + element},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := dialTLS(t, addr, m.clientConfig(t, tt.alpn...))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ConnectionState().NegotiatedProtocol; tt.wantALPN != "" && got != tt.wantALPN {
				t.Errorf("negotiated %q, want %q", got, tt.wantALPN)
			}
			br := bufio.NewReader(c)
			for i := range 2 { // the second request proves the connection is kept alive
				got, err := get(t, c, br, tt.header)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if got != tt.want {
					t.Errorf("request %d: backend saw x-forwarded-client-cert\n %q\nwant\n %q", i, got, tt.want)
				}
			}
		})
	}
	for _, h2 := range []struct{ name, alpn string }{
		{name: "sets XFCC for an HTTP/2 client that negotiated h2", alpn: "h2"},
		{name: "sets XFCC for an HTTP/2 client whose ALPN does not say HTTP (sniffed preface)", alpn: "istio"},
	} {
		t.Run(h2.name, func(t *testing.T) {
			t.Parallel()
			cfg := m.clientConfig(t, h2.alpn)
			tr := &http2.Transport{DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
				d := &tls.Dialer{Config: cfg}
				return d.DialContext(ctx, network, addr)
			}}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://httpbin.test/headers")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.ProtoMajor != 2 || string(b) != element {
				t.Errorf("got %s with x-forwarded-client-cert %q, want HTTP/2 with %q", resp.Proto, b, element)
			}
			if got := resp.Header.Get("X-Seen-Proto"); got != "HTTP/2.0" {
				t.Errorf("the target got %s, want the client's HTTP/2 (over h2c)", got)
			}
		})
	}
}

func TestInboundRefusesClientsOutsideTheTrustBundleAtTheHandshake(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	be := startXFCCBackend(t)
	srv, addr := startInbound(t, Config{Target: be.addr, Identity: source(t, m.serverDir)})
	other := pki.NewCA(t, "cluster.local") // the same trust domain name, another root
	tests := []struct {
		name     string
		certs    func() []tls.Certificate
		verified bool // the refusal is the identity check's, not a missing certificate
	}{
		{name: "refuses a client without a certificate", certs: func() []tls.Certificate { return nil }},
		{name: "refuses a client whose certificate another CA signed", verified: true, certs: func() []tls.Certificate {
			return []tls.Certificate{rawCert(t, pki.Issue(t, other, "", "shop", "sleep", ca.IssueOptions{}))}
		}},
		{name: "refuses a client whose certificate expired", verified: true, certs: func() []tls.Certificate {
			old := ca.IssueOptions{Now: time.Now().Add(-3 * time.Hour), TTL: time.Hour}
			return []tls.Certificate{rawCert(t, pki.Issue(t, m.ca, "", "shop", "sleep", old))}
		}},
	}
	for _, tt := range tests { // not parallel: each reads the counters' change
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Stats()
			// The client side does not verify: the point is what the server accepts.
			cfg := &tls.Config{InsecureSkipVerify: true, Certificates: tt.certs(), NextProtos: []string{"istio"}}
			c, err := dialTLS(t, addr, cfg)
			if err == nil {
				// Under TLS 1.3 the client finishes first; the server's alert arrives on read.
				_, err = get(t, c, bufio.NewReader(c), "")
			}
			if err == nil {
				t.Fatal("the request went through; want the handshake refused")
			}
			waitFor(t, "the server to count the refusal", func() bool {
				return srv.Stats().HandshakeFailures == before.HandshakeFailures+1
			})
			if got := srv.Stats().PeerRefused - before.PeerRefused; tt.verified && got != 1 {
				t.Errorf("PeerRefused grew by %d, want 1", got)
			}
		})
	}
	if n := be.requests.Load(); n != 0 {
		t.Errorf("the backend saw %d requests from refused clients", n)
	}
}

// tcpBackend accepts one connection at a time and runs fn on it.
func tcpBackend(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fn(c)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestInboundPipesOtherTCPBothWays(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	tests := []struct {
		name    string
		backend func(net.Conn)
		send    string
		want    string
	}{
		{name: "pipes a client-first binary protocol both ways, half-close included",
			backend: func(c net.Conn) {
				b, _ := io.ReadAll(c) // until the client's half-close arrives
				io.WriteString(c, "echo:"+string(b))
			},
			send: "\x00\x01\x02mongo\xff", want: "echo:\x00\x01\x02mongo\xff"},
		{name: "pipes a server-first protocol whose client waits for a banner",
			backend: func(c net.Conn) { io.WriteString(c, "220 smtp.test ESMTP\r\n") },
			want:    "220 smtp.test ESMTP\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, addr := startInbound(t, Config{Target: tcpBackend(t, tt.backend), Identity: source(t, m.serverDir)})
			c, err := dialTLS(t, addr, m.clientConfig(t, "istio-peer-exchange", "istio"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.send != "" {
				io.WriteString(c, tt.send)
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v (got %q)", err, got)
			}
			if string(got) != tt.want {
				t.Errorf("client read %q, want %q", got, tt.want)
			}
			if st := srv.Stats(); st.TCPConns != 1 || st.HTTPConns != 0 {
				t.Errorf("stats %+v, want one piped connection and no HTTP one", st)
			}
		})
	}
}

func TestInboundPicksUpRotatedIdentityForNewConnections(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	be := startXFCCBackend(t)
	src := source(t, m.serverDir)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	_, addr := startInbound(t, Config{Target: be.addr, Identity: src})

	oldConn, err := dialTLS(t, addr, m.clientConfig(t, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	oldBR := bufio.NewReader(oldConn)
	if got, err := get(t, oldConn, oldBR, ""); err != nil || !strings.HasPrefix(got, "By="+serverID+";") {
		t.Fatalf("before rotation: %q, %v", got, err)
	}
	// The server's files are replaced by another identity, as a CA agent rotating them would.
	const newServerID = "spiffe://cluster.local/ns/shop/sa/httpbin-v2"
	pki.Issue(t, m.ca, m.serverDir, "shop", "httpbin-v2", ca.IssueOptions{})
	var got string
	waitFor(t, "a new connection to present the rotated certificate", func() bool {
		c, err := dialTLS(t, addr, m.clientConfig(t, "http/1.1"))
		if err != nil {
			return false
		}
		defer c.Close()
		if len(c.ConnectionState().PeerCertificates) == 0 || c.ConnectionState().PeerCertificates[0].URIs[0].String() != newServerID {
			return false
		}
		got, err = get(t, c, bufio.NewReader(c), "")
		return err == nil
	})
	if !strings.HasPrefix(got, "By="+newServerID+";") {
		t.Errorf("after rotation XFCC is %q, want By=%s", got, newServerID)
	}
	// The connection made before keeps its certificate and goes on serving.
	if oldID := oldConn.ConnectionState().PeerCertificates[0].URIs[0].String(); oldID != serverID {
		t.Errorf("the old connection's server certificate changed to %s", oldID)
	}
	if _, err := get(t, oldConn, oldBR, ""); err != nil {
		t.Errorf("the connection made before the rotation failed: %v", err)
	}
}
