package registry

import (
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

// FuzzScope builds a scope from any Sidecar, VirtualService and ServiceEntry text the decoder
// accepts and matches a host under it: nothing may panic, and a host the scope lets the proxy see
// must be one exportTo shows.
func FuzzScope(f *testing.F) {
	f.Add(scopeEntries+sidecarDoc("s", "team", "  egress:\n  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [\"*/*.wild.example.com\"]\n  - hosts: [./*, \"~/*\"]\n"), "x.wild.example.com", uint16(443))
	f.Add(scopeEntries+sidecarDoc("s", "team", "  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress.proxy.internal, subset: a, port: {number: 3128}}}\n"), "nowhere.example.com", uint16(80))
	f.Add("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v, namespace: team}\nspec:\n  hosts: [\"*\"]\n  tcp: [{route: [{destination: {host: \"*.x\"}}]}]\n"+
		sidecarDoc("s", "team", "  egress:\n  - hosts: [\"*/*\", \"./\", \"/\", \"a/b/c\"]\n"), "*.x", uint16(0))
	f.Fuzz(func(t *testing.T, yaml, host string, port uint16) {
		order := 0
		docs, _ := config.Decode("fuzz.yaml", strings.NewReader(yaml), "team", &order)
		snap := Build(docs, 1)
		sc := NewScope(snap, ScopeProxy{Namespace: "team", Labels: map[string]string{"app": "a"}, RootNamespace: "istio-system"})
		for _, proto := range []Traffic{TrafficAny, TrafficHTTP, TrafficTLS, TrafficTCP} {
			m := snap.Match(Query{Namespace: "team", Host: host, Port: uint32(port), Protocol: proto, Scope: sc}, false)
			if m.Outcome == Matched && m.By != ByEgressProxy && !m.Service.VisibleTo("team") {
				t.Fatalf("matched %s, which exportTo hides from team", m.Service.Host)
			}
			snap.Match(Query{Namespace: "team", Host: host, Port: uint32(port), Protocol: proto, Scope: sc.Clusters()}, true)
		}
		snap.VisibleHost(host, sc, "team")
		for _, d := range docs {
			sc.ImportsVirtualService(d, uint32(port))
		}
		for _, svc := range snap.Services {
			_ = sc.Excluded(svc, uint32(port))
		}
	})
}
