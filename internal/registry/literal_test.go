package registry

import (
	"net/netip"
	"testing"
)

// Examples 03 and 05 of the reference (wildcard NONE entries) plus a NONE entry with a VIP and one
// with a CIDR: the shapes an IP literal smuggled into a host name tried to reach.
const literalConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-svc-redirect}
spec:
  hosts: [wikipedia.org, "*.wikipedia.org"]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-svc-wildcard-example}
spec:
  hosts: ["*.bar.com"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vip}
spec:
  hosts: [vip.internal]
  addresses: [10.20.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: range}
spec:
  hosts: [range.internal]
  addresses: [10.30.0.0/16]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: NONE
`

func TestMatchNeverLetsAnIPLiteralMatchAHostEntry(t *testing.T) {
	t.Parallel()
	s := snapshotOf(t, literalConfig)
	tests := []struct {
		name        string
		query       Query
		wantCluster string
	}{
		{name: "refuses an IPv4-mapped address with a zone under a wildcard HTTP host", query: Query{Host: "::ffff:127.0.0.1%.bar.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "refuses the same in brackets", query: Query{Host: "[::ffff:127.0.0.1%.bar.com]", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "refuses a percent-encoded zone", query: Query{Host: "::ffff:127.0.0.1%25.bar.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "refuses a zone under a wildcard TLS host in a CONNECT", query: Query{Host: "::ffff:127.0.0.1%.wikipedia.org", Port: 443}, wantCluster: BlackHoleCluster},
		{name: "refuses a zone in an SNI", query: Query{Host: "::1%.wikipedia.org", Port: 443, Protocol: TrafficTLS}, wantCluster: BlackHoleCluster},
		{name: "refuses a zone that names a declared VIP", query: Query{Host: "10.20.0.1%.bar.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "refuses a zone on an address inside a declared CIDR", query: Query{Host: "::ffff:10.30.0.5%x", Port: 5432}, wantCluster: BlackHoleCluster},
		{name: "refuses a decimal IPv4 spelling", query: Query{Host: "2130706433", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "refuses a wildcard-looking host", query: Query{Host: "*.bar.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "refuses a name ending in a numeric label", query: Query{Host: "www.bar.com.0177", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "refuses userinfo left in a host", query: Query{Host: "user@www.bar.com", Port: 80, Protocol: TrafficHTTP}, wantCluster: BlackHoleCluster},
		{name: "still matches a name under the wildcard", query: Query{Host: "WWW.Bar.com.", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||*.bar.com"},
		{name: "still accepts a single-IP VIP as the HTTP Host", query: Query{Host: "10.20.0.1", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||vip.internal"},
		{name: "accepts the VIP with a trailing dot", query: Query{Host: "10.20.0.1.", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||vip.internal"},
		{name: "accepts the VIP in its IPv4-mapped form", query: Query{Host: "::ffff:10.20.0.1", Port: 80, Protocol: TrafficHTTP}, wantCluster: "outbound|80||vip.internal"},
		{name: "matches a CONNECT to an address inside a declared CIDR", query: Query{Host: "10.30.1.2", Port: 5432}, wantCluster: "outbound|5432||range.internal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.query
			q.Namespace = "default"
			if m := s.Match(q, false); m.Cluster != tc.wantCluster {
				t.Fatalf("Match(%q) cluster = %q, want %q", q.Host, m.Cluster, tc.wantCluster)
			}
		})
	}
	t.Run("LookupHost finds nothing for a zone under a wildcard", func(t *testing.T) {
		if svc := s.LookupHost("::ffff:127.0.0.1%.bar.com", 80, "default"); svc != nil {
			t.Fatalf("found %s", svc.Host)
		}
	})
}

func TestIsHostName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want bool
	}{
		{host: "www.bar.com", want: true},
		{host: "a-b_c.example", want: true},
		{host: "1password.com", want: true},
		{host: "", want: false},
		{host: "127.0.0.1", want: false},
		{host: "0177.0.0.1", want: false},
		{host: "0x7f.1", want: false},
		{host: "2130706433", want: false},
		{host: "::1", want: false},
		{host: "[::1]", want: false},
		{host: "::ffff:127.0.0.1%.bar.com", want: false},
		{host: "a..b", want: false},
		{host: ".bar.com", want: false},
		{host: "*.bar.com", want: false},
		{host: "WWW.bar.com", want: false},
	}
	for _, tc := range tests {
		if got := IsHostName(tc.host); got != tc.want {
			t.Errorf("IsHostName(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestParseIPLiteral(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{in: "10.0.0.1", want: "10.0.0.1", wantOK: true},
		{in: "[::1]", want: "::1", wantOK: true},
		{in: "::1%eth0", wantOK: false},
		{in: "[fe80::1%25eth0]", wantOK: false},
		{in: "www.bar.com", wantOK: false},
		{in: "0177.0.0.1", wantOK: false},
	}
	for _, tc := range tests {
		a, ok := ParseIPLiteral(tc.in)
		if ok != tc.wantOK || ok && a != netip.MustParseAddr(tc.want) {
			t.Errorf("ParseIPLiteral(%q) = %v, %v; want %s, %v", tc.in, a, ok, tc.want, tc.wantOK)
		}
	}
}

func TestBuildReadsDynamicDNSAndIgnoresItsEndpoints(t *testing.T) {
	t.Parallel()
	s := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dynamic}
spec:
  hosts: ["*.dyn.example"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DYNAMIC_DNS
  endpoints: [{address: 10.0.0.1}]
`)
	svc := s.Services[0]
	if svc.Resolution != ResolutionDynamicDNS || svc.Resolution.String() != "DYNAMIC_DNS" {
		t.Fatalf("resolution %v (%d)", svc.Resolution, svc.Resolution)
	}
	if n := len(svc.Ports[0].Endpoints); n != 0 {
		t.Fatalf("%d endpoints, want none: DYNAMIC_DNS resolves the requested name", n)
	}
	if got := Resolution(200).String(); got != "UNKNOWN" {
		t.Fatalf("an unknown resolution prints %q", got)
	}
}
