package ca

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAnIntermediateCAIssuesChainsThatVerifyToTheSharedRoot(t *testing.T) {
	t.Parallel()
	root, err := Init(t.TempDir(), InitOptions{TrustDomain: "mesh.example"})
	if err != nil {
		t.Fatal(err)
	}
	interDir := t.TempDir()
	if _, err := Init(interDir, InitOptions{Parent: root, TTL: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	inter, err := Open(interDir, "")
	if err != nil {
		t.Fatal(err)
	}
	is, err := inter.Issue(IssueOptions{Namespace: "shop", ServiceAccount: "cart"})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := is.Write(out); err != nil {
		t.Fatal(err)
	}
	chain := readCerts(t, filepath.Join(out, CertChainFile))
	checks := []struct {
		name string
		ok   bool
	}{
		{name: "the intermediate is in its parent's trust domain", ok: inter.TrustDomain == root.TrustDomain},
		{name: "the intermediate's cert-chain.pem ends with the root, as Istio's cacerts does", ok: lastCert(t, filepath.Join(interDir, CertChainFile)).Equal(root.Root)},
		{name: "the workload chain is the leaf then the intermediate, without the root", ok: len(chain) == 2 && chain[1].Equal(inter.Cert)},
		{name: "the workload's root-cert.pem is the shared root", ok: readCerts(t, filepath.Join(out, RootCertFile))[0].Equal(root.Root)},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Fatalf("chain of %d, intermediate trust domain %s", len(chain), inter.TrustDomain)
			}
		})
	}
	t.Run("the leaf verifies through the intermediate to the root", func(t *testing.T) {
		roots, inters := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(root.Root)
		inters.AddCert(chain[1])
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestIntermediatesAreRefusedWhenTheyCannotChain(t *testing.T) {
	t.Parallel()
	root, err := Init(t.TempDir(), InitOptions{TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Init(t.TempDir(), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func(t *testing.T) error
		want string
	}{
		{
			name: "an intermediate that would outlive its parent",
			do: func(t *testing.T) error {
				_, err := Init(t.TempDir(), InitOptions{Parent: root, TTL: 100 * time.Hour})
				return err
			},
			want: "outlive its parent",
		},
		{
			name: "an intermediate in another trust domain than its parent",
			do: func(t *testing.T) error {
				_, err := Init(t.TempDir(), InitOptions{Parent: root, TrustDomain: "elsewhere.example", TTL: time.Hour})
				return err
			},
			want: "parent's trust domain",
		},
		{
			name: "opening an intermediate whose root-cert.pem is another CA's",
			do: func(t *testing.T) error {
				dir := t.TempDir()
				if _, err := Init(dir, InitOptions{Parent: root, TTL: time.Hour}); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, RootCertFile), encodeCerts(other.Root), 0o644); err != nil {
					return err
				}
				_, err := Open(dir, "")
				return err
			},
			want: "does not chain",
		},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.do(t); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func lastCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs := readCerts(t, path)
	return certs[len(certs)-1]
}
