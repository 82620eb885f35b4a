package main

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// dnsRunConfig declares two address-less TCP entries on one port, which only the DNS proxy's
// allocated addresses tell apart, and one with a declared address.
const dnsRunConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-a, namespace: default}
spec:
  hosts: [a.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-b, namespace: default}
spec:
  hosts: [b.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: declared, namespace: default}
spec:
  hosts: [declared.test]
  addresses: [10.9.8.7]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.3}]
`

// dnsAsk sends one question to addr over net ("udp" or "tcp") and returns the answer.
func dnsAsk(t *testing.T, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := dns.Client{Net: network, Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("ask %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

// answerIPs lists the A and AAAA addresses of r.
func answerIPs(r *dns.Msg) []netip.Addr {
	var out []netip.Addr
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			a, _ := netip.AddrFromSlice(rr.A)
			out = append(out, a)
		case *dns.AAAA:
			a, _ := netip.AddrFromSlice(rr.AAAA)
			out = append(out, a)
		}
	}
	return out
}

// startDNSRun runs `run` on the config file with the DNS proxy, admin API and a small VIP
// range (so hash collisions are certain), until the test ends.
func startDNSRun(t *testing.T, cfg, state, upstream string) (dnsAddr, adminAddr string, log *syncBuffer) {
	t.Helper()
	log = &syncBuffer{}
	cmd := newRunCommand()
	cmd.SetOut(io.Discard)
	cmd.SetErr(log)
	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0",
		adminAddr: "127.0.0.1:0", policy: "REGISTRY_ONLY", logLevel: "info", dnsServer: upstream,
		reload: reloadFlags{debounce: 20 * time.Millisecond}}
	f.dns = dnsFlags{listen: "127.0.0.1:0", vipState: state, vipCIDR: "240.240.0.0/29", cacheSize: 100}
	m, err := launchRun(t, cmd, f, log)
	if err != nil {
		t.Fatalf("run returned before listening: %v\n%s", err, log)
	}
	return m["dns"].String(), m["admin"].String(), log
}

func TestRunDNSListen(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	up.Set("outside.test", 60, "192.0.2.10")
	dir := t.TempDir()
	cfg, state := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "vips.json")
	if err := os.WriteFile(cfg, []byte(dnsRunConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, adminAddr, log := startDNSRun(t, cfg, state, up.Addr)
	v4 := netip.MustParsePrefix("240.240.0.0/29")
	v6 := netip.MustParsePrefix("2001:2::/48")
	a := answerIPs(dnsAsk(t, "udp", addr, "a.db.test", dns.TypeA))
	b := answerIPs(dnsAsk(t, "udp", addr, "b.db.test", dns.TypeA))

	t.Run("gives each address-less host its own allocated IPv4 and IPv6 address", func(t *testing.T) {
		if len(a) != 1 || len(b) != 1 || !v4.Contains(a[0]) || !v4.Contains(b[0]) || a[0] == b[0] {
			t.Fatalf("A a.db.test = %v, b.db.test = %v; want one distinct address each in %s\n%s", a, b, v4, log)
		}
		a6 := answerIPs(dnsAsk(t, "tcp", addr, "a.db.test", dns.TypeAAAA))
		if len(a6) != 1 || !v6.Contains(a6[0]) {
			t.Fatalf("AAAA a.db.test = %v; want one address in %s", a6, v6)
		}
	})
	t.Run("answers a declared address as declared", func(t *testing.T) {
		got := answerIPs(dnsAsk(t, "udp", addr, "Declared.Test.", dns.TypeA))
		if len(got) != 1 || got[0] != netip.MustParseAddr("10.9.8.7") {
			t.Fatalf("A declared.test = %v, want [10.9.8.7]", got)
		}
	})
	t.Run("forwards other names to the upstream, NXDOMAIN included", func(t *testing.T) {
		got := answerIPs(dnsAsk(t, "udp", addr, "outside.test", dns.TypeA))
		if len(got) != 1 || got[0] != netip.MustParseAddr("192.0.2.10") {
			t.Fatalf("A outside.test = %v, want [192.0.2.10]", got)
		}
		if r := dnsAsk(t, "udp", addr, "missing.test", dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Fatalf("A missing.test = %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
		}
	})
	t.Run("lists the allocations on the admin API, in proxy-config and in the metrics", func(t *testing.T) {
		code, body := adminGet(t, http.MethodGet, mustTCPAddr(t, adminAddr), "/dns")
		if code != http.StatusOK || !strings.Contains(body, `"host": "a.db.test"`) || !strings.Contains(body, a[0].String()) {
			t.Fatalf("/dns: %d\n%s", code, body)
		}
		code, out, errOut := runCLI("proxy-config", "dns", "--admin", adminAddr)
		if code != 0 || !strings.Contains(out, "b.db.test") || !strings.Contains(out, b[0].String()) {
			t.Fatalf("proxy-config dns: exit %d\n%s%s", code, out, errOut)
		}
		_, metrics := adminGet(t, http.MethodGet, mustTCPAddr(t, adminAddr), "/stats/prometheus")
		for _, want := range []string{`meshentry_dns_proxy_queries_total{answer="registry"}`, `meshentry_dns_proxy_queries_total{answer="upstream"}`, "meshentry_dns_vip_allocations 2"} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
	t.Run("keeps each address across a reload that adds hosts contending for the same slots", func(t *testing.T) {
		more := dnsRunConfig + "---\n" + strings.NewReplacer("db-a", "db-c", "a.db.test", "c.db.test").Replace(dnsRunConfig[:strings.Index(dnsRunConfig, "---")]) +
			"---\n" + strings.NewReplacer("db-a", "db-0", "a.db.test", "0.db.test").Replace(dnsRunConfig[:strings.Index(dnsRunConfig, "---")])
		if err := os.WriteFile(cfg, []byte(more), 0o644); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, "c.db.test answers", func() bool {
			return len(answerIPs(dnsAsk(t, "udp", addr, "c.db.test", dns.TypeA))) == 1
		})
		if got := answerIPs(dnsAsk(t, "udp", addr, "a.db.test", dns.TypeA)); len(got) != 1 || got[0] != a[0] {
			t.Fatalf("a.db.test moved from %v to %v", a, got)
		}
	})
	t.Run("explains a connection to an allocated address with the run's state file", func(t *testing.T) {
		code, out, errOut := runCLI("explain", "-f", cfg, "--dns-vip-state", state, "--dns-vip-cidr", "240.240.0.0/29",
			"--ip", b[0].String(), "--port", "9000", "--protocol", "tcp")
		if code != 0 || !strings.Contains(out, "default/db-b (host b.db.test)") {
			t.Fatalf("explain --ip %s: exit %d\n%s%s", b[0], code, out, errOut)
		}
		code, out, _ = runCLI("explain", "-f", cfg, "--dns-vip-state", state, "--dns-vip-cidr", "240.240.0.0/29", "--dns", "a.db.test")
		if code != 0 || !strings.Contains(out, "A:            "+a[0].String()) {
			t.Fatalf("explain --dns a.db.test: exit %d\n%s", code, out)
		}
	})
}

// TestRunDNSRestartKeepsAddresses restarts run on the same state file with hosts added that
// sort first and contend for the same small range: the earlier hosts keep their addresses.
func TestRunDNSRestartKeepsAddresses(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	dir := t.TempDir()
	cfg, state := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "vips.json")
	if err := os.WriteFile(cfg, []byte(dnsRunConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	var before []netip.Addr
	t.Run("first run", func(t *testing.T) {
		addr, _, _ := startDNSRun(t, cfg, state, up.Addr)
		before = append(answerIPs(dnsAsk(t, "udp", addr, "a.db.test", dns.TypeA)), answerIPs(dnsAsk(t, "udp", addr, "b.db.test", dns.TypeA))...)
	})
	first := dnsRunConfig[:strings.Index(dnsRunConfig, "---")]
	var extra string
	for _, h := range []string{"0", "1", "2"} {
		extra += "---\n" + strings.NewReplacer("db-a", "db-"+h, "a.db.test", h+".db.test").Replace(first)
	}
	if err := os.WriteFile(cfg, []byte(dnsRunConfig+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _, log := startDNSRun(t, cfg, state, up.Addr)
	after := append(answerIPs(dnsAsk(t, "udp", addr, "a.db.test", dns.TypeA)), answerIPs(dnsAsk(t, "udp", addr, "b.db.test", dns.TypeA))...)
	if len(before) != 2 || !slices.Equal(before, after) {
		t.Fatalf("a.db.test and b.db.test were %v, after the restart %v\n%s", before, after, log)
	}
}

func mustTCPAddr(t *testing.T, s string) net.Addr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
