package registry

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

const autoConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-a, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hosts: [a.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-b, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  hosts: [b.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: not-eligible}
spec:
  hosts: ["*.wild.test", web.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: opted-out, labels: {networking.istio.io/enable-autoallocate-ip: "false"}}
spec:
  hosts: [opted-out.test]
  ports: [{number: 9200, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none}
spec:
  hosts: [none.test]
  ports: [{number: 9100, name: tcp, protocol: TCP}]
  resolution: NONE
`

func TestAutoAddressesMatchAsDeclared(t *testing.T) {
	t.Parallel()
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(autoConfig), "default", &order)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	vips := map[string]netip.Addr{"a.db.test": netip.MustParseAddr("240.240.0.1"), "b.db.test": netip.MustParseAddr("240.240.0.2")}
	var asked []string
	s := Build(docs, 1, WithAutoAddresses(func(hosts []string, _ []netip.Prefix) map[string][]netip.Addr {
		asked = hosts
		out := map[string][]netip.Addr{}
		for _, h := range hosts {
			out[h] = []netip.Addr{vips[h]}
		}
		return out
	}))
	if strings.Join(asked, ",") != "a.db.test,b.db.test" {
		t.Fatalf("asked for %v: only address-less TCP hosts not resolved NONE nor opted out get an address", asked)
	}
	plain := Build(docs, 1)
	cases := []struct {
		name string
		snap *Snapshot
		ip   string
		want string
		by   MatchedBy
	}{
		{name: "routes a connection to a's address to a", snap: s, ip: "240.240.0.1", want: "a.db.test", by: ByIP},
		{name: "routes a connection to b's address to b", snap: s, ip: "240.240.0.2", want: "b.db.test", by: ByIP},
		{name: "routes another address on the port to neither, as Istio's VIP listeners do", snap: s, ip: "192.0.2.1"},
		{name: "without allocation gives the port to the oldest entry (the clash)", snap: plain, ip: "240.240.0.2", want: "a.db.test", by: ByPort},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.snap.Match(Query{Namespace: "default", IP: netip.MustParseAddr(tc.ip), Port: 9000, Protocol: TrafficTCP}, false)
			got := ""
			if m.Service != nil {
				got = m.Service.Host
			}
			if got != tc.want || m.By != tc.by {
				t.Fatalf("matched %q by %v, want %q by %v", got, m.By, tc.want, tc.by)
			}
		})
	}
	if svc := s.LookupIP(netip.MustParseAddr("240.240.0.1"), 9000, "default"); svc == nil || !svc.AutoAllocated {
		t.Fatalf("LookupIP of an allocated address = %v, want a.db.test marked AutoAllocated", svc)
	}
}
