package httpfwd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"testing"
)

// BenchmarkForwardTLS measures TLS origination: plain HTTP in, a pooled TLS connection out, as
// with a DestinationRule SIMPLE. The backend is benchBackend behind a TLS listener.
func BenchmarkForwardTLS(b *testing.B) {
	certSrv := httptest.NewUnstartedServer(nil)
	certSrv.StartTLS()
	cert := certSrv.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(certSrv.Certificate())
	certSrv.Close()

	plain := benchBackend(b)
	ln := tls.NewListener(listen(b), &tls.Config{Certificates: []tls.Certificate{cert}})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", plain)
				if err != nil {
					return
				}
				defer u.Close()
				go copyAndClose(u, c)
				copyAndClose(c, u)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()
	cfg := &tls.Config{RootCAs: roots, ServerName: "example.com", ClientSessionCache: tls.NewLRUClientSessionCache(64)}
	dial := func(ctx context.Context) (net.Conn, error) {
		var d tls.Dialer
		d.Config = cfg
		return d.DialContext(ctx, "tcp", addr)
	}
	up := Upstream{Addr: addr, Key: "tls|" + addr, Dial: dial}
	router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) { return up, nil })
	proxy := startProxy(b, &Server{Router: router})
	for _, r := range benchRequests[:1] {
		b.Run(r.name, func(b *testing.B) { runClients(b, proxy, r.raw) })
	}
}

// copyAndClose copies src to dst until either fails, then closes dst.
func copyAndClose(dst, src net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
}
