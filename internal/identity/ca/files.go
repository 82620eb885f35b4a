package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File names, as Istio names them: a root CA directory (Istio's tools/certs layout: root-cert.pem,
// root-key.pem), an intermediate CA directory (Istio's cacerts secret: ca-cert.pem, ca-key.pem,
// cert-chain.pem, root-cert.pem), and the three files of a workload's identity directory (what
// Istio mounts for its proxies: cert-chain.pem, key.pem, root-cert.pem).
const (
	RootCertFile  = "root-cert.pem"
	RootKeyFile   = "root-key.pem"
	CACertFile    = "ca-cert.pem"
	CAKeyFile     = "ca-key.pem"
	CertChainFile = "cert-chain.pem"
	KeyFile       = "key.pem"
)

// MaxFileSize bounds what is read from any certificate or key file: real ones are a few KiB, and a
// file that is not one must not be read whole into memory.
const MaxFileSize = 1 << 20

// ReadFile reads a certificate or key file, refusing one larger than MaxFileSize.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, MaxFileSize)
	}
	return b, nil
}

// fileWrite is one file of a set written together.
type fileWrite struct {
	name string
	data []byte
	mode os.FileMode
}

// writeAtomically writes each file to a temporary name in dir and then renames all of them into
// place, so a reader (a watcher of dir) sees either the old or the new content of each file, never
// a partial one. The renames happen back to back after every temporary file is complete, which
// keeps the window in which the set is mixed to microseconds; the identity watcher debounces
// across it.
func writeAtomically(dir string, files []fileWrite) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	temps := make([]string, 0, len(files))
	cleanup := func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	for _, f := range files {
		tmp, err := writeTemp(dir, f)
		if err != nil {
			cleanup()
			return err
		}
		temps = append(temps, tmp)
	}
	for i, f := range files {
		if err := os.Rename(temps[i], filepath.Join(dir, f.name)); err != nil {
			cleanup()
			return fmt.Errorf("rename into %s: %w", filepath.Join(dir, f.name), err)
		}
	}
	return nil
}

// writeTemp writes one file under a temporary name, synced and with its final mode.
func writeTemp(dir string, f fileWrite) (string, error) {
	tf, err := os.CreateTemp(dir, "."+f.name+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	name := tf.Name()
	err = tf.Chmod(f.mode)
	if err == nil {
		_, err = tf.Write(f.data)
	}
	if err == nil {
		err = tf.Sync()
	}
	if cerr := tf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return name, nil
}

// encodeCerts returns the certificates as consecutive PEM CERTIFICATE blocks.
func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParseCerts parses every PEM CERTIFICATE block of b, in order; other block types are an error,
// since a certificate file with a key in it is a mistake worth reporting.
func ParseCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q in a certificate file", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
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
