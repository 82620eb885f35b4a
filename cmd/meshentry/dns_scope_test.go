package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// The DNS proxy answers the hosts visible to the proxy, exportTo and the Sidecar's egress hosts
// both (issue 11), as Istio's name table holds only the sidecar scope's services. A host the
// Sidecar leaves out is forwarded upstream like any other name, and stays so across a reload.
func TestRunDNSAnswersOnlyTheSidecarsHosts(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	up.Set("b.db.test", 60, "192.0.2.20")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	sidecar := "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\n" +
		"spec:\n  egress:\n  - hosts: [./a.db.test, ./declared.test]\n"
	if err := os.WriteFile(cfg, []byte(dnsRunConfig+sidecar), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _, log := startDNSRun(t, cfg, filepath.Join(dir, "vips.json"), up.Addr)
	if got := answerIPs(dnsAsk(t, "udp", addr, "declared.test", dns.TypeA)); len(got) != 1 || got[0].String() != "10.9.8.7" {
		t.Fatalf("A declared.test = %v, want the declared 10.9.8.7 (imported by the Sidecar)\n%s", got, log)
	}
	if got := answerIPs(dnsAsk(t, "udp", addr, "b.db.test", dns.TypeA)); len(got) != 1 || got[0].String() != "192.0.2.20" {
		t.Fatalf("A b.db.test = %v, want the upstream's 192.0.2.20: the Sidecar does not import it\n%s", got, log)
	}
}

// explain --dns says what run's DNS proxy answers, so it narrows by the same Sidecar, which
// --labels and --namespace pick.
func TestExplainDNSFollowsTheSidecar(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	sidecar := "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: narrow, namespace: default}\n" +
		"spec:\n  workloadSelector: {labels: {app: db}}\n  egress:\n  - hosts: [./a.db.test]\n"
	if err := os.WriteFile(cfg, []byte(dnsRunConfig+sidecar), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, labels, want string
	}{
		{name: "answers a host the selected Sidecar imports", host: "a.db.test", labels: "app=db", want: "answer:       registry"},
		{name: "forwards a host the selected Sidecar leaves out", host: "b.db.test", labels: "app=db", want: "answer:       upstream"},
		{name: "answers it for a workload the Sidecar does not select", host: "b.db.test", labels: "app=web", want: "answer:       registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI("explain", "-f", cfg, "--labels", tt.labels, "--dns", tt.host)
			if code != 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("explain --dns %s --labels %s: exit %d\n%s%s\nwant %q", tt.host, tt.labels, code, out, errOut, tt.want)
			}
		})
	}
}
