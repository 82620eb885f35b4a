package registry

import (
	"fmt"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

// The Sidecar cases of Istio's TestSidecarRoutes (pilot/pkg/networking/core/sidecar_simulation_test.go),
// ported to what the Sidecar decides: which services a proxy routes to by host on port 80, and
// which VirtualServices it imports. Istio's expected virtual hosts follow from both: a service host
// appears when it is imported, and takes the route of an imported VirtualService naming it. Istio's
// Kubernetes Services become ServiceEntries with the same hosts, namespaces and ports.
const istioKnownServices = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: known, namespace: default}
spec:
  hosts: [known.default.svc.cluster.local]
  addresses: [2.0.0.0]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http2, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: alt-known, namespace: default}
spec:
  hosts: [alt-known.default.svc.cluster.local]
  addresses: [2.0.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http2, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: not-default, namespace: not-default}
spec:
  hosts: [not-default.not-default.svc.cluster.local]
  addresses: [2.0.0.2]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http2, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.3}]
`

// istioVS is Istio's vsArgs: an http route from match to dest in namespace ns.
func istioVS(ns, match, dest, created string) string {
	return fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: %q, namespace: %s, creationTimestamp: %q}\n"+
		"spec:\n  hosts: [%q]\n  http:\n  - route: [{destination: {host: %s}}]\n", ns+match+dest, ns, created, match, dest)
}

// istioSidecar is Istio's scArgs: a Sidecar in ns with one egress listener for hosts.
func istioSidecar(ns string, hosts ...string) string {
	out := fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: %s, namespace: %s}\nspec:\n  egress:\n  - hosts:\n", ns, ns)
	for _, h := range hosts {
		out += fmt.Sprintf("    - %q\n", h)
	}
	return out
}

func TestScopeAgreesWithIstioSidecarRoutes(t *testing.T) {
	t.Parallel()
	const older, newer = "2019-01-01T00:00:00Z", "2021-01-01T00:00:00Z"
	cases := []struct {
		name    string
		cfg     string
		proxyNS string
		// services maps a host to whether the proxy routes to its service on port 80.
		services map[string]bool
		// virtualServices maps a VirtualService name (ns+match+dest) to whether it is imported.
		virtualServices map[string]bool
	}{
		{
			name:            "wildcard match with sidecar: */*.cluster.local imports every service and the wildcard VirtualService",
			cfg:             istioVS("default", "*.cluster.local", "arbitrary.example.com", older) + istioSidecar("default", "*/*.cluster.local"),
			proxyNS:         "default",
			services:        map[string]bool{"known.default.svc.cluster.local": true, "alt-known.default.svc.cluster.local": true},
			virtualServices: map[string]bool{"default*.cluster.localarbitrary.example.com": true},
		},
		{
			name: "wildcard and explicit with sidecar: the wildcard VirtualService attaches though *.cluster.local is not imported",
			cfg: istioVS("default", "*.cluster.local", "wild.example.com", older) + istioVS("default", "known.default.svc.cluster.local", "explicit.example.com", newer) +
				istioSidecar("default", "default/known.default.svc.cluster.local", "default/alt-known.default.svc.cluster.local"),
			proxyNS:  "default",
			services: map[string]bool{"known.default.svc.cluster.local": true, "alt-known.default.svc.cluster.local": true, "not-default.not-default.svc.cluster.local": false},
			virtualServices: map[string]bool{"default*.cluster.localwild.example.com": true,
				"defaultknown.default.svc.cluster.localexplicit.example.com": true},
		},
		{
			name: "explicit first then wildcard with sidecar cross namespace: the other namespace's wildcard VirtualService is not imported",
			cfg: istioVS("not-default", "*.cluster.local", "wild.example.com", older) + istioVS("default", "known.default.svc.cluster.local", "explicit.example.com", newer) +
				istioSidecar("default", "default/known.default.svc.cluster.local", "default/alt-known.default.svc.cluster.local"),
			proxyNS:  "default",
			services: map[string]bool{"known.default.svc.cluster.local": true, "alt-known.default.svc.cluster.local": true},
			virtualServices: map[string]bool{"not-default*.cluster.localwild.example.com": false,
				"defaultknown.default.svc.cluster.localexplicit.example.com": true},
		},
		{
			name:            "wildcard match with explicit sidecar: */known imports one service and the wildcard VirtualService over it",
			cfg:             istioVS("default", "*.cluster.local", "arbitrary.example.com", older) + istioSidecar("default", "*/known.default.svc.cluster.local"),
			proxyNS:         "default",
			services:        map[string]bool{"known.default.svc.cluster.local": true, "alt-known.default.svc.cluster.local": false},
			virtualServices: map[string]bool{"default*.cluster.localarbitrary.example.com": true},
		},
		{
			name: "non-service wildcard match with explicit sidecar: a VirtualService for *.example.org comes in through explicit.example.org",
			cfg: istioVS("default", "*.example.org", "arbitrary.example.com", older) +
				istioSidecar("default", "*/explicit.example.org", "*/alt-known.default.svc.cluster.local"),
			proxyNS:         "default",
			services:        map[string]bool{"known.default.svc.cluster.local": false, "alt-known.default.svc.cluster.local": true},
			virtualServices: map[string]bool{"default*.example.orgarbitrary.example.com": true},
		},
		{
			name: "sidecar filter: only the Sidecar namespace's imports count",
			cfg: istioVS("not-default", "*.default.svc.cluster.local", "arbitrary.example.com", older) +
				istioVS("default", "explicit.default.svc.cluster.local", "explicit.default.svc.cluster.local", older) +
				istioSidecar("not-default", "not-default/*.default.svc.cluster.local", "not-default/not-default.not-default.svc.cluster.local"),
			proxyNS: "not-default",
			services: map[string]bool{"known.default.svc.cluster.local": false, "alt-known.default.svc.cluster.local": false,
				"not-default.not-default.svc.cluster.local": true},
			virtualServices: map[string]bool{"not-default*.default.svc.cluster.localarbitrary.example.com": true,
				"defaultexplicit.default.svc.cluster.localexplicit.default.svc.cluster.local": false},
		},
		{
			name:     "import only an unknown service route: nothing is imported on the port",
			cfg:      istioVS("default", "foo.default.svc.cluster.local", "example.com", older) + istioSidecar("default", "*/foo.default.svc.cluster.local"),
			proxyNS:  "default",
			services: map[string]bool{"known.default.svc.cluster.local": false, "alt-known.default.svc.cluster.local": false, "not-default.not-default.svc.cluster.local": false},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := snapshotOf(t, istioKnownServices+tc.cfg)
			sc := NewScope(snap, ScopeProxy{Namespace: tc.proxyNS, RootNamespace: "istio-system"})
			for host, want := range tc.services {
				m := snap.Match(Query{Namespace: tc.proxyNS, Host: host, Port: 80, Protocol: TrafficHTTP, Scope: sc}, false)
				if got := m.Outcome == Matched; got != want {
					t.Errorf("%s on port 80: routed %v, want %v", host, got, want)
				}
			}
			byName := map[string]*config.Document{}
			for _, d := range snap.Documents {
				if d.VirtualService() != nil {
					byName[d.Name] = d
				}
			}
			for name, want := range tc.virtualServices {
				d := byName[name]
				if d == nil {
					t.Fatalf("no VirtualService %q", name)
				}
				if got := sc.ImportsVirtualService(d, 80); got != want {
					t.Errorf("VirtualService %s imported %v, want %v", name, got, want)
				}
			}
		})
	}
}
