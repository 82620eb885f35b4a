package vip

import (
	"net/netip"
	"testing"
)

func TestAllocateAvoidsDeclaredAddresses(t *testing.T) {
	t.Parallel()
	pfx := netip.MustParsePrefix
	cases := []struct {
		name   string
		v4, v6 netip.Prefix
		avoid  []netip.Prefix
		hosts  int
		// want4 and want6 say every host must still get an address of that family.
		want4, want6 bool
	}{
		{name: "a declared half of the IPv4 range is skipped", v4: pfx("240.240.0.0/24"), avoid: []netip.Prefix{pfx("240.240.0.0/25")}, hosts: 100, want4: true, want6: true},
		{name: "scattered declared addresses and ranges are skipped", v4: pfx("240.240.0.0/24"),
			avoid: []netip.Prefix{pfx("240.240.0.7/32"), pfx("240.240.0.16/28"), pfx("240.240.0.200/29"), pfx("2001:2::/120")}, hosts: 200, want4: true, want6: true},
		{name: "a declared range wider than the IPv4 range leaves no IPv4 address", v4: pfx("240.240.0.0/24"), avoid: []netip.Prefix{pfx("240.0.0.0/8")}, hosts: 5, want6: true},
		{name: "a declared /64 covering the IPv6 slots leaves no IPv6 address", v4: pfx("240.240.0.0/24"), v6: pfx("2001:2::/48"), avoid: []netip.Prefix{pfx("2001:2::/64")}, hosts: 5, want4: true},
		{name: "a declared range of another family changes nothing", v4: pfx("240.240.0.0/24"), avoid: []netip.Prefix{pfx("::ffff:240.240.0.0/120")}, hosts: 50, want4: true, want6: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := mustNew(t, Config{V4: tc.v4, V6: tc.v6})
			got := a.Allocate(hostsN(tc.hosts, "h"), tc.avoid...)
			checkUnique(t, a, got, tc.want4, tc.want6)
			for h, ad := range got {
				for _, q := range tc.avoid {
					if q.Contains(ad.V4) || q.Contains(ad.V6) {
						t.Fatalf("%s got %v, inside the declared %s", h, ad, q)
					}
				}
			}
		})
	}
}

func TestAllocateMovesAHostOutOfANewlyDeclaredRange(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{V4: netip.MustParsePrefix("240.240.0.0/24")})
	hosts := hostsN(20, "h")
	before := a.Allocate(hosts)
	victim := hosts[3]
	declared := netip.PrefixFrom(before[victim].V4, 32)
	after := a.Allocate(hosts, declared)
	checkUnique(t, a, after, true, true)
	if after[victim].V4 == before[victim].V4 {
		t.Fatalf("%s kept %s, which another entry now declares", victim, before[victim].V4)
	}
	if after[victim].V6 != before[victim].V6 {
		t.Fatalf("%s lost its IPv6 address %s, which nobody declares", victim, before[victim].V6)
	}
	for _, h := range hosts {
		if h != victim && after[h] != before[h] {
			t.Fatalf("%s moved from %v to %v though nothing declared its address", h, before[h], after[h])
		}
	}
}
