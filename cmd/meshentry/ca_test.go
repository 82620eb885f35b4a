package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/identity/ca"
)

// runCLI runs the meshentry command line in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestCACommandsWriteAVerifiableWorkloadIdentity drives `meshentry ca init` and `ca issue`
// through cobra and parses what they wrote.
func TestCACommandsWriteAVerifiableWorkloadIdentity(t *testing.T) {
	t.Parallel()
	caDir := filepath.Join(t.TempDir(), "ca")
	out := filepath.Join(t.TempDir(), "id")
	code, stdout, stderr := runCLI("ca", "init", "--dir", caDir, "--trust-domain", "mesh.example", "--ttl", "720h")
	if code != 0 || !strings.Contains(stdout, "trust domain mesh.example") {
		t.Fatalf("ca init: exit %d\n%s%s", code, stdout, stderr)
	}
	start := time.Now()
	code, stdout, stderr = runCLI("ca", "issue", "--ca", caDir, "--namespace", "shop", "--service-account", "cart",
		"--out", out, "--ttl", "12h", "--dns", "cart.shop.svc", "--dns", "cart.local")
	if code != 0 || !strings.Contains(stdout, "spiffe://mesh.example/ns/shop/sa/cart") {
		t.Fatalf("ca issue: exit %d\n%s%s", code, stdout, stderr)
	}
	root := parseCertFile(t, filepath.Join(caDir, ca.RootCertFile))[0]
	chain := parseCertFile(t, filepath.Join(out, ca.CertChainFile))
	leaf := chain[0]
	pool := x509.NewCertPool()
	pool.AddCert(parseCertFile(t, filepath.Join(out, ca.RootCertFile))[0])
	_, verifyErr := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	rootTTL := root.NotAfter.Sub(root.NotBefore) - ca.ClockSkew
	leafTTL := leaf.NotAfter.Sub(leaf.NotBefore) - ca.ClockSkew
	checks := []struct {
		name string
		ok   bool
		got  any
	}{
		{name: "the root is a P-256 CA of the trust domain", ok: root.IsCA && isP256(root) && len(root.URIs) == 1 && root.URIs[0].String() == "spiffe://mesh.example", got: root.URIs},
		{name: "the root lasts the --ttl given", ok: rootTTL == 720*time.Hour, got: rootTTL},
		{name: "the leaf's only URI SAN is the workload's SPIFFE ID", ok: len(leaf.URIs) == 1 && leaf.URIs[0].String() == "spiffe://mesh.example/ns/shop/sa/cart", got: leaf.URIs},
		{name: "each --dns is a DNS SAN", ok: slices.Equal(leaf.DNSNames, []string{"cart.shop.svc", "cart.local"}), got: leaf.DNSNames},
		{name: "the leaf is for server and client auth", ok: slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}), got: leaf.ExtKeyUsage},
		{name: "the leaf signs and is no CA", ok: leaf.KeyUsage == x509.KeyUsageDigitalSignature && !leaf.IsCA && isP256(leaf), got: leaf.KeyUsage},
		{name: "the leaf lasts the --ttl given", ok: leafTTL == 12*time.Hour, got: leafTTL},
		{name: "the leaf starts before it was issued, for clock skew", ok: leaf.NotBefore.Before(start.Add(-time.Minute)), got: leaf.NotBefore},
		{name: "the chain is the leaf alone under a root CA", ok: len(chain) == 1, got: len(chain)},
		{name: "the leaf verifies against root-cert.pem", ok: verifyErr == nil, got: verifyErr},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Fatalf("got %v", c.got)
			}
		})
	}
	t.Run("the keys are private to their owner", func(t *testing.T) {
		for _, p := range []string{filepath.Join(caDir, ca.RootKeyFile), filepath.Join(out, ca.KeyFile)} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", p, st.Mode().Perm())
			}
		}
	})
	t.Run("the written directory loads as an identity", func(t *testing.T) {
		id, err := identity.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if id.ID().String() != "spiffe://mesh.example/ns/shop/sa/cart" {
			t.Fatalf("ID %s", id.ID())
		}
	})
}

