package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

// newCACommand is `meshentry ca`: a local CA that issues workload identities in Istio's layout.
func newCACommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "A local certificate authority for workload identities (SPIFFE X.509 SVIDs)",
		Long: "ca creates a root CA for a SPIFFE trust domain and issues workload certificates as the three files " +
			"Istio mounts for its proxies (cert-chain.pem, key.pem, root-cert.pem), for `meshentry run --identity-dir`.",
	}
	cmd.AddCommand(newCAInitCommand(), newCAIssueCommand())
	return cmd
}

func newCAInitCommand() *cobra.Command {
	var dir, trustDomain, parentDir string
	var ttl time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "init --dir CADIR",
		Short: "Create an ECDSA P-256 root CA (root-cert.pem, root-key.pem) in CADIR",
		Long: "init creates a self-signed root CA in CADIR, or with --parent an intermediate CA signed by another " +
			"CA, in the layout of Istio's cacerts secret (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem), " +
			"so that several meshes or clusters can share one root.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError("ca init: --dir is required")
			}
			opts := ca.InitOptions{TrustDomain: trustDomain, TTL: ttl, Force: force}
			if parentDir != "" {
				parent, err := ca.Open(parentDir, "")
				if err != nil {
					return &exitError{code: 1, err: fmt.Errorf("ca init: %w", err)}
				}
				opts.Parent = parent
				if !cmd.Flags().Changed("trust-domain") {
					opts.TrustDomain = ""
				}
			}
			c, err := ca.Init(dir, opts)
			if errors.Is(err, ca.ErrExists) {
				return &exitError{code: 1, err: err}
			}
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("ca init: %w", err)}
			}
			kind, files := "a root CA", ca.RootCertFile+", "+ca.RootKeyFile
			if opts.Parent != nil {
				kind, files = "an intermediate CA", strings.Join([]string{ca.CACertFile, ca.CAKeyFile, ca.CertChainFile, ca.RootCertFile}, ", ")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s for trust domain %s in %s (%s), valid until %s\n",
				kind, c.TrustDomain.Name(), dir, files, c.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to create the CA in")
	cmd.Flags().StringVar(&trustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain the CA issues identities in")
	cmd.Flags().DurationVar(&ttl, "ttl", ca.DefaultRootTTL, "lifetime of the root certificate")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing CA in --dir")
	cmd.Flags().StringVar(&parentDir, "parent", "", "directory of a CA to sign an intermediate CA with, instead of creating a root")
	return cmd
}

func newCAIssueCommand() *cobra.Command {
	var caDir, namespace, serviceAccount, out, trustDomain string
	var ttl time.Duration
	var dnsNames []string
	cmd := &cobra.Command{
		Use:   "issue --ca CADIR --namespace NS --service-account SA --out DIR",
		Short: "Issue a workload certificate for spiffe://TRUST_DOMAIN/ns/NS/sa/SA into DIR",
		Long: "issue writes cert-chain.pem, key.pem (mode 0600) and root-cert.pem into DIR, each replaced atomically, " +
			"so a running `meshentry run --identity-dir DIR` picks the new identity up for its next connections.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var missing []string
			for _, f := range []struct{ name, value string }{{"--ca", caDir}, {"--namespace", namespace}, {"--service-account", serviceAccount}, {"--out", out}} {
				if f.value == "" {
					missing = append(missing, f.name)
				}
			}
			if len(missing) > 0 {
				return usageError("ca issue: %s required", strings.Join(missing, ", "))
			}
			if sameDir(caDir, out) {
				// An intermediate CA's cert-chain.pem would be overwritten by the workload's.
				return usageError("ca issue: --out must not be the CA's directory %s", caDir)
			}
			c, err := ca.Open(caDir, trustDomain)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("ca issue: %w", err)}
			}
			if cmd.Flags().Changed("trust-domain") && c.TrustDomain.Name() != trustDomain {
				return usageError("ca issue: the CA in %s issues in trust domain %s, not %s", caDir, c.TrustDomain.Name(), trustDomain)
			}
			is, err := c.Issue(ca.IssueOptions{Namespace: namespace, ServiceAccount: serviceAccount, TTL: ttl, DNSNames: dnsNames})
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("ca issue: %w", err)}
			}
			if err := is.Write(out); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("ca issue: %w", err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "issued %s in %s (%s, %s, %s), valid until %s\n", is.ID, out,
				ca.CertChainFile, ca.KeyFile, ca.RootCertFile, is.Chain[0].NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&caDir, "ca", "", "directory of the CA (from meshentry ca init, or in the layout of Istio's cacerts secret)")
	cmd.Flags().StringVar(&namespace, "namespace", "", "the workload's namespace (the ns/ segment of its SPIFFE ID)")
	cmd.Flags().StringVar(&serviceAccount, "service-account", "", "the workload's service account (the sa/ segment of its SPIFFE ID)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write cert-chain.pem, key.pem and root-cert.pem to")
	cmd.Flags().DurationVar(&ttl, "ttl", ca.DefaultLeafTTL, "lifetime of the workload certificate (at most the CA's remaining lifetime)")
	cmd.Flags().StringSliceVar(&dnsNames, "dns", nil, "DNS name to add as a SAN beside the SPIFFE ID; repeatable or comma-separated")
	cmd.Flags().StringVar(&trustDomain, "trust-domain", ca.DefaultTrustDomain, "trust domain, used only when the CA's root names none (a root made by other tools)")
	return cmd
}

// sameDir reports whether two paths name the same directory (both absolute forms equal, or the
// same file once both exist).
func sameDir(a, b string) bool {
	if absA, err := filepath.Abs(a); err == nil {
		if absB, err := filepath.Abs(b); err == nil && absA == absB {
			return true
		}
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}
