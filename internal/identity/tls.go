package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// PeerError is a peer refused during a TLS handshake. It names the identities that were expected
// and the one the peer presented, so the proxy can say both in a reason header.
type PeerError struct {
	// Expected lists the SPIFFE IDs accepted; empty means any ID of TrustDomain.
	Expected []spiffeid.ID
	// TrustDomain is the trust domain whose members are accepted when Expected is empty.
	TrustDomain spiffeid.TrustDomain
	// Presented is the SPIFFE ID in the peer's leaf certificate, empty when it has none.
	Presented string
	// Err is why the peer was refused: a verification failure or an ID outside Expected.
	Err error
}

// Error reads as "peer presented X, expected Y: cause".
func (e *PeerError) Error() string {
	presented := e.Presented
	if presented == "" {
		presented = "no SPIFFE ID"
	}
	return fmt.Sprintf("peer presented %s, expected %s: %v", presented, e.ExpectedString(), e.Err)
}

// Unwrap returns the cause.
func (e *PeerError) Unwrap() error { return e.Err }

// ExpectedString is the accepted identities in one line: the IDs joined by " or ", or "any
// identity in trust domain TD".
func (e *PeerError) ExpectedString() string {
	if len(e.Expected) == 0 {
		return "any identity in trust domain " + e.TrustDomain.Name()
	}
	ids := make([]string, len(e.Expected))
	for i, id := range e.Expected {
		ids[i] = id.String()
	}
	return strings.Join(ids, " or ")
}

// ErrIDNotAllowed is the cause in a PeerError when the peer verified but its ID is not accepted.
var ErrIDNotAllowed = errors.New("identity not allowed")

// ClientConfig returns a TLS config for a connection that presents the current SVID and accepts
// a server whose certificate chains to the current bundle and whose SPIFFE ID is one of allowed,
// or any ID of the proxy's trust domain when allowed is empty. The caller sets ServerName (the
// SNI) and NextProtos; the config reads the identity at each handshake, so rotations apply to new
// connections only.
func (s *Source) ClientConfig(allowed ...spiffeid.ID) *tls.Config {
	authorize := s.authorizer(allowed)
	cfg := tlsconfig.MTLSClientConfig(s, s, authorize)
	s.verifyEveryConnection(cfg, allowed, authorize)
	return cfg
}

// ServerConfig returns a TLS config for a listener that presents the current SVID and requires a
// client certificate that chains to the current bundle, with a SPIFFE ID in allowed, or any ID of
// the proxy's trust domain when allowed is empty.
func (s *Source) ServerConfig(allowed ...spiffeid.ID) *tls.Config {
	authorize := s.authorizer(allowed)
	cfg := tlsconfig.MTLSServerConfig(s, s, authorize)
	s.verifyEveryConnection(cfg, allowed, authorize)
	return cfg
}

// authorizer accepts the listed IDs, or the current trust domain's members when there are none;
// the trust domain is read per handshake so that it follows a rotation.
func (s *Source) authorizer(allowed []spiffeid.ID) tlsconfig.Authorizer {
	if len(allowed) > 0 {
		oneOf := tlsconfig.AuthorizeOneOf(allowed...)
		return func(id spiffeid.ID, chains [][]*x509.Certificate) error {
			if err := oneOf(id, chains); err != nil {
				return ErrIDNotAllowed
			}
			return nil
		}
	}
	return func(id spiffeid.ID, chains [][]*x509.Certificate) error {
		if err := tlsconfig.AuthorizeMemberOf(s.current.Load().TrustDomain())(id, chains); err != nil {
			return ErrIDNotAllowed
		}
		return nil
	}
}

// verifyEveryConnection moves go-spiffe's peer check from VerifyPeerCertificate, which crypto/tls
// skips on a resumed session, to VerifyConnection, which it calls for every connection: a session
// resumed after a rotation is checked against the current bundle and ID list, not waved through on
// the strength of a handshake made under the old ones. Every refusal (unknown CA, expired
// certificate, wrong ID) comes back as a *PeerError naming both sides.
func (s *Source) verifyEveryConnection(cfg *tls.Config, allowed []spiffeid.ID, authorize tlsconfig.Authorizer) {
	expected := slices.Clone(allowed)
	cfg.VerifyPeerCertificate = nil
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		// The same checks as go-spiffe's VerifyPeerCertificate, on the chain crypto/tls has
		// already parsed rather than on raw bytes parsed again.
		id, chains, err := x509svid.Verify(cs.PeerCertificates, s)
		if err == nil {
			err = authorize(id, chains)
		}
		if err != nil {
			return &PeerError{Expected: expected, TrustDomain: s.current.Load().TrustDomain(), Presented: presentedID(cs.PeerCertificates), Err: err}
		}
		return nil
	}
}

// presentedID is the SPIFFE ID of the peer's leaf certificate, or empty if it has none.
func presentedID(certs []*x509.Certificate) string {
	if len(certs) == 0 {
		return ""
	}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return ""
	}
	return id.String()
}

// PeerID returns the SPIFFE ID of a verified peer of a finished handshake (the caller of an
// inbound connection, for x-forwarded-client-cert).
func PeerID(cs tls.ConnectionState) (spiffeid.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("peer presented no certificate")
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("peer certificate: %w", err)
	}
	return id, nil
}
