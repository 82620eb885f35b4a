package registry

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/vip"
)

// declaredRangeConfig has one entry owning most of the allocation range on a port and hosts
// on the same port that need an allocated address.
const declaredRangeConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: owner}
spec:
  hosts: [owner.db.test]
  addresses: [240.240.0.0/25, 240.240.0.200/30]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: others}
spec:
  hosts: [a.db.test, b.db.test, c.db.test, d.db.test, e.db.test, f.db.test, g.db.test, h.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.2}]
`

// TestAllocatedAddressesNeverTakeADeclaredOnesTraffic builds with a real allocator whose range
// is mostly declared by another entry: every allocated address must still route to its own
// host, and every declared one to the entry that declares it.
func TestAllocatedAddressesNeverTakeADeclaredOnesTraffic(t *testing.T) {
	t.Parallel()
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(declaredRangeConfig), "default", &order)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	alloc, err := vip.New(vip.Config{V4: netip.MustParsePrefix("240.240.0.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	s := Build(docs, 1, WithAutoAddresses(func(hosts []string, avoid []netip.Prefix) map[string][]netip.Addr {
		out := map[string][]netip.Addr{}
		for h, a := range alloc.Allocate(hosts, avoid...) {
			out[h] = []netip.Addr{a.V4, a.V6}
		}
		return out
	}))
	match := func(ip netip.Addr) string {
		m := s.Match(Query{Namespace: "default", IP: ip, Port: 9000, Protocol: TrafficTCP}, false)
		if m.Service == nil {
			return ""
		}
		return m.Service.Host
	}
	allocated := 0
	for _, svc := range s.Services {
		if !svc.AutoAllocated {
			continue
		}
		for _, p := range svc.Addresses {
			allocated++
			if got := match(p.Addr()); got != svc.Host {
				t.Errorf("%s was given %s, which routes to %q", svc.Host, p.Addr(), got)
			}
		}
	}
	if allocated != 16 {
		t.Fatalf("%d addresses allocated, want an IPv4 and an IPv6 one for each of 8 hosts", allocated)
	}
	for i := 0; i < 256; i++ {
		ip := netip.AddrFrom4([4]byte{240, 240, 0, byte(i)})
		declared := i < 128 || (i >= 200 && i < 204)
		if got := match(ip); declared && got != "owner.db.test" {
			t.Errorf("declared %s routes to %q, want owner.db.test", ip, got)
		}
	}
}
