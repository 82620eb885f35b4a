package route

import (
	"net/netip"
	"os"
	"testing"
)

// example reads one of the reference examples.
func example(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("/work/shared/spec/examples/" + name)
	if err != nil {
		t.Skipf("reference example not available: %v", err)
	}
	return string(b)
}

const bindingEntries = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hosts: [a.example.com, b.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.wild.com"]
  resolution: NONE
  ports: [{number: 8080, name: http, protocol: HTTP}]
---
`
const bindingVSs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: older, namespace: other, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hosts: [a.example.com]
  http: [{route: [{destination: {host: a.example.com, subset: older}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: newer, namespace: default, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  hosts: [a.example.com]
  http: [{route: [{destination: {host: a.example.com, subset: newer}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: other}
spec:
  hosts: [b.example.com]
  exportTo: ["."]
  http: [{route: [{destination: {host: b.example.com, subset: private}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: labelled, namespace: default}
spec:
  hosts: ["x.wild.com"]
  http:
  - match: [{sourceLabels: {app: web}}]
    route: [{destination: {host: x.wild.com, subset: web}}]
  - route: [{destination: {host: x.wild.com, subset: rest}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external, namespace: default}
spec:
  hosts: [google.com]
  http: [{route: [{destination: {host: a.example.com}}]}]
`

func TestBinding(t *testing.T) {
	t.Parallel()
	snap := snapshot(t, bindingEntries+bindingVSs)
	tests := []struct {
		name   string
		proxy  Proxy
		host   string
		port   uint32
		wantCl string // "" for no route
	}{
		{name: "the oldest VirtualService wins a host whatever its namespace", proxy: Proxy{Namespace: "default"}, host: "a.example.com", port: 80, wantCl: "outbound|80|older|a.example.com"},
		{name: "a VirtualService exported to its own namespace binds there", proxy: Proxy{Namespace: "other"}, host: "b.example.com", port: 80, wantCl: "outbound|80|private|b.example.com"},
		{name: "a VirtualService exported to its own namespace does not bind elsewhere", proxy: Proxy{Namespace: "default"}, host: "b.example.com", port: 80},
		{name: "an exact VirtualService host under a wildcard service binds on port 80 only", proxy: Proxy{Namespace: "default"}, host: "x.wild.com", port: 8080},
		{name: "a host no service declares binds on port 80", proxy: Proxy{Namespace: "default"}, host: "google.com", port: 80, wantCl: "outbound|80||a.example.com"},
		{name: "sourceLabels that hold pick the labelled rule", proxy: Proxy{Namespace: "default", Labels: map[string]string{"app": "web"}}, host: "x.wild.com", port: 80, wantCl: "outbound|80|web|x.wild.com"},
		{name: "sourceLabels that do not hold skip the rule", proxy: Proxy{Namespace: "default", Labels: map[string]string{"app": "db"}}, host: "x.wild.com", port: 80, wantCl: "outbound|80|rest|x.wild.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			table := Build(snap, tc.proxy)
			r := table.HTTP(&Request{Host: tc.host, Port: tc.port, Method: "GET", Path: []byte("/")})
			if binds := table.Binds(tc.host, tc.port); binds != (r != nil) {
				t.Errorf("Binds(%s, %d) = %v, but HTTP routed %v", tc.host, tc.port, binds, r)
			}
			switch {
			case tc.wantCl == "" && r != nil:
				t.Fatalf("got %s → %s, want no route", r, r.Pick(0).Cluster)
			case tc.wantCl == "":
			case r == nil || r.NotFound:
				t.Fatalf("got %v, want %s", r, tc.wantCl)
			case r.Pick(0).Cluster != tc.wantCl:
				t.Fatalf("cluster %s, want %s", r.Pick(0).Cluster, tc.wantCl)
			}
		})
	}
}

func TestTLSRouteOfExample03(t *testing.T) {
	t.Parallel()
	table := Build(snapshot(t, example(t, "03-external-svc-redirect.yaml")), Proxy{Namespace: "default"})
	tests := []struct {
		name   string
		sni    string
		port   uint32
		wantCl string
	}{
		{name: "the SNI en.wikipedia.org lands on the egress firewall", sni: "en.wikipedia.org", port: 443, wantCl: "outbound|443||internal-egress-firewall.ns1.svc.cluster.local"},
		{name: "the bare domain lands on the egress firewall", sni: "wikipedia.org", port: 443, wantCl: "outbound|443||internal-egress-firewall.ns1.svc.cluster.local"},
		{name: "another SNI gets no tls route", sni: "example.org", port: 443},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := table.TLS(tc.sni, tc.port, netip.MustParseAddr("198.51.100.7"), "")
			if tc.wantCl == "" {
				if r != nil {
					t.Fatalf("got %v, want none", r.Pick(0))
				}
				return
			}
			if r == nil || r.Pick(0).Cluster != tc.wantCl {
				t.Fatalf("got %+v, want %s", r, tc.wantCl)
			}
		})
	}
}

