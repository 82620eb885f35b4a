package registry

import (
	"net/netip"
	"testing"
)

const matchConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hosts: [web.example.com, "*.web.example.com"]
  addresses: [10.9.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-sni}
spec:
  hosts: [secure.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-vip}
spec:
  hosts: [vip.example.com]
  addresses: [10.9.1.1]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-cidr}
spec:
  hosts: [range.example.com]
  addresses: [10.9.2.0/24]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo}
spec:
  hosts: [mongo.internal]
  addresses: [10.9.3.0/24]
  ports: [{number: 27018, name: mongo, protocol: MONGO}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-old, creationTimestamp: "2023-01-01T00:00:00Z"}
spec:
  hosts: [old.tcp.internal]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-new, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  hosts: [new.tcp.internal]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: auto}
spec:
  hosts: [auto.example.com]
  ports: [{number: 7000, name: app}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-default, namespace: default, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  hosts: [api.shared.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-team, namespace: team, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hosts: [api.shared.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`

func TestMatch(t *testing.T) {
	t.Parallel()
	s := snapshotOf(t, matchConfig)
	tests := []struct {
		name        string
		query       Query
		allowAny    bool
		wantCluster string
		wantBy      MatchedBy
		// wantNamespace, when set, is the namespace of the entry that must win.
		wantNamespace string
	}{
		{name: "routes plaintext HTTP by Host", query: Query{Host: "web.example.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||web.example.com", wantBy: ByHost},
		{name: "ignores case and a trailing dot in the Host", query: Query{Host: "WEB.example.com.", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||web.example.com", wantBy: ByHost},
		{name: "keeps the wildcard in the cluster name", query: Query{Host: "a.web.example.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||*.web.example.com", wantBy: ByHost},
		{name: "accepts a VIP as the Host of an HTTP service", query: Query{Host: "10.9.0.1", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||web.example.com", wantBy: ByHost},
		{name: "routes HTTP by Host whatever IP the application dialled", query: Query{Host: "web.example.com", IP: netip.MustParseAddr("10.200.0.1"), Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||web.example.com", wantBy: ByHost},
		{name: "refuses an unknown Host under REGISTRY_ONLY", query: Query{Host: "evil.example.org", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "passes an unknown Host through under ALLOW_ANY", query: Query{Host: "evil.example.org", Port: 80, Protocol: TrafficHTTP}, allowAny: true, wantCluster: PassthroughCluster},
		{name: "routes TLS by SNI on an address-less entry", query: Query{Host: "secure.example.com", Port: 443, Protocol: TrafficTLS}, wantCluster: "outbound|443||secure.example.com", wantBy: BySNI},
		{name: "routes TLS to a single VIP by destination IP whatever the SNI", query: Query{Host: "other.example.com", IP: netip.MustParseAddr("10.9.1.1"), Port: 443, Protocol: TrafficTLS}, wantCluster: "outbound|443||vip.example.com", wantBy: ByIP},
		{name: "does not route SNI to a service that owns a single VIP", query: Query{Host: "vip.example.com", IP: netip.MustParseAddr("10.200.0.1"), Port: 443, Protocol: TrafficTLS}, wantCluster: BlackHoleCluster},
		{name: "lets the CIDR pick candidates and the SNI choose", query: Query{Host: "range.example.com", IP: netip.MustParseAddr("10.9.2.7"), Port: 443, Protocol: TrafficTLS}, wantCluster: "outbound|443||range.example.com", wantBy: BySNI},
		{name: "routes TLS by SNI to a CIDR entry from outside its range", query: Query{Host: "range.example.com", Port: 443, Protocol: TrafficTLS}, wantCluster: "outbound|443||range.example.com", wantBy: BySNI},
		{name: "routes opaque TCP by CIDR", query: Query{IP: netip.MustParseAddr("10.9.3.200"), Port: 27018, Protocol: TrafficTCP}, wantCluster: "outbound|27018||mongo.internal", wantBy: ByCIDR},
		{name: "refuses TCP to an address outside the CIDR", query: Query{IP: netip.MustParseAddr("10.9.4.1"), Port: 27018, Protocol: TrafficTCP}, wantCluster: BlackHoleCluster},
		{name: "gives an address-less TCP port to the oldest entry", query: Query{IP: netip.MustParseAddr("10.200.0.1"), Port: 9000, Protocol: TrafficTCP}, wantCluster: "outbound|9000||old.tcp.internal", wantBy: ByPort},
		{name: "routes HTTP on a TCP-only port as TCP", query: Query{Host: "anything", IP: netip.MustParseAddr("10.200.0.1"), Port: 9000, Protocol: TrafficHTTP}, wantCluster: "outbound|9000||old.tcp.internal", wantBy: ByPort},
		{name: "routes HTTP on a protocol-less port by Host", query: Query{Host: "auto.example.com", Port: 7000, Protocol: TrafficHTTP}, wantCluster: "outbound|7000||auto.example.com", wantBy: ByHost},
		{name: "routes opaque bytes on a protocol-less port by port", query: Query{IP: netip.MustParseAddr("10.200.0.1"), Port: 7000, Protocol: TrafficTCP}, wantCluster: "outbound|7000||auto.example.com", wantBy: ByPort},
		{name: "does not give opaque TCP to an HTTP-only port", query: Query{IP: netip.MustParseAddr("10.200.0.1"), Port: 80, Protocol: TrafficTCP}, wantCluster: BlackHoleCluster},
		{name: "does not give opaque TCP to a TLS-only port", query: Query{IP: netip.MustParseAddr("10.200.0.1"), Port: 443, Protocol: TrafficTCP}, wantCluster: BlackHoleCluster},
		{name: "matches a CONNECT authority against any port family", query: Query{Host: "secure.example.com", Port: 443}, wantCluster: "outbound|443||secure.example.com", wantBy: ByHost},
		{name: "gives the workload's own namespace its own declaration", query: Query{Namespace: "team", Host: "api.shared.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||api.shared.com", wantBy: ByHost, wantNamespace: "team"},
		{name: "gives other namespaces the oldest declaration", query: Query{Namespace: "elsewhere", Host: "api.shared.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||api.shared.com", wantBy: ByHost, wantNamespace: "default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.query
			if q.Namespace == "" {
				q.Namespace = "default"
			}
			m := s.Match(q, tc.allowAny)
			if m.Cluster != tc.wantCluster {
				t.Fatalf("cluster = %q, want %q", m.Cluster, tc.wantCluster)
			}
			if m.By != tc.wantBy {
				t.Fatalf("matched by %v, want %v", m.By, tc.wantBy)
			}
			if tc.wantNamespace != "" && m.Service.Namespace != tc.wantNamespace {
				t.Fatalf("namespace = %q, want %q", m.Service.Namespace, tc.wantNamespace)
			}
		})
	}
}

const contestConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-old, namespace: shared, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  hosts: [db-old.internal]
  addresses: [10.5.0.1]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-new, namespace: team, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hosts: [db-new.internal]
  addresses: [10.5.0.1]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ours, namespace: team}
spec:
  hosts: [api.partner.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: theirs, namespace: other}
spec:
  hosts: [api.partner.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: range-a}
spec:
  hosts: [a.range.internal]
  addresses: [10.6.0.0/24]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: range-b}
spec:
  hosts: [b.range.internal]
  addresses: [10.6.0.0/24]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anywhere}
spec:
  hosts: [anywhere.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: opaque}
spec:
  hosts: [opaque.internal]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.internal]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: DNS
`

func TestMatchContests(t *testing.T) {
	t.Parallel()
	s := snapshotOf(t, contestConfig)
	tests := []struct {
		name        string
		query       Query
		wantCluster string
	}{
		{name: "gives a contested VIP to the oldest entry even in another namespace", query: Query{Namespace: "team", IP: netip.MustParseAddr("10.5.0.1"), Port: 5432, Protocol: TrafficTCP}, wantCluster: "outbound|5432||db-old.internal"},
		{name: "ignores another namespace's declaration of a host the workload's namespace declares", query: Query{Namespace: "team", Host: "api.partner.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "uses the other namespace's declaration where the workload's namespace has none", query: Query{Namespace: "third", Host: "api.partner.com", Port: 443, Protocol: TrafficTLS}, wantCluster: "outbound|443||api.partner.com"},
		{name: "lets the SNI choose among the services of a CIDR", query: Query{IP: netip.MustParseAddr("10.6.0.9"), Host: "b.range.internal", Port: 443, Protocol: TrafficTLS}, wantCluster: "outbound|443||b.range.internal"},
		{name: "does not fall back from a CIDR to an address-less SNI match", query: Query{IP: netip.MustParseAddr("10.6.0.9"), Host: "anywhere.example.com", Port: 443, Protocol: TrafficTLS}, wantCluster: BlackHoleCluster},
		{name: "routes SNI to an address-less entry from any other address", query: Query{IP: netip.MustParseAddr("10.7.0.9"), Host: "anywhere.example.com", Port: 443, Protocol: TrafficTLS}, wantCluster: "outbound|443||anywhere.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.query
			if q.Namespace == "" {
				q.Namespace = "default"
			}
			if m := s.Match(q, false); m.Cluster != tc.wantCluster {
				t.Fatalf("cluster = %q, want %q", m.Cluster, tc.wantCluster)
			}
		})
	}
	t.Run("says which listener plaintext HTTP meets", func(t *testing.T) {
		cases := []struct {
			ip   string
			port uint32
			want bool
		}{
			{ip: "10.9.9.9", port: 8080, want: true},
			{ip: "10.9.9.9", port: 9000, want: false},
			{ip: "10.5.0.1", port: 5432, want: false},
			{ip: "10.9.9.9", port: 1234, want: false},
		}
		for _, c := range cases {
			if got := s.RoutesHTTPByHost(netip.MustParseAddr(c.ip), c.port, "default"); got != c.want {
				t.Errorf("RoutesHTTPByHost(%s, %d) = %v, want %v", c.ip, c.port, got, c.want)
			}
		}
	})
}
