package capture

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// index returns the position of the first rule containing every part, -1 when none does.
func index(rules []string, parts ...string) int {
	return slices.IndexFunc(rules, func(r string) bool {
		for _, p := range parts {
			if !strings.Contains(r, p) {
				return false
			}
		}
		return true
	})
}

func TestRules(t *testing.T) {
	t.Parallel()
	v4only := Defaults()
	v4only.AllCIDRs, v4only.IncludeCIDRs = false, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	both := v4only
	both.IncludePorts = []PortRange{{First: 9000, Last: 9000}}
	noDNS := Defaults()
	noDNS.DNSPort = 0
	tests := []struct {
		name  string
		opts  Options
		fam   Family
		check func(t *testing.T, r Ruleset)
	}{
		{name: "exempts the proxy's UID and GID before anything is redirected", opts: Defaults(), fam: IPv4,
			check: func(t *testing.T, r Ruleset) {
				uid, gid := index(r.Rules, "--uid-owner 1337 -j RETURN"), index(r.Rules, "--gid-owner 1337 -j RETURN")
				first := min(index(r.Rules, ChainOutput+" ", "-j "+ChainDNSRedirect), index(r.Rules, ChainOutput+" ", "-j "+ChainRedirect))
				if uid < 0 || gid < 0 || uid > first || gid > first {
					t.Errorf("uid %d, gid %d, first redirect %d in\n%s", uid, gid, first, r.Restore())
				}
			}},
		{name: "captures DNS before leaving loopback alone, so a local stub resolver is captured", opts: Defaults(), fam: IPv4,
			check: func(t *testing.T, r Ruleset) {
				dns, lo := index(r.Rules, "-p udp --dport 53 -j "+ChainDNSRedirect), index(r.Rules, "-o lo -j RETURN")
				if dns < 0 || lo < 0 || dns > lo {
					t.Errorf("DNS at %d, loopback at %d in\n%s", dns, lo, r.Restore())
				}
			}},
		{name: "leaves the IPv6 loopback alone in the IPv6 rules", opts: Defaults(), fam: IPv6,
			check: func(t *testing.T, r Ruleset) {
				if index(r.Rules, "-d ::1/128 -j RETURN") < 0 || index(r.Rules, "127.0.0.0/8") >= 0 {
					t.Errorf("IPv6 rules:\n%s", r.Restore())
				}
			}},
		{name: "captures no IPv6 destination when only IPv4 CIDRs are included", opts: v4only, fam: IPv6,
			check: func(t *testing.T, r Ruleset) {
				if i := index(r.Rules, "-j "+ChainRedirect); i >= 0 {
					t.Errorf("rule %q redirects IPv6 TCP", r.Rules[i])
				}
			}},
		{name: "captures an included port only at included addresses", opts: both, fam: IPv4,
			check: func(t *testing.T, r Ruleset) {
				if index(r.Rules, "--dport 9000 -j "+ChainIncludeCIDRs) < 0 ||
					index(r.Rules, ChainIncludeCIDRs+" -d 10.0.0.0/8 -j "+ChainRedirect) < 0 {
					t.Errorf("rules:\n%s", r.Restore())
				}
			}},
		{name: "neither creates the DNS chain nor sends UDP to our chains without a DNS port", opts: noDNS, fam: IPv4,
			check: func(t *testing.T, r Ruleset) {
				if slices.Contains(r.Chains, ChainDNSRedirect) || index(r.Rules, "udp") >= 0 {
					t.Errorf("rules:\n%s", r.Restore())
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := Rules(tt.opts, tt.fam)
			for _, rule := range r.Rules {
				chain, _, _ := strings.Cut(rule, " ")
				if chain != "OUTPUT" && !slices.Contains(r.Chains, chain) {
					t.Errorf("rule %q is in a chain not declared", rule)
				}
				if tgt := target(rule); strings.HasPrefix(tgt, ChainPrefix) && !slices.Contains(r.Chains, tgt) {
					t.Errorf("rule %q jumps to a chain not declared", rule)
				}
			}
			tt.check(t, r)
		})
	}
}
