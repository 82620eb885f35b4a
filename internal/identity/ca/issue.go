package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// IssueOptions say which workload certificate Issue creates.
type IssueOptions struct {
	// Namespace and ServiceAccount make the SPIFFE ID spiffe://TRUST_DOMAIN/ns/NS/sa/SA.
	Namespace      string
	ServiceAccount string
	// TTL is the certificate's lifetime; DefaultLeafTTL when zero.
	TTL time.Duration
	// DNSNames are added as DNS SANs beside the SPIFFE ID.
	DNSNames []string
	// Now is the issuing time; time.Now when zero (tests set it to make expired certificates).
	Now time.Time
}

// Issued is a workload certificate with its key, in the form Write stores.
type Issued struct {
	// ID is the certificate's SPIFFE ID.
	ID spiffeid.ID
	// Chain is the leaf certificate first, then the intermediates up to (not including) the root.
	Chain []*x509.Certificate
	// Key is the leaf's private key.
	Key *ecdsa.PrivateKey
	// Root is the trust anchor a peer verifies Chain against.
	Root *x509.Certificate
}

// WorkloadID returns the SPIFFE ID Istio gives a workload: spiffe://TD/ns/NS/sa/SA.
func WorkloadID(td spiffeid.TrustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	if namespace == "" || serviceAccount == "" {
		return spiffeid.ID{}, fmt.Errorf("namespace and service account are both required")
	}
	id, err := spiffeid.FromSegments(td, "ns", namespace, "sa", serviceAccount)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("SPIFFE ID for namespace %q, service account %q: %w", namespace, serviceAccount, err)
	}
	return id, nil
}

// Issue creates an ECDSA P-256 workload certificate signed by the CA, usable for both server and
// client authentication as Istio's workload certificates are. The certificate may not outlive the CA.
func (c *CA) Issue(opts IssueOptions) (*Issued, error) {
	id, err := WorkloadID(c.TrustDomain, opts.Namespace, opts.ServiceAccount)
	if err != nil {
		return nil, err
	}
	for _, name := range opts.DNSNames {
		if err := checkDNSName(name); err != nil {
			return nil, err
		}
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultLeafTTL
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("ttl %s: must be positive", opts.TTL)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	notAfter := now.Add(opts.TTL)
	if notAfter.After(c.Cert.NotAfter) {
		return nil, fmt.Errorf("ttl %s: the certificate would outlive the CA, which expires %s", opts.TTL, c.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate workload key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// An empty subject, as Istio's workload certificates have: the identity is the URI SAN,
		// which crypto/x509 then marks critical as RFC 5280 asks.
		NotBefore: now.Add(-ClockSkew),
		NotAfter:  notAfter,
		// ECDSA keys sign; keyEncipherment is meaningless for them (RFC 5480), so it is left out.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
		DNSNames:              opts.DNSNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, key.Public(), c.Key)
	if err != nil {
		return nil, fmt.Errorf("sign workload certificate for %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse the new workload certificate: %w", err)
	}
	chain := append([]*x509.Certificate{leaf}, c.Chain...)
	return &Issued{ID: id, Chain: chain, Key: key, Root: c.Root}, nil
}

// Write stores the certificate in dir as Istio mounts it: cert-chain.pem (leaf, then
// intermediates), key.pem (mode 0600) and root-cert.pem, each replaced atomically.
func (is *Issued) Write(dir string) error {
	keyPEM, err := encodeKey(is.Key)
	if err != nil {
		return err
	}
	// The key goes first and the chain last: a reader that catches the set half-renamed sees a
	// key that does not match the old chain, which fails verification rather than passing wrongly.
	if err := writeAtomically(dir, []fileWrite{
		{name: KeyFile, data: keyPEM, mode: 0o600},
		{name: RootCertFile, data: encodeCerts(is.Root), mode: 0o644},
		{name: CertChainFile, data: encodeCerts(is.Chain...), mode: 0o644},
	}); err != nil {
		return fmt.Errorf("write identity for %s: %w", is.ID, err)
	}
	return nil
}

// checkDNSName accepts a host name of RFC 1123 labels, optionally with a leading "*." wildcard
// label; crypto/x509 would otherwise write most malformed names into the certificate as given.
func checkDNSName(name string) error {
	labels := strings.Split(strings.TrimPrefix(name, "*."), ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("DNS name %q: must be 1 to 253 characters", name)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("DNS name %q: label %q must be 1 to 63 characters, not starting or ending with '-'", name, l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("DNS name %q: label %q may hold only letters, digits and '-'", name, l)
			}
		}
	}
	return nil
}
