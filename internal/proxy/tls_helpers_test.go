package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPKI is a throwaway CA that issues server and client certificates and writes them as PEM
// files, as a DestinationRule names them.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	dir  string
	// caFile is the CA certificate in PEM, for caCertificates.
	caFile string
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	k := &testPKI{cert: cert, key: key, pool: pool, dir: t.TempDir()}
	k.caFile = filepath.Join(k.dir, "ca.pem")
	writePEM(t, k.caFile, "CERTIFICATE", der)
	return k
}

// issue makes a leaf for cn with the given DNS SANs, for server and client use, and writes it as
// NAME.pem and NAME-key.pem; it returns the certificate and both paths.
func (k *testPKI) issue(t *testing.T, cn string, dns ...string) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.cert, &key.PublicKey, k.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(k.dir, cn+".pem"), filepath.Join(k.dir, cn+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kb)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// stateConn is an accepted TLS connection with its handshake's state. It is not a *tls.Conn, so
// net/http serves HTTP/1.1 on it whatever ALPN was negotiated ("istio" would make it hang up).
type stateConn struct {
	net.Conn
	state tls.ConnectionState
}

type stateKey struct{}

// tlsListener is a TLS listener that counts the handshakes it completed and refused; Accept
// returns only connections whose handshake succeeded.
type tlsListener struct {
	inner    net.Listener
	cfg      *tls.Config
	conns    chan net.Conn
	done     chan struct{}
	once     sync.Once
	ok, fail atomic.Int64
}

// newTLSListener listens on loopback with cfg; the listener closes when the test ends.
func newTLSListener(t *testing.T, cfg *tls.Config) *tlsListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &tlsListener{inner: ln, cfg: cfg, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.run()
	t.Cleanup(func() { l.Close() })
	return l
}

func (l *tlsListener) run() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			return
		}
		go func() {
			tc := tls.Server(c, l.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tc.HandshakeContext(ctx); err != nil {
				l.fail.Add(1)
				c.Close()
				return
			}
			l.ok.Add(1)
			select {
			case l.conns <- &stateConn{Conn: tc, state: tc.ConnectionState()}:
			case <-l.done:
				tc.Close()
			}
		}()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.inner.Close()
}

func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// port is the listener's port.
func (l *tlsListener) port() int { return l.inner.Addr().(*net.TCPAddr).Port }

// serveHTTP serves on l (TLS or not) an HTTP handler that answers "name sni=SNI client=CLIENT-CN alpn=PROTO".
func serveHTTP(t *testing.T, l net.Listener, name string, keepAlive bool) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := "none"
		st, _ := r.Context().Value(stateKey{}).(*tls.ConnectionState)
		if st != nil && len(st.PeerCertificates) > 0 {
			c := st.PeerCertificates[0]
			client = c.Subject.CommonName
			if len(c.URIs) > 0 {
				client = c.URIs[0].String()
			}
		}
		sni, alpn := "", ""
		if st != nil {
			sni, alpn = st.ServerName, st.NegotiatedProtocol
		}
		fmt.Fprintf(w, "%s sni=%s client=%s alpn=%s", name, sni, client, alpn)
	}), ReadHeaderTimeout: 5 * time.Second, ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		if sc, ok := c.(*stateConn); ok {
			return context.WithValue(ctx, stateKey{}, &sc.state)
		}
		return ctx
	}}
	srv.SetKeepAlivesEnabled(keepAlive)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// serveTLSEcho serves on l a byte echo that first writes "name client=CN\n".
func serveTLSEcho(l *tlsListener, name string) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				cs := c.(*stateConn).state
				cn := "none"
				if len(cs.PeerCertificates) > 0 {
					cn = cs.PeerCertificates[0].Subject.CommonName
				}
				fmt.Fprintf(c, "%s client=%s\n", name, cn)
				io.Copy(c, c)
			}()
		}
	}()
}
