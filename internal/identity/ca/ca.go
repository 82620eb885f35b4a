// Package ca is a small local certificate authority: it creates a root (or intermediate) CA for a
// SPIFFE trust domain and issues workload certificates (X.509 SVIDs) in the file layout Istio
// mounts for its proxies, so meshentry processes can form a mesh without an external CA.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
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

// CA is a loaded certificate authority: the certificate and key that sign, the intermediates
// between it and the root, and the root that workloads trust.
type CA struct {
	// TrustDomain is the SPIFFE trust domain the CA issues identities in.
	TrustDomain spiffeid.TrustDomain
	// Cert signs workload certificates.
	Cert *x509.Certificate
	// Key is Cert's private key.
	Key crypto.Signer
	// Chain is Cert and the intermediates above it, up to but not including Root; empty for a root CA.
	Chain []*x509.Certificate
	// Root is the trust anchor workloads verify peers against; it is Cert for a root CA.
	Root *x509.Certificate
}

// InitOptions say what CA Init creates.
type InitOptions struct {
	// TrustDomain is the SPIFFE trust domain; DefaultTrustDomain when empty. An intermediate takes
	// its parent's, and a different one here is an error.
	TrustDomain string
	// TTL is the CA certificate's lifetime; DefaultRootTTL when zero.
	TTL time.Duration
	// Force replaces an existing CA in the directory.
	Force bool
	// Parent, when set, makes an intermediate CA signed by it (as for Istio's "plug in CA
	// certificates", where clusters share a root), written in Istio's cacerts layout.
	Parent *CA
	// Now is the issuing time; time.Now when zero (tests set it to make expired CAs).
	Now time.Time
}

// Init creates an ECDSA P-256 CA in dir and returns it. A root CA is root-cert.pem and
// root-key.pem (mode 0600), as Istio's tools/certs name them; an intermediate is Istio's cacerts
// layout: ca-cert.pem, ca-key.pem, cert-chain.pem (the CA up to the root) and root-cert.pem.
// Init refuses to replace an existing CA unless opts.Force is set.
func Init(dir string, opts InitOptions) (*CA, error) {
	td, err := initTrustDomain(opts)
	if err != nil {
		return nil, err
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultRootTTL
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("ttl %s: must be positive", opts.TTL)
	}
	if !opts.Force {
		for _, name := range []string{RootCertFile, RootKeyFile, CACertFile, CAKeyFile} {
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				return nil, fmt.Errorf("%s: %w (pass --force to replace it)", filepath.Join(dir, name), ErrExists)
			}
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	c, err := newCACert(td, now, opts.TTL, opts.Parent)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(c.Key)
	if err != nil {
		return nil, err
	}
	files := []fileWrite{
		{name: RootKeyFile, data: keyPEM, mode: 0o600},
		{name: RootCertFile, data: encodeCerts(c.Root), mode: 0o644},
	}
	if opts.Parent != nil {
		files = []fileWrite{
			{name: CAKeyFile, data: keyPEM, mode: 0o600},
			{name: CACertFile, data: encodeCerts(c.Cert), mode: 0o644},
			{name: CertChainFile, data: encodeCerts(append(c.Chain, c.Root)...), mode: 0o644},
			{name: RootCertFile, data: encodeCerts(c.Root), mode: 0o644},
		}
	}
	if err := writeAtomically(dir, files); err != nil {
		return nil, fmt.Errorf("write CA: %w", err)
	}
	return c, nil
}

// initTrustDomain is the trust domain of the CA Init makes: the parent's for an intermediate.
func initTrustDomain(opts InitOptions) (spiffeid.TrustDomain, error) {
	if opts.Parent != nil {
		if opts.TrustDomain != "" && opts.TrustDomain != opts.Parent.TrustDomain.Name() {
			return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: an intermediate is in its parent's trust domain %s", opts.TrustDomain, opts.Parent.TrustDomain.Name())
		}
		return opts.Parent.TrustDomain, nil
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: %w", opts.TrustDomain, err)
	}
	return td, nil
}

// newCACert makes a CA key and certificate: self-signed without a parent, else signed by it.
func newCACert(td spiffeid.TrustDomain, now time.Time, ttl time.Duration, parent *CA) (*CA, error) {
	if parent != nil && now.Add(ttl).After(parent.Cert.NotAfter) {
		return nil, fmt.Errorf("ttl %s: the intermediate would outlive its parent, which expires %s", ttl, parent.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	name := "meshentry root CA"
	if parent != nil {
		name = "meshentry intermediate CA"
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Istio's self-signed root names the trust domain as its organization.
		Subject:               pkix.Name{Organization: []string{td.Name()}, CommonName: name},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The trust domain's SPIFFE ID, so `ca issue` can read the trust domain back from the CA.
		URIs: []*url.URL{td.ID().URL()},
	}
	signer, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse the new CA certificate: %w", err)
	}
	if parent == nil {
		return &CA{TrustDomain: td, Cert: cert, Key: key, Root: cert}, nil
	}
	chain := append([]*x509.Certificate{cert}, parent.Chain...)
	return &CA{TrustDomain: td, Cert: cert, Key: key, Chain: chain, Root: parent.Root}, nil
}

// Open loads the CA in dir: Istio's cacerts layout (ca-cert.pem, ca-key.pem, cert-chain.pem,
// root-cert.pem) when ca-cert.pem is there, else a root CA (root-cert.pem, root-key.pem). The
// trust domain comes from the CA's SPIFFE URI SAN; one without (made by other tools) takes
// fallbackTrustDomain.
func Open(dir, fallbackTrustDomain string) (*CA, error) {
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); err == nil {
		return openIntermediate(dir, fallbackTrustDomain)
	}
	cert, key, err := readPair(dir, RootCertFile, RootKeyFile)
	if err != nil {
		return nil, err
	}
	td, err := trustDomainOf(cert, fallbackTrustDomain)
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %w", dir, err)
	}
	return &CA{TrustDomain: td, Cert: cert, Key: key, Root: cert}, nil
}