func TestCAInitWithAParentMakesAnIntermediateThatIssuesChains(t *testing.T) {
	t.Parallel()
	rootDir, interDir, out := t.TempDir(), t.TempDir(), t.TempDir()
	steps := [][]string{
		{"ca", "init", "--dir", rootDir, "--trust-domain", "mesh.example"},
		{"ca", "init", "--dir", interDir, "--parent", rootDir, "--ttl", "720h"},
		{"ca", "issue", "--ca", interDir, "--namespace", "shop", "--service-account", "cart", "--out", out},
	}
	for _, args := range steps {
		if code, stdout, stderr := runCLI(args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
	chain := parseCertFile(t, filepath.Join(out, ca.CertChainFile))
	inter := parseCertFile(t, filepath.Join(interDir, ca.CACertFile))[0]
	if len(chain) != 2 || !chain[1].Equal(inter) {
		t.Fatalf("chain of %d certificates, want the leaf then the intermediate", len(chain))
	}
	if got := inter.NotAfter.Sub(inter.NotBefore) - ca.ClockSkew; got != 720*time.Hour {
		t.Fatalf("intermediate lasts %s, want 720h", got)
	}
	id, err := identity.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if id.ID().String() != "spiffe://mesh.example/ns/shop/sa/cart" {
		t.Fatalf("ID %s, want it in the root's trust domain", id.ID())
	}
}

func TestCACommandsRefuseWhatTheyCannotDoSafely(t *testing.T) {
	t.Parallel()
	caDir := filepath.Join(t.TempDir(), "ca")
	if code, _, stderr := runCLI("ca", "init", "--dir", caDir, "--ttl", "48h"); code != 0 {
		t.Fatalf("ca init: %s", stderr)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "init over an existing CA", args: []string{"ca", "init", "--dir", caDir}, wantCode: 1, wantErr: "--force"},
		{name: "init without --dir", args: []string{"ca", "init"}, wantCode: 2, wantErr: "--dir is required"},
		{name: "issue without namespace and service account", args: []string{"ca", "issue", "--ca", caDir, "--out", t.TempDir()}, wantCode: 2, wantErr: "--namespace, --service-account required"},
		{name: "issue for longer than the CA lives", args: []string{"ca", "issue", "--ca", caDir, "--namespace", "a", "--service-account", "b", "--out", t.TempDir(), "--ttl", "100h"}, wantCode: 1, wantErr: "outlive the CA"},
		{name: "issue into the CA's own directory", args: []string{"ca", "issue", "--ca", caDir, "--namespace", "a", "--service-account", "b", "--out", caDir + "/."}, wantCode: 2, wantErr: "must not be the CA's directory"},
		{name: "issue in a trust domain the CA does not name", args: []string{"ca", "issue", "--ca", caDir, "--namespace", "a", "--service-account", "b", "--out", t.TempDir(), "--trust-domain", "other.example"}, wantCode: 2, wantErr: "issues in trust domain cluster.local, not other.example"},
		{name: "issue from a directory with no CA", args: []string{"ca", "issue", "--ca", t.TempDir(), "--namespace", "a", "--service-account", "b", "--out", t.TempDir()}, wantCode: 1, wantErr: "root-cert.pem"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runCLI(tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
	t.Run("init with --force replaces the CA", func(t *testing.T) {
		t.Parallel()
		caDir := filepath.Join(t.TempDir(), "ca")
		if code, _, stderr := runCLI("ca", "init", "--dir", caDir); code != 0 {
			t.Fatalf("ca init: %s", stderr)
		}
		before := parseCertFile(t, filepath.Join(caDir, ca.RootCertFile))[0]
		if code, _, stderr := runCLI("ca", "init", "--dir", caDir, "--force"); code != 0 {
			t.Fatalf("ca init --force: %s", stderr)
		}
		if parseCertFile(t, filepath.Join(caDir, ca.RootCertFile))[0].Equal(before) {
			t.Fatal("the CA was not replaced")
		}
	})
}

func parseCertFile(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ca.ParseCerts(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return certs
}

func isP256(c *x509.Certificate) bool {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	return ok && k.Curve == elliptic.P256()
}
