// Package pki makes the certificate authorities and workload identities tests need, with the
// project's own CA (internal/identity/ca), so no test carries fixture keys.
package pki

import (
	"testing"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

// NewCA creates a root CA for trustDomain in a fresh directory.
func NewCA(t testing.TB, trustDomain string) *ca.CA {
	t.Helper()
	c, err := ca.Init(t.TempDir(), ca.InitOptions{TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Issue writes an identity for ns/sa signed by c into dir (a fresh one when dir is empty), in
// Istio's three files, and returns the directory; opts may set the TTL, times and DNS names.
func Issue(t testing.TB, c *ca.CA, dir, ns, sa string, opts ca.IssueOptions) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	opts.Namespace, opts.ServiceAccount = ns, sa
	is, err := c.Issue(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := is.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}
