package registry

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

// snapshotOf decodes YAML documents (separated by ---) and builds a snapshot, failing on any finding.
func snapshotOf(t testing.TB, yamlDocs string) *Snapshot {
	t.Helper()
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(yamlDocs), "default", &order)
	for _, d := range diags {
		t.Fatalf("decode: %s", d)
	}
	return Build(docs, 1)
}

const indexConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: exact, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hosts: [api.example.com, www.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wide-wildcard}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: narrow-wildcard}
spec:
  hosts: ["*.eu.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-range}
spec:
  hosts: [db.internal]
  addresses: [10.1.0.0/16]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-subnet}
spec:
  hosts: [db-eu.internal]
  addresses: [10.1.2.0/24]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-one}
spec:
  hosts: [db-primary.internal]
  addresses: [10.1.2.3, "fd00::5"]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.3}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: team-a}
spec:
  hosts: [private.example.net]
  exportTo: ["."]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden}
spec:
  hosts: [hidden.example.net]
  exportTo: ["~"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shared, namespace: team-b}
spec:
  hosts: [partner.example.net]
  exportTo: [team-c, "."]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`

func TestLookupHost(t *testing.T) {
	t.Parallel()
	s := snapshotOf(t, indexConfig)
	tests := []struct {
		name      string
		host      string
		port      uint32
		namespace string
		wantEntry string // "" when nothing matches
		wantHost  string
	}{
		{name: "finds an exact host", host: "api.example.com", port: 443, namespace: "default", wantEntry: "exact", wantHost: "api.example.com"},
		{name: "prefers an exact host over a wildcard that also covers it", host: "www.example.com", port: 443, namespace: "default", wantEntry: "exact", wantHost: "www.example.com"},
		{name: "falls back to a wildcard for an undeclared subdomain", host: "mail.example.com", port: 443, namespace: "default", wantEntry: "wide-wildcard", wantHost: "*.example.com"},
		{name: "lets a wildcard cover several labels", host: "a.b.c.example.com", port: 80, namespace: "default", wantEntry: "wide-wildcard", wantHost: "*.example.com"},
		{name: "picks the most specific wildcard", host: "paris.eu.example.com", port: 443, namespace: "default", wantEntry: "narrow-wildcard", wantHost: "*.eu.example.com"},
		{name: "skips a more specific wildcard that lacks the port", host: "paris.eu.example.com", port: 80, namespace: "default", wantEntry: "wide-wildcard"},
		{name: "does not let a wildcard match its own apex", host: "example.com", port: 443, namespace: "default"},
		{name: "misses a host nobody declares", host: "api.example.org", port: 443, namespace: "default"},
		{name: "misses a declared host on an undeclared port", host: "api.example.com", port: 8443, namespace: "default"},
		{name: "shows an exportTo-dot service to its own namespace", host: "private.example.net", port: 443, namespace: "team-a", wantEntry: "private"},
		{name: "hides an exportTo-dot service from other namespaces", host: "private.example.net", port: 443, namespace: "default"},
		{name: "hides an exportTo-tilde service from everyone", host: "hidden.example.net", port: 443, namespace: "default"},
		{name: "shows a service to a namespace it names", host: "partner.example.net", port: 443, namespace: "team-c", wantEntry: "shared"},
		{name: "shows a service with dot and names to its own namespace", host: "partner.example.net", port: 443, namespace: "team-b", wantEntry: "shared"},
		{name: "hides a service from namespaces it does not name", host: "partner.example.net", port: 443, namespace: "team-d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := s.LookupHost(tc.host, tc.port, tc.namespace)
			got := ""
			if svc != nil {
				got = svc.Entry
			}
			if got != tc.wantEntry {
				t.Fatalf("LookupHost(%q, %d, %q) = entry %q, want %q", tc.host, tc.port, tc.namespace, got, tc.wantEntry)
			}
			if tc.wantHost != "" && svc.Host != tc.wantHost {
				t.Fatalf("service host = %q, want %q", svc.Host, tc.wantHost)
			}
		})
	}
}

func TestLookupIP(t *testing.T) {
	t.Parallel()
	s := snapshotOf(t, indexConfig)
	tests := []struct {
		name      string
		ip        string
		port      uint32
		wantEntry string
	}{
		{name: "finds a single IP before the CIDRs that contain it", ip: "10.1.2.3", port: 5432, wantEntry: "db-one"},
		{name: "finds an IPv6 VIP", ip: "fd00::5", port: 5432, wantEntry: "db-one"},
		{name: "unmaps an IPv4-mapped IPv6 address", ip: "::ffff:10.1.2.3", port: 5432, wantEntry: "db-one"},
		{name: "prefers the longest prefix", ip: "10.1.2.9", port: 5432, wantEntry: "db-subnet"},
		{name: "falls back to the wider CIDR", ip: "10.1.99.1", port: 5432, wantEntry: "db-range"},
		{name: "misses an address outside every range", ip: "10.2.0.1", port: 5432},
		{name: "misses the right address on another port", ip: "10.1.2.3", port: 5433},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := s.LookupIP(netip.MustParseAddr(tc.ip), tc.port, "default")
			got := ""
			if svc != nil {
				got = svc.Entry
			}
			if got != tc.wantEntry {
				t.Fatalf("LookupIP(%s, %d) = %q, want %q", tc.ip, tc.port, got, tc.wantEntry)
			}
		})
	}
}

func TestBuildInstantiatesEndpoints(t *testing.T) {
	t.Parallel()
	s := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: remap}
spec:
  hosts: [a.example.com, b.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8000}
  - {number: 443, name: tls, protocol: TLS}
  - {number: 9000, name: admin}
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 8080}, weight: 0, locality: r1/z1/s1, network: n1}
  - {address: 127.0.0.2, weight: 3}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: by-name}
spec:
  hosts: [c.example.com, d.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sock}
spec:
  hosts: [sock.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: "unix:///run/sock"}]
`)
	t.Run("gives each host of an entry its own service", func(t *testing.T) {
		if got := len(s.Services); got != 5 {
			t.Fatalf("services = %d, want 5", got)
		}
	})
	a, b := s.LookupHost("a.example.com", 80, "x"), s.LookupHost("b.example.com", 80, "x")
	tests := []struct {
		name       string
		svc        *Service
		port       uint32
		wantDial   []string
		wantWeight []uint32
	}{
		{name: "uses the endpoint's own port for the port name, else targetPort", svc: a, port: 80, wantDial: []string{"127.0.0.1:8080", "127.0.0.2:8000"}, wantWeight: []uint32{1, 3}},
		{name: "falls back to the service port when neither is set", svc: a, port: 443, wantDial: []string{"127.0.0.1:443", "127.0.0.2:443"}, wantWeight: []uint32{1, 3}},
		{name: "serves a protocol-less port too", svc: b, port: 9000, wantDial: []string{"127.0.0.1:9000", "127.0.0.2:9000"}, wantWeight: []uint32{1, 3}},
		{name: "names DNS endpoints after the host when the entry has none", svc: s.LookupHost("d.example.com", 80, "x"), port: 80, wantDial: []string{"d.example.com:80"}, wantWeight: []uint32{1}},
		{name: "dials unix sockets by path without a port", svc: s.LookupHost("sock.local", 80, "x"), port: 80, wantDial: []string{"/run/sock"}, wantWeight: []uint32{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.svc.Port(tc.port)
			if p == nil {
				t.Fatalf("no port %d", tc.port)
			}
			var dials []string
			var weights []uint32
			for _, ep := range p.Endpoints {
				dials = append(dials, ep.Dial())
				weights = append(weights, ep.Weight)
			}
			if strings.Join(dials, ",") != strings.Join(tc.wantDial, ",") {
				t.Fatalf("dial = %v, want %v", dials, tc.wantDial)
			}
			for i := range weights {
				if weights[i] != tc.wantWeight[i] {
					t.Fatalf("weights = %v, want %v", weights, tc.wantWeight)
				}
			}
		})
	}
	t.Run("names clusters as Istio does", func(t *testing.T) {
		if got := a.Port(80).Cluster; got != "outbound|80||a.example.com" {
			t.Fatalf("cluster = %q", got)
		}
	})
}
