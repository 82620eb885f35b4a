package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInitCreatesARootCAAndRefusesToOverwriteIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := Init(dir, InitOptions{TrustDomain: "mesh.example", TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the key is readable by its owner only", func(t *testing.T) {
		st, err := os.Stat(filepath.Join(dir, RootKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
		}
	})
	t.Run("the root is a P-256 CA naming the trust domain", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, RootCertFile))
		if err != nil {
			t.Fatal(err)
		}
		certs, err := ParseCerts(b)
		if err != nil {
			t.Fatal(err)
		}
		root := certs[0]
		pub, ok := root.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Fatalf("root key %T, want ECDSA P-256", root.PublicKey)
		}
		if !root.IsCA || root.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Fatalf("root IsCA=%v usage=%v", root.IsCA, root.KeyUsage)
		}
		if len(root.URIs) != 1 || root.URIs[0].String() != "spiffe://mesh.example" {
			t.Fatalf("root URIs %v", root.URIs)
		}
		if got := root.NotAfter.Sub(root.NotBefore); got != 48*time.Hour+ClockSkew {
			t.Fatalf("root validity %s, want 48h plus %s of clock skew", got, ClockSkew)
		}
		if err := root.CheckSignatureFrom(root); err != nil {
			t.Fatalf("root is not self-signed: %v", err)
		}
	})
	t.Run("a second init without force is refused and leaves the CA alone", func(t *testing.T) {
		if _, err := Init(dir, InitOptions{}); !errors.Is(err, ErrExists) {
			t.Fatalf("got %v, want ErrExists", err)
		}
		again, err := Open(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if !again.Cert.Equal(c.Cert) {
			t.Fatal("the CA changed")
		}
	})
	t.Run("init with force replaces it", func(t *testing.T) {
		forced, err := Init(dir, InitOptions{TrustDomain: "other.example", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		opened, err := Open(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if !opened.Cert.Equal(forced.Cert) || opened.TrustDomain.Name() != "other.example" {
			t.Fatalf("opened %s, want the forced CA of other.example", opened.TrustDomain)
		}
		leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
		if len(leftovers) > 0 {
			t.Fatalf("temporary files left: %v", leftovers)
		}
	})
}

func TestInitRefusesBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts InitOptions
		want string
	}{
		{name: "a trust domain with upper case", opts: InitOptions{TrustDomain: "Cluster.Local"}, want: "trust domain"},
		{name: "a negative ttl", opts: InitOptions{TTL: -time.Hour}, want: "must be positive"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Init(t.TempDir(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestIssueWritesAnIstioStyleWorkloadIdentity(t *testing.T) {
	t.Parallel()
	c, err := Init(t.TempDir(), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	is, err := c.Issue(IssueOptions{Namespace: "shop", ServiceAccount: "cart", TTL: 2 * time.Hour, DNSNames: []string{"cart.shop.svc", "*.cart.example"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "id")
	if err := is.Write(out); err != nil {
		t.Fatal(err)
	}
	chain := readCerts(t, filepath.Join(out, CertChainFile))
	leaf := chain[0]
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "the URI SAN is the workload's SPIFFE ID", ok: len(leaf.URIs) == 1 && leaf.URIs[0].String() == "spiffe://cluster.local/ns/shop/sa/cart"},
		{name: "the DNS names, a wildcard among them, are SANs too", ok: slices.Equal(leaf.DNSNames, []string{"cart.shop.svc", "*.cart.example"})},
		{name: "it serves both server and client auth", ok: slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})},
		{name: "it signs but cannot sign certificates", ok: leaf.KeyUsage == x509.KeyUsageDigitalSignature && !leaf.IsCA},
		{name: "it starts a little in the past for clock skew", ok: leaf.NotBefore.Equal(now.Add(-ClockSkew).Truncate(time.Second))},
		{name: "it lasts the ttl", ok: leaf.NotAfter.Equal(now.Add(2 * time.Hour).Truncate(time.Second))},
		{name: "the chain holds only the leaf for a root CA", ok: len(chain) == 1},
		{name: "root-cert.pem is the CA's root", ok: readCerts(t, filepath.Join(out, RootCertFile))[0].Equal(c.Root)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Fatalf("leaf: URIs %v DNS %v EKU %v KU %v notBefore %s notAfter %s chain %d", leaf.URIs, leaf.DNSNames, leaf.ExtKeyUsage, leaf.KeyUsage, leaf.NotBefore, leaf.NotAfter, len(chain))
			}
		})
	}
	t.Run("the chain verifies against the root for client and server auth", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(c.Root)
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("key.pem matches the leaf and is private", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(out, KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		key, err := ParseKey(b)
		if err != nil {
			t.Fatal(err)
		}
		if !publicKeysEqual(key.Public(), leaf.PublicKey) {
			t.Fatal("key does not match the leaf")
		}
		st, _ := os.Stat(filepath.Join(out, KeyFile))
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("key mode %v", st.Mode().Perm())
		}
	})
}

func TestIssueRefusesBadOptions(t *testing.T) {
	t.Parallel()
	c, err := Init(t.TempDir(), InitOptions{TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts IssueOptions
		want string
	}{
		{name: "a missing service account", opts: IssueOptions{Namespace: "ns"}, want: "both required"},
		{name: "a namespace with a slash", opts: IssueOptions{Namespace: "a/b", ServiceAccount: "sa"}, want: "SPIFFE ID"},
		{name: "a ttl that outlives the CA", opts: IssueOptions{Namespace: "ns", ServiceAccount: "sa", TTL: 48 * time.Hour}, want: "outlive the CA"},
		{name: "a negative ttl", opts: IssueOptions{Namespace: "ns", ServiceAccount: "sa", TTL: -time.Second}, want: "must be positive"},
		{name: "a DNS name with a space", opts: IssueOptions{Namespace: "ns", ServiceAccount: "sa", DNSNames: []string{"bad name"}}, want: "only letters, digits"},
		{name: "an empty DNS name", opts: IssueOptions{Namespace: "ns", ServiceAccount: "sa", DNSNames: []string{""}}, want: "1 to 253"},
		{name: "a DNS name with an empty label", opts: IssueOptions{Namespace: "ns", ServiceAccount: "sa", DNSNames: []string{"a..b"}}, want: "label \"\""},
		{name: "a DNS label starting with a hyphen", opts: IssueOptions{Namespace: "ns", ServiceAccount: "sa", DNSNames: []string{"-x.example"}}, want: "'-'"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.Issue(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestOpenRefusesAKeyThatIsNotTheCAs(t *testing.T) {
	t.Parallel()
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if _, err := Init(d, InitOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := os.ReadFile(filepath.Join(b, RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, RootKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(a, ""); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("got %v, want a mismatch error", err)
	}
}

func TestParseKeyReadsTheThreeCommonPEMForms(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	tests := []struct {
		name  string
		block *pem.Block
		want  any
	}{
		{name: "PKCS #8", block: &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}, want: ec.Public()},
		{name: "SEC 1 EC", block: &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}, want: ec.Public()},
		{name: "PKCS #1 RSA", block: &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}, want: rsaKey.Public()},
	}
	for _, tt := range tests {
		t.Run("reads "+tt.name, func(t *testing.T) {
			t.Parallel()
			// A leading non-key block (an "EC PARAMETERS" block from openssl) is skipped.
			in := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8}}), pem.EncodeToMemory(tt.block)...)
			k, err := ParseKey(in)
			if err != nil {
				t.Fatal(err)
			}
			if !publicKeysEqual(k.Public(), tt.want) {
				t.Fatal("wrong key")
			}
		})
	}
	t.Run("refuses a file without a key", func(t *testing.T) {
		if _, err := ParseKey([]byte("not pem")); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestReadFileRefusesAnOversizedFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "big.pem")
	if err := os.WriteFile(p, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
}

func readCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseCerts(b)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}