func TestGatewayRoutingOfExample04(t *testing.T) {
	t.Parallel()
	snap := snapshot(t, example(t, "04-egress-gateway.yaml"))
	tests := []struct {
		name   string
		proxy  Proxy
		gw     string
		wantCl string
	}{
		{name: "a sidecar in egress sends httpbin.com to the egress gateway", proxy: Proxy{Namespace: "egress"}, wantCl: "outbound|80||istio-egressgateway.istio-system.svc.cluster.local"},
		{name: "the gateway sends httpbin.com to httpbin.com", proxy: Proxy{Namespace: "istio-system", Labels: map[string]string{"istio": "egressgateway"}, Gateways: []string{"istio-system/istio-egressgateway"}}, gw: "istio-system/istio-egressgateway", wantCl: "outbound|80||httpbin.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Build(snap, tc.proxy).HTTP(&Request{Host: "httpbin.com", Port: 80, Method: "GET", Path: []byte("/get"), Gateway: tc.gw})
			if r == nil || r.NotFound {
				t.Fatalf("got %v, want %s", r, tc.wantCl)
			}
			if c := r.Pick(0).Cluster; c != tc.wantCl {
				t.Fatalf("cluster %s, want %s", c, tc.wantCl)
			}
		})
	}
}

func TestTCPRoutes(t *testing.T) {
	t.Parallel()
	const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  addresses: [10.1.0.0/16]
  resolution: NONE
  ports: [{number: 5432, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  tcp:
  - match: [{destinationSubnets: [10.1.2.0/24]}]
    route: [{destination: {host: db.example.com, subset: near}}]
  - route:
    - {destination: {host: db.example.com, subset: a}, weight: 75}
    - {destination: {host: db.example.com, subset: b}, weight: 25}
`
	table := Build(snapshot(t, yaml), Proxy{Namespace: "default"})
	tests := []struct {
		name    string
		dst     string
		port    uint32
		pick    uint32
		wantCl  string
		wantNil bool
	}{
		{name: "a destination inside the match subnet takes the first rule", dst: "10.1.2.9", port: 5432, wantCl: "outbound|5432|near|db.example.com"},
		{name: "another address of the service takes the weighted rule", dst: "10.1.9.9", port: 5432, pick: 10, wantCl: "outbound|5432|a|db.example.com"},
		{name: "the weighted rule gives the last quarter to b", dst: "10.1.9.9", port: 5432, pick: 80, wantCl: "outbound|5432|b|db.example.com"},
		{name: "an address outside the service gets no tcp route", dst: "192.0.2.1", port: 5432, wantNil: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := table.TCP(tc.port, netip.MustParseAddr(tc.dst), "")
			if tc.wantNil {
				if r != nil {
					t.Fatalf("got %+v, want none", r.Pick(0))
				}
				return
			}
			if r == nil || r.Pick(tc.pick).Cluster != tc.wantCl {
				t.Fatalf("got %+v, want %s", r, tc.wantCl)
			}
		})
	}
}

func TestGatewayMergesVirtualServicesForOneHost(t *testing.T) {
	t.Parallel()
	const yaml = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: {istio: egressgateway}
  servers:
  - {port: {number: 8080, name: http, protocol: HTTP}, hosts: ["apps/*.example.com"]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: first, namespace: apps, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hosts: [a.example.com]
  gateways: [edge/gw]
  http: [{match: [{uri: {prefix: /one}}], route: [{destination: {host: one.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second, namespace: apps, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  hosts: [a.example.com]
  gateways: [edge/gw]
  http: [{route: [{destination: {host: two.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: elsewhere, namespace: other}
spec:
  hosts: [b.example.com]
  gateways: [edge/gw]
  http: [{route: [{destination: {host: three.example.com}}]}]
`
	table := Build(snapshot(t, yaml), Proxy{Namespace: "edge", Gateways: []string{"edge/gw"}})
	tests := []struct {
		name, host, path, want string
	}{
		{name: "the older VirtualService's rule comes first", host: "a.example.com", path: "/one", want: "outbound|8080||one.example.com"},
		{name: "the newer VirtualService's rules follow", host: "a.example.com", path: "/two", want: "outbound|8080||two.example.com"},
		{name: "a server host for namespace apps does not bind a VirtualService elsewhere", host: "b.example.com", path: "/", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := table.HTTP(&Request{Host: tc.host, Port: 8080, Method: "GET", Path: []byte(tc.path), Gateway: "edge/gw"})
			switch {
			case tc.want == "" && r != nil:
				t.Fatalf("got %v, want no route", r)
			case tc.want == "":
			case r == nil || r.NotFound || r.Pick(0).Cluster != tc.want:
				t.Fatalf("got %v, want %s", r, tc.want)
			}
		})
	}
}

func TestL4BlocksNeedGatewaysAndLabelsBoth(t *testing.T) {
	t.Parallel()
	const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  resolution: NONE
  ports: [{number: 5432, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  tcp:
  - match: [{gateways: [mesh], sourceLabels: {app: api}}]
    route: [{destination: {host: db.example.com, subset: api}}]
  - route: [{destination: {host: db.example.com, subset: rest}}]
`
	snap := snapshot(t, yaml)
	tests := []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{name: "a proxy with the labels at the mesh takes the first rule", labels: map[string]string{"app": "api"}, want: "outbound|5432|api|db.example.com"},
		{name: "a proxy without the labels falls to the second rule though the gateway holds", labels: map[string]string{"app": "web"}, want: "outbound|5432|rest|db.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Build(snap, Proxy{Namespace: "default", Labels: tc.labels}).TCP(5432, netip.MustParseAddr("192.0.2.10"), "")
			if r == nil || r.Pick(0).Cluster != tc.want {
				t.Fatalf("got %+v, want %s", r, tc.want)
			}
		})
	}
}
