package inbound

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/identity"
)

// XFCCHeader is the field an inbound listener sets on every HTTP request it forwards.
const XFCCHeader = "x-forwarded-client-cert"

var xfccName = []byte(XFCCHeader)

// peerAddr is the remote address of an inbound connection whose client verified, carrying what
// its requests need: the engine hands RemoteAddr to the Router, so the identity travels with
// the connection without a lookup table or a change to the engine's connection type.
type peerAddr struct {
	net.Addr
	// id is the caller's SPIFFE ID.
	id spiffeid.ID
	// element is this hop's XFCC element, made once per connection.
	element string
	// set is the Upstream.Header for a request that brought no XFCC of its own, kept so that
	// such requests route without allocating.
	set []httpfwd.Field
	// h2 says the client speaks HTTP/2, so its requests go to the target over h2c.
	h2 bool
}

// peerConn presents a peerAddr as the connection's remote address.
type peerConn struct {
	net.Conn
	peer *peerAddr
}

// RemoteAddr returns the client's address with its verified identity.
func (c *peerConn) RemoteAddr() net.Addr { return c.peer }

// newPeer describes the verified client of a finished handshake; local is the SPIFFE ID this
// listener presented.
func newPeer(remote net.Addr, local spiffeid.ID, cs tls.ConnectionState) *peerAddr {
	leaf := cs.PeerCertificates[0]
	id, _ := identity.PeerID(cs) // verified by the handshake, so present
	el := xfccElement(local, leaf)
	return &peerAddr{Addr: remote, id: id, element: el, set: []httpfwd.Field{{Name: XFCCHeader, Value: el}}}
}

// xfccElement is the element Envoy adds at an Istio sidecar's inbound listener, whose
// SetCurrentClientCertDetails asks for Subject, URI and DNS: By (our URI SAN), Hash (SHA-256
// of the peer's leaf, lower-case hex), then Subject, URI and DNS in that order, as Envoy writes
// them. Subject is always present and quoted, empty for Istio's subject-less certificates; URI
// is present even when the certificate has none; DNS only when it has some.
func xfccElement(local spiffeid.ID, leaf *x509.Certificate) string {
	var b strings.Builder
	b.Grow(256)
	if !local.IsZero() {
		b.WriteString("By=")
		b.WriteString(local.String())
		b.WriteByte(';')
	}
	sum := sha256.Sum256(leaf.Raw)
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteString(`;Subject="`)
	b.WriteString(subject(leaf))
	b.WriteByte('"')
	if len(leaf.URIs) == 0 {
		b.WriteString(";URI=")
	}
	for _, u := range leaf.URIs {
		b.WriteString(";URI=")
		b.WriteString(u.String())
	}
	for _, d := range leaf.DNSNames {
		b.WriteString(";DNS=")
		b.WriteString(d)
	}
	return b.String()
}

// subject is the leaf's subject in RFC 2253 form, as Envoy prints it; pkix escapes a double
// quote with a backslash, so the quoted value cannot end early.
func subject(c *x509.Certificate) string { return c.Subject.String() }

// requestHeader returns the fields the request goes upstream with. As Envoy's APPEND_FORWARD
// (Istio's default at a sidecar inbound), an XFCC the client sent is kept, joined into one
// field, and this hop's element appended after a comma.
func (p *peerAddr) requestHeader(req *httpfwd.RequestHead) []httpfwd.Field {
	var prior []byte
	n := 0
	for name, value := range req.Headers() {
		if len(name) != len(XFCCHeader) || !bytes.EqualFold(name, xfccName) || len(value) == 0 {
			continue
		}
		if n > 0 {
			prior = append(prior, ',')
		}
		prior = append(prior, value...)
		n++
	}
	if n == 0 {
		return p.set
	}
	return []httpfwd.Field{{Name: XFCCHeader, Value: string(prior) + "," + p.element}}
}
