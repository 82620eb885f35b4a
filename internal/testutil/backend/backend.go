// Package backend starts real upstream servers for proxy tests: HTTP over TCP or a Unix socket,
// and TLS servers with certificates for several names, signed by a CA the test generates.
package backend

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Echo answers every request with "NAME HOST PATH" so a test sees which backend served it and
// which Host it received; the X-Request-Id it got comes back in a header of the same name. A
// "delay" query parameter (a Go duration) holds the answer back, for requests in flight.
func Echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil && d > 0 && d < time.Minute {
			time.Sleep(d)
		}
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
		fmt.Fprintf(w, "%s %s %s", name, r.Host, r.URL.RequestURI())
	})
}

// Server is a running backend.
type Server struct {
	Name string
	// Addr is "ip:port" for TCP backends and the socket path for unix ones.
	Addr string
	ln   net.Listener
	srv  *http.Server
}

// Port is the TCP port the backend listens on.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Stop closes the backend now, so that connecting to it fails.
func (s *Server) Stop() {
	s.srv.Close()
	s.ln.Close()
}

// Serve runs an HTTP echo backend on ln (TCP, unix, or a TLS listener) until the test ends.
func Serve(tb testing.TB, name string, ln net.Listener) *Server {
	tb.Helper()
	s := &Server{Name: name, Addr: ln.Addr().String(), ln: ln, srv: &http.Server{Handler: Echo(name), ReadHeaderTimeout: 5 * time.Second}}
	go s.srv.Serve(ln)
	tb.Cleanup(s.Stop)
	return s
}

// HTTP starts an HTTP echo backend on addr ("127.0.0.1:0" for any port).
func HTTP(tb testing.TB, name, addr string) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	return Serve(tb, name, ln)
}

// Unix starts an HTTP echo backend on a unix socket at path.
func Unix(tb testing.TB, name, path string) *Server {
	tb.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	return Serve(tb, name, ln)
}

// CA is a throwaway certificate authority.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool
}

// NewCA makes a CA whose pool clients trust.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "meshentry test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, Pool: pool}
}

// Leaf issues a server certificate for the given DNS names.
func (ca *CA) Leaf(tb testing.TB, names ...string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TLS starts one HTTPS echo backend on ln that holds a separate certificate per name and picks it by
// SNI, as a virtual-hosting server does; the echo body names the SNI it saw.
func TLS(tb testing.TB, name string, ln net.Listener, ca *CA, names ...string) *Server {
	tb.Helper()
	certs := map[string]*tls.Certificate{}
	for _, n := range names {
		c := ca.Leaf(tb, n)
		certs[n] = &c
	}
	cfg := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c, ok := certs[h.ServerName]; ok {
			return c, nil
		}
		return nil, fmt.Errorf("no certificate for %q", h.ServerName)
	}}
	return Serve(tb, name, tls.NewListener(ln, cfg))
}

// TLSClient is an HTTPS client config that trusts ca and sends serverName as SNI.
func TLSClient(ca *CA, serverName string) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool, ServerName: serverName}
}
