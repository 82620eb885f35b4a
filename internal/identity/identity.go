// Package identity holds the proxy's workload identity: an X.509 SVID and the trust bundle read from
// the files Istio mounts (cert-chain.pem, key.pem, root-cert.pem), kept current as the files rotate,
// and the TLS configurations that present it and verify peers by SPIFFE ID.
package identity

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

// Identity is one verified reading of an identity directory. It is immutable: a rotation makes a
// new one.
type Identity struct {
	// SVID is the workload's certificate chain and private key.
	SVID *x509svid.SVID
	// Bundle is the trust bundle of the SVID's trust domain, from root-cert.pem.
	Bundle *x509bundle.Bundle
	// NotAfter is the earliest expiry in the verified chain (leaf to root): when the identity ends.
	NotAfter time.Time
	// digest identifies the file contents this was read from, so an unchanged directory is not
	// reloaded (and a bad file is not reported again) on every periodic check.
	digest [sha256.Size]byte
}

// ID returns the workload's SPIFFE ID.
func (id *Identity) ID() spiffeid.ID { return id.SVID.ID }

// TrustDomain returns the trust domain of the workload's SPIFFE ID.
func (id *Identity) TrustDomain() spiffeid.TrustDomain { return id.SVID.ID.TrustDomain() }

// Load reads cert-chain.pem, key.pem and root-cert.pem from dir and returns the identity if the
// chain is a valid X.509 SVID, the key is the leaf's, and the chain verifies against the bundle now.
func Load(dir string) (*Identity, error) {
	raw, err := readFiles(dir)
	if err != nil {
		return nil, err
	}
	return parse(dir, raw, time.Now())
}

// rawFiles are the bytes of the three files, read before anything is parsed.
type rawFiles struct {
	chain, key, root []byte
}

func (r rawFiles) digest() [sha256.Size]byte {
	return sha256.Sum256(bytes.Join([][]byte{r.chain, r.key, r.root}, []byte{0}))
}

func readFiles(dir string) (rawFiles, error) {
	var r rawFiles
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{ca.CertChainFile, &r.chain}, {ca.KeyFile, &r.key}, {ca.RootCertFile, &r.root}} {
		b, err := ca.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return rawFiles{}, fmt.Errorf("load identity: %w", err)
		}
		*f.dst = b
	}
	return r, nil
}

// parse turns the three files into an Identity, checking everything a peer would.
func parse(dir string, r rawFiles, now time.Time) (*Identity, error) {
	chain, err := ca.ParseCerts(r.chain)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", filepath.Join(dir, ca.CertChainFile), err)
	}
	key, err := ca.ParseKey(r.key)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", filepath.Join(dir, ca.KeyFile), err)
	}
	// go-spiffe reads PKCS #8 only; normalising here lets keys written as "EC PRIVATE KEY" or
	// "RSA PRIVATE KEY" (as other tools write them) through the same SVID checks.
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", filepath.Join(dir, ca.KeyFile), err)
	}
	var chainDER []byte
	for _, c := range chain {
		chainDER = append(chainDER, c.Raw...)
	}
	// ParseRaw checks the SVID rules: one spiffe URI SAN with a path, a non-CA leaf that may sign,
	// CA intermediates, and a key that matches the leaf.
	svid, err := x509svid.ParseRaw(chainDER, keyDER)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", filepath.Join(dir, ca.CertChainFile), err)
	}
	bundle, err := x509bundle.Parse(svid.ID.TrustDomain(), r.root)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", filepath.Join(dir, ca.RootCertFile), err)
	}
	if bundle.Empty() {
		return nil, fmt.Errorf("load identity %s: %w", filepath.Join(dir, ca.RootCertFile), errors.New("no certificate in the trust bundle"))
	}
	_, verified, err := x509svid.Verify(svid.Certificates, bundle, x509svid.WithTime(now))
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %s does not verify against %s: %w", dir, ca.CertChainFile, ca.RootCertFile, err)
	}
	// The identity lasts as long as every certificate of the verified chain, root included.
	notAfter := svid.Certificates[0].NotAfter
	for _, c := range verified[0] {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	return &Identity{SVID: svid, Bundle: bundle, NotAfter: notAfter, digest: r.digest()}, nil
}
