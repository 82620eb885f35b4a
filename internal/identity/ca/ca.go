// Package ca is a small local certificate authority: it creates a root CA for a SPIFFE trust
// domain and issues workload certificates (X.509 SVIDs) in the file layout Istio mounts for its
// proxies, so two meshentry processes can form a mesh without an external CA.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults for the CLI, as Istio uses them: the trust domain of a default install, a ten-year
// self-signed root, and one-day workload certificates.
const (
	DefaultTrustDomain = "cluster.local"
	DefaultRootTTL     = 10 * 365 * 24 * time.Hour
	DefaultLeafTTL     = 24 * time.Hour
)

// ClockSkew is how far in the past a certificate's NotBefore is set, so that a peer whose clock is
// a little behind the issuer's still accepts a certificate issued a moment ago.
const ClockSkew = 5 * time.Minute

// ErrExists is returned by Init when the directory already holds a CA and overwriting was not asked for.
var ErrExists = errors.New("a CA already exists")

// CA is a loaded certificate authority: the certificate and key that sign, and the root that
// workloads trust.
type CA struct {
	// TrustDomain is the SPIFFE trust domain the CA issues identities in.
	TrustDomain spiffeid.TrustDomain
	// Cert signs workload certificates.
	Cert *x509.Certificate
	// Key is Cert's private key.
	Key crypto.Signer
	// Root is the trust anchor workloads verify peers against; it is Cert for a root CA.
	Root *x509.Certificate
}

// InitOptions say what root CA Init creates.
type InitOptions struct {
	// TrustDomain is the SPIFFE trust domain; DefaultTrustDomain when empty.
	TrustDomain string
	// TTL is the root's lifetime; DefaultRootTTL when zero.
	TTL time.Duration
	// Force replaces an existing CA in the directory.
	Force bool
	// Now is the issuing time; time.Now when zero (tests set it to make expired CAs).
	Now time.Time
}

// Init creates an ECDSA P-256 root CA in dir (root-cert.pem, and root-key.pem with mode 0600) and
// returns it. It refuses to replace an existing CA unless opts.Force is set.
func Init(dir string, opts InitOptions) (*CA, error) {
	if opts.TrustDomain == "" {
		opts.TrustDomain = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust domain %q: %w", opts.TrustDomain, err)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultRootTTL
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("ttl %s: must be positive", opts.TTL)
	}
	if !opts.Force {
		for _, name := range []string{RootCertFile, RootKeyFile} {
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				return nil, fmt.Errorf("%s: %w (pass --force to replace it)", filepath.Join(dir, name), ErrExists)
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Istio's self-signed root names the trust domain as its organization.
		Subject:               pkix.Name{Organization: []string{td.Name()}, CommonName: "meshentry root CA"},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(opts.TTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The trust domain's SPIFFE ID, so `ca issue` can read the trust domain back from the root.
		URIs: []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse the new CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeAtomically(dir, []fileWrite{
		{name: RootKeyFile, data: keyPEM, mode: 0o600},
		{name: RootCertFile, data: encodeCerts(cert), mode: 0o644},
	}); err != nil {
		return nil, fmt.Errorf("write CA: %w", err)
	}
	return &CA{TrustDomain: td, Cert: cert, Key: key, Root: cert}, nil
}

// Open loads the root CA Init wrote in dir. The trust domain comes from the root's SPIFFE URI SAN;
// a root without one (made by other tools) takes fallbackTrustDomain.
func Open(dir, fallbackTrustDomain string) (*CA, error) {
	certPEM, err := ReadFile(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	keyPEM, err := ReadFile(filepath.Join(dir, RootKeyFile))
	if err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %w", filepath.Join(dir, RootCertFile), err)
	}
	cert := certs[0]
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %w", filepath.Join(dir, RootKeyFile), err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("open CA %s: %s does not match %s", dir, RootKeyFile, RootCertFile)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("open CA %s: %s is not a CA certificate", dir, RootCertFile)
	}
	td, err := trustDomainOf(cert, fallbackTrustDomain)
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %w", dir, err)
	}
	return &CA{TrustDomain: td, Cert: cert, Key: key, Root: cert}, nil
}

// trustDomainOf reads the trust domain from a CA certificate's SPIFFE URI SAN, else the fallback.
func trustDomainOf(cert *x509.Certificate, fallback string) (spiffeid.TrustDomain, error) {
	for _, u := range cert.URIs {
		if id, err := spiffeid.FromURI(u); err == nil {
			return id.TrustDomain(), nil
		}
	}
	if fallback == "" {
		fallback = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(fallback)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: %w", fallback, err)
	}
	return td, nil
}

// newSerial returns a random 128-bit serial number, as RFC 5280 asks serials to be unpredictable.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n, nil
}

// encodeKey returns key as a PEM "PRIVATE KEY" (PKCS #8) block, the form go-spiffe reads.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey parses the first private key in b: PKCS #8 ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY")
// or PKCS #1 ("RSA PRIVATE KEY"), since keys from Istio's and OpenSSL's tools come in all three.
func ParseKey(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return signer, nil
	}
}

// publicKeysEqual reports whether two public keys are the same key; every key type crypto/x509
// returns has an Equal method.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
