package identity

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

// BenchmarkMutualTLSHandshake measures full ECDSA P-256 mutual TLS handshakes over loopback with
// the Source's configs on both sides (SVID verification and ID authorization included): the
// ceiling for new upstream connections per second with ISTIO_MUTUAL.
func BenchmarkMutualTLSHandshake(b *testing.B) {
	mesh, err := ca.Init(b.TempDir(), ca.InitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	load := func(sa string) *Source {
		is, err := mesh.Issue(ca.IssueOptions{Namespace: "bench", ServiceAccount: sa})
		if err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		if err := is.Write(dir); err != nil {
			b.Fatal(err)
		}
		s, err := NewSource(Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	server, client := load("server"), load("client")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	d := &net.Dialer{Timeout: 5 * time.Second}
	// Go's default key exchange is the post-quantum hybrid X25519MLKEM768; OpenSSL 3.0 (what an
	// HAProxy baseline links) negotiates X25519. Both are measured so a comparison can be fair.
	for _, kx := range []struct {
		name   string
		curves []tls.CurveID
	}{
		{name: "go default key exchange"},
		{name: "X25519 as OpenSSL 3.0", curves: []tls.CurveID{tls.X25519}},
	} {
		b.Run(kx.name, func(b *testing.B) {
			cfg := client.ClientConfig(server.Current().ID())
			cfg.CurvePreferences = kx.curves
			b.ReportAllocs()
			for range b.N {
				c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
