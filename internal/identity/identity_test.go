package identity

import (
	"github.com/meshentry/meshentry/internal/testutil/pki"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

func TestLoadReadsAVerifiedIdentity(t *testing.T) {
	t.Parallel()
	c := pki.NewCA(t, "cluster.local")
	now := time.Now()
	dir := pki.Issue(t, c, "", "shop", "cart", ca.IssueOptions{TTL: 3 * time.Hour, Now: now})
	id, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := id.ID().String(); got != "spiffe://cluster.local/ns/shop/sa/cart" {
		t.Errorf("ID %s", got)
	}
	if !id.NotAfter.Equal(now.Add(3 * time.Hour).Truncate(time.Second)) {
		t.Errorf("NotAfter %s, want the leaf's expiry %s", id.NotAfter, now.Add(3*time.Hour))
	}
	if !id.Bundle.HasX509Authority(c.Root) {
		t.Error("the bundle does not hold the CA root")
	}
}

func TestLoadRefusesFilesThatDoNotMakeAnIdentity(t *testing.T) {
	t.Parallel()
	c := pki.NewCA(t, "cluster.local")
	other := pki.NewCA(t, "cluster.local")
	tests := []struct {
		name  string
		build func(t *testing.T) string
		want  string
	}{
		{
			name: "a missing key",
			build: func(t *testing.T) string {
				d := pki.Issue(t, c, "", "ns", "sa", ca.IssueOptions{})
				os.Remove(filepath.Join(d, ca.KeyFile))
				return d
			},
			want: "key.pem",
		},
		{
			name: "a key that is not the certificate's",
			build: func(t *testing.T) string {
				d := pki.Issue(t, c, "", "ns", "sa", ca.IssueOptions{})
				copyFile(t, filepath.Join(pki.Issue(t, c, "", "ns", "sa", ca.IssueOptions{}), ca.KeyFile), filepath.Join(d, ca.KeyFile))
				return d
			},
			want: "does not match private key",
		},
		{
			name: "a root from another CA",
			build: func(t *testing.T) string {
				d := pki.Issue(t, c, "", "ns", "sa", ca.IssueOptions{})
				copyFile(t, filepath.Join(pki.Issue(t, other, "", "ns", "sa", ca.IssueOptions{}), ca.RootCertFile), filepath.Join(d, ca.RootCertFile))
				return d
			},
			want: "signed by unknown authority",
		},
		{
			name: "an expired certificate",
			build: func(t *testing.T) string {
				return pki.Issue(t, c, "", "ns", "sa", ca.IssueOptions{TTL: time.Hour, Now: time.Now().Add(-2 * time.Hour)})
			},
			want: "expired",
		},
		{
			name: "a half-written chain",
			build: func(t *testing.T) string {
				d := pki.Issue(t, c, "", "ns", "sa", ca.IssueOptions{})
				b, _ := os.ReadFile(filepath.Join(d, ca.CertChainFile))
				writeFile(t, filepath.Join(d, ca.CertChainFile), b[:len(b)/2])
				return d
			},
			want: "no PEM certificate",
		},
		{
			name: "a CA certificate in place of the workload's",
			build: func(t *testing.T) string {
				d := pki.Issue(t, c, "", "ns", "sa", ca.IssueOptions{})
				copyFile(t, filepath.Join(d, ca.RootCertFile), filepath.Join(d, ca.CertChainFile))
				return d
			},
			want: "non-root path",
		},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tt.build(t))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, b)
}