// openIntermediate loads Istio's cacerts layout and checks that the CA chains to the root.
func openIntermediate(dir, fallbackTrustDomain string) (*CA, error) {
	cert, key, err := readPair(dir, CACertFile, CAKeyFile)
	if err != nil {
		return nil, err
	}
	rootPEM, err := ReadFile(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	roots, err := ParseCerts(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %w", filepath.Join(dir, RootCertFile), err)
	}
	chain := []*x509.Certificate{cert}
	if b, err := ReadFile(filepath.Join(dir, CertChainFile)); err == nil {
		if chain, err = ParseCerts(b); err != nil {
			return nil, fmt.Errorf("open CA %s: %w", filepath.Join(dir, CertChainFile), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	if !chain[0].Equal(cert) {
		return nil, fmt.Errorf("open CA %s: %s does not start with %s", dir, CertChainFile, CACertFile)
	}
	// Istio's cert-chain.pem ends with the root; workloads get the root from root-cert.pem instead.
	for len(chain) > 1 && chain[len(chain)-1].Equal(roots[0]) {
		chain = chain[:len(chain)-1]
	}
	rootPool, interPool := x509.NewCertPool(), x509.NewCertPool()
	rootPool.AddCert(roots[0])
	for _, c := range chain[1:] {
		interPool.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: rootPool, Intermediates: interPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("open CA %s: %s does not chain to %s: %w", dir, CACertFile, RootCertFile, err)
	}
	td, err := trustDomainOf(cert, fallbackTrustDomain)
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %w", dir, err)
	}
	return &CA{TrustDomain: td, Cert: cert, Key: key, Chain: chain, Root: roots[0]}, nil
}

// readPair reads a CA certificate and its key and checks that they belong together.
func readPair(dir, certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return nil, nil, fmt.Errorf("open CA: %w", err)
	}
	keyPEM, err := ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("open CA: %w", err)
	}
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("open CA %s: %w", filepath.Join(dir, certFile), err)
	}
	cert := certs[0]
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("open CA %s: %w", filepath.Join(dir, keyFile), err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, nil, fmt.Errorf("open CA %s: %s does not match %s", dir, keyFile, certFile)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("open CA %s: %s is not a CA certificate", dir, certFile)
	}
	return cert, key, nil
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
