package sniff

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// captureClientHello returns the first flight crypto/tls sends as a client with cfg: the TLS record
// carrying its ClientHello, exactly as it would reach a capturing proxy.
func captureClientHello(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The handshake fails once the pipe closes; only the bytes it wrote matter.
		_ = tls.Client(client, cfg).Handshake()
		client.Close()
	}()
	defer func() {
		server.Close()
		<-done
	}()
	var hdr [recordHeaderLen]byte
	if _, err := io.ReadFull(server, hdr[:]); err != nil {
		tb.Fatalf("read record header: %v", err)
	}
	rec := make([]byte, recordHeaderLen+(int(hdr[3])<<8|int(hdr[4])))
	copy(rec, hdr[:])
	if _, err := io.ReadFull(server, rec[recordHeaderLen:]); err != nil {
		tb.Fatalf("read record payload: %v", err)
	}
	return rec
}

// serverView returns what crypto/tls as a server sees in hello, to check ParseClientHello against.
func serverView(tb testing.TB, hello []byte) *tls.ClientHelloInfo {
	tb.Helper()
	client, server := net.Pipe()
	go func() {
		_, _ = client.Write(hello)
		// Unblock the server, which waits for more once it has read the ClientHello.
		client.Close()
	}()
	defer server.Close()
	var seen *tls.ClientHelloInfo
	cfg := &tls.Config{GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		seen = chi
		return nil, io.EOF
	}}
	_ = tls.Server(server, cfg).Handshake()
	if seen == nil {
		tb.Fatal("crypto/tls did not accept the ClientHello")
	}
	return seen
}

// handshakeRecords frames a handshake message into records of at most size payload bytes each.
func handshakeRecords(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// refragment returns a single-record ClientHello split into records of at most size bytes.
func refragment(tb testing.TB, rec []byte, size int) []byte {
	tb.Helper()
	msg, err := handshakeMessage(rec)
	if err != nil {
		tb.Fatalf("handshakeMessage: %v", err)
	}
	return handshakeRecords(msg, size)
}

// ext is a raw TLS extension for building ClientHellos the tests need and crypto/tls would not send.
type ext struct {
	typ  uint16
	data []byte
}

// helloSpec describes a synthetic ClientHello; zero fields give a minimal valid one.
type helloSpec struct {
	sessionID    []byte
	suites       []byte
	compression  []byte
	noExtensions bool
	exts         []ext
	rawExts      []byte // appended to the extensions block as is, for broken extension framing
	trailing     []byte
}

// body returns the ClientHello body (without the handshake header).
func (s helloSpec) body() []byte {
	b := []byte{3, 3}
	b = append(b, make([]byte, randomLen)...)
	b = append(b, byte(len(s.sessionID)))
	b = append(b, s.sessionID...)
	suites := s.suites
	if suites == nil {
		suites = []byte{0x13, 0x01}
	}
	b = append(b, byte(len(suites)>>8), byte(len(suites)))
	b = append(b, suites...)
	comp := s.compression
	if comp == nil {
		comp = []byte{0}
	}
	b = append(b, byte(len(comp)))
	b = append(b, comp...)
	if !s.noExtensions {
		var e []byte
		for _, x := range s.exts {
			e = append(e, byte(x.typ>>8), byte(x.typ), byte(len(x.data)>>8), byte(len(x.data)))
			e = append(e, x.data...)
		}
		e = append(e, s.rawExts...)
		b = append(b, byte(len(e)>>8), byte(len(e)))
		b = append(b, e...)
	}
	return append(b, s.trailing...)
}

// message returns the handshake message: header and body.
func (s helloSpec) message() []byte {
	body := s.body()
	n := len(body)
	return append([]byte{handshakeClientHello, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// record returns the ClientHello in as few records as the record size limit allows.
func (s helloSpec) record() []byte { return handshakeRecords(s.message(), maxRecordLen) }

// sniExt builds a server_name extension holding the given (name_type, name) entries.
func sniExt(entries ...sniEntry) ext {
	var list []byte
	for _, e := range entries {
		list = append(list, e.typ, byte(len(e.name)>>8), byte(len(e.name)))
		list = append(list, e.name...)
	}
	return ext{typ: extServerName, data: append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)}
}

type sniEntry struct {
	typ  byte
	name string
}

func hostName(name string) sniEntry { return sniEntry{typ: sniHostName, name: name} }

// alpnExt builds an ALPN extension offering protos.
func alpnExt(protos ...string) ext {
	var list []byte
	for _, p := range protos {
		list = append(list, byte(len(p)))
		list = append(list, p...)
	}
	return ext{typ: extALPN, data: append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)}
}

// selfSignedCert returns a throwaway certificate for name, for handshakes completed in tests.
func selfSignedCert(tb testing.TB, name string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("create certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
