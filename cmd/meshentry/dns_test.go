package main

import (
	"net"
	"net/netip"
	"path/filepath"
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

func TestRunDNSListen(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	up.Set("outside.test", 60, "192.0.2.10")
	state := filepath.Join(t.TempDir(), "vips.json")
	bound, log := startAdminRun(t, dnsRunConfig, func(f *runFlags) {
		f.dns.listen = "127.0.0.1:0"
		f.dns.vipState = state
		f.dnsServer = up.Addr
	})
	addr := bound["dns"].String()
	v4 := netip.MustParsePrefix("240.240.0.0/16")
	v6 := netip.MustParsePrefix("2001:2::/48")

	t.Run("gives each address-less host its own allocated IPv4 and IPv6 address", func(t *testing.T) {
		a := answerIPs(dnsAsk(t, "udp", addr, "a.db.test", dns.TypeA))
		b := answerIPs(dnsAsk(t, "udp", addr, "b.db.test", dns.TypeA))
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
		r := dnsAsk(t, "udp", addr, "declared.test", dns.TypeAAAA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Fatalf("AAAA declared.test = %s with %d answers, want NOERROR and none", dns.RcodeToString[r.Rcode], len(r.Answer))
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
	t.Run("listens on UDP and TCP on one port", func(t *testing.T) {
		if _, port, _ := net.SplitHostPort(addr); port == "0" || !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("dns bound %s", addr)
		}
	})
}
