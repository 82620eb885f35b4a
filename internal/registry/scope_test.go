package registry

import (
	"strings"
	"testing"
)

// scopeEntries declares hosts in three namespaces: team (the proxy's), other and shared.
const scopeEntries = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: own, namespace: team}
spec:
  hosts: [own.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: foreign, namespace: other}
spec:
  hosts: [foreign.example.com, "*.wild.example.com"]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: common, namespace: shared}
spec:
  hosts: [common.example.com, api.wild.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: gateway, namespace: shared}
spec:
  hosts: [egress.proxy.internal]
  ports: [{number: 3128, name: proxy, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`

func sidecarDoc(name, ns, spec string) string {
	return "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec:\n" + spec
}

func TestScopeNarrowsWhatTheProxyImports(t *testing.T) {
	t.Parallel()
	type probe struct {
		host string
		port uint32
		want string // the matched service's namespace/host, or "" for none
	}
	cases := []struct {
		name    string
		sidecar string
		labels  map[string]string
		probes  []probe
	}{
		{
			name:   "imports every visible host when no Sidecar applies",
			probes: []probe{{"own.example.com", 80, "team/own.example.com"}, {"foreign.example.com", 80, "other/foreign.example.com"}},
		},
		{
			name:    "a ./host import takes the proxy's own namespace only",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - hosts: [./own.example.com, ./foreign.example.com]\n"),
			probes:  []probe{{"own.example.com", 80, "team/own.example.com"}, {"foreign.example.com", 80, ""}},
		},
		{
			name:    "an ns/host import takes that host from that namespace",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - hosts: [other/foreign.example.com]\n"),
			probes:  []probe{{"foreign.example.com", 80, "other/foreign.example.com"}, {"own.example.com", 80, ""}, {"common.example.com", 80, ""}},
		},
		{
			name:    "a */host import takes the host from any namespace",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - hosts: [\"*/common.example.com\"]\n"),
			probes:  []probe{{"common.example.com", 80, "shared/common.example.com"}, {"foreign.example.com", 80, ""}},
		},
		{
			name:    "a ~/* import takes nothing",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - hosts: [\"~/*\"]\n"),
			probes:  []probe{{"own.example.com", 80, ""}, {"common.example.com", 80, ""}},
		},
		{
			name:    "a wildcard egress host imports the hosts and wildcards under it",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - hosts: [\"*/*.wild.example.com\"]\n"),
			probes:  []probe{{"x.wild.example.com", 80, "other/*.wild.example.com"}, {"api.wild.example.com", 80, "shared/api.wild.example.com"}, {"common.example.com", 80, ""}},
		},
		{
			name:    "an exact egress host does not import a wildcard service that covers it",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - hosts: [\"*/x.wild.example.com\"]\n"),
			probes:  []probe{{"x.wild.example.com", 80, ""}},
		},
		{
			name:    "a namespace's own import that misses falls back to the */ imports",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - hosts: [shared/nothing.example.com, \"*/common.example.com\"]\n"),
			probes:  []probe{{"common.example.com", 80, "shared/common.example.com"}},
		},
		{
			name: "an egress listener with a port narrows that port only",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - port: {number: 443, protocol: TLS, name: tls}\n    hosts: [other/foreign.example.com]\n"+
				"  - hosts: [./own.example.com]\n"),
			probes: []probe{{"foreign.example.com", 443, "other/foreign.example.com"}, {"own.example.com", 443, ""},
				{"own.example.com", 80, "team/own.example.com"}, {"foreign.example.com", 80, ""}},
		},
		{
			name:    "without a catch-all listener the ports no listener declares import nothing",
			sidecar: sidecarDoc("s", "team", "  egress:\n  - port: {number: 443, protocol: TLS, name: tls}\n    hosts: [\"*/*\"]\n"),
			probes:  []probe{{"own.example.com", 443, "team/own.example.com"}, {"own.example.com", 80, ""}},
		},
		{
			name: "a workloadSelector that matches the labels beats the namespace default",
			sidecar: sidecarDoc("default", "team", "  egress:\n  - hosts: [./*]\n") +
				sidecarDoc("picky", "team", "  workloadSelector: {labels: {app: picky}}\n  egress:\n  - hosts: [shared/*]\n"),
			labels: map[string]string{"app": "picky", "version": "v1"},
			probes: []probe{{"common.example.com", 80, "shared/common.example.com"}, {"own.example.com", 80, ""}},
		},
		{
			name: "a workloadSelector that does not match leaves the namespace default",
			sidecar: sidecarDoc("default", "team", "  egress:\n  - hosts: [./*]\n") +
				sidecarDoc("picky", "team", "  workloadSelector: {labels: {app: picky}}\n  egress:\n  - hosts: [shared/*]\n"),
			labels: map[string]string{"app": "other"},
			probes: []probe{{"common.example.com", 80, ""}, {"own.example.com", 80, "team/own.example.com"}},
		},
		{
			name:    "the root namespace's default applies where the namespace has none, with . meaning the proxy's namespace",
			sidecar: sidecarDoc("default", "istio-system", "  egress:\n  - hosts: [./*]\n"),
			probes:  []probe{{"own.example.com", 80, "team/own.example.com"}, {"common.example.com", 80, ""}},
		},
		{
			name:    "a root namespace Sidecar with a workloadSelector does not apply to other namespaces",
			sidecar: sidecarDoc("picky", "istio-system", "  workloadSelector: {labels: {app: a}}\n  egress:\n  - hosts: [\"~/*\"]\n"),
			labels:  map[string]string{"app": "a"},
			probes:  []probe{{"own.example.com", 80, "team/own.example.com"}},
		},
		{
			name:    "a Sidecar in another namespace does not apply",
			sidecar: sidecarDoc("default", "other", "  egress:\n  - hosts: [\"~/*\"]\n"),
			probes:  []probe{{"own.example.com", 80, "team/own.example.com"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := snapshotOf(t, scopeEntries+tc.sidecar)
			sc := NewScope(snap, ScopeProxy{Namespace: "team", Labels: tc.labels, RootNamespace: "istio-system"})
			for _, pr := range tc.probes {
				proto := TrafficHTTP
				if pr.port == 443 {
					proto = TrafficTLS
				}
				m := snap.Match(Query{Namespace: "team", Host: pr.host, Port: pr.port, Protocol: proto, Scope: sc}, false)
				got := ""
				if m.Outcome == Matched {
					got = m.Service.Namespace + "/" + m.Service.Host
				}
				if got != pr.want {
					t.Errorf("%s:%d matched %q, want %q (scope: %s)", pr.host, pr.port, got, pr.want, sc.Why)
				}
				if pr.want == "" && m.Outcome != BlackHole {
					t.Errorf("%s:%d outcome %v, want BlackHole under REGISTRY_ONLY", pr.host, pr.port, m.Outcome)
				}
			}
		})
	}
}

func TestScopeOutboundTrafficPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		spec        string
		flag        bool
		wantOutcome Outcome
		wantCluster string
	}{
		{name: "REGISTRY_ONLY overrides an ALLOW_ANY flag", spec: "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n", flag: true,
			wantOutcome: BlackHole, wantCluster: BlackHoleCluster},
		{name: "ALLOW_ANY overrides a REGISTRY_ONLY flag", spec: "  outboundTrafficPolicy: {mode: ALLOW_ANY}\n", flag: false,
			wantOutcome: Passthrough, wantCluster: PassthroughCluster},
		{name: "no outboundTrafficPolicy leaves the flag", spec: "  egress:\n  - hosts: [\"*/*\"]\n", flag: true,
			wantOutcome: Passthrough, wantCluster: PassthroughCluster},
		{name: "an egressProxy takes unmatched traffic under ALLOW_ANY",
			spec:        "  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: egress.proxy.internal, port: {number: 3128}}\n",
			wantOutcome: Matched, wantCluster: "outbound|3128||egress.proxy.internal"},
		{name: "an egressProxy keeps its subset in the cluster name",
			spec:        "  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: egress.proxy.internal, subset: v1, port: {number: 3128}}\n",
			wantOutcome: Matched, wantCluster: "outbound|3128|v1|egress.proxy.internal"},
		{name: "an egressProxy no ServiceEntry declares refuses the traffic",
			spec:        "  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: nowhere.internal, port: {number: 3128}}\n",
			wantOutcome: BlackHole, wantCluster: BlackHoleCluster},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := snapshotOf(t, scopeEntries+sidecarDoc("default", "team", tc.spec))
			sc := NewScope(snap, ScopeProxy{Namespace: "team", RootNamespace: "istio-system"})
			m := snap.Match(Query{Namespace: "team", Host: "unknown.example.org", Port: 443, Protocol: TrafficTLS, Scope: sc}, tc.flag)
			if m.Outcome != tc.wantOutcome || m.Cluster != tc.wantCluster {
				t.Fatalf("outcome %v cluster %q, want %v %q", m.Outcome, m.Cluster, tc.wantOutcome, tc.wantCluster)
			}
			if m.Outcome == Matched && (m.By != ByEgressProxy || m.Service.Host != "egress.proxy.internal" || m.Port.Number != 3128) {
				t.Fatalf("matched %s:%d by %v, want the egress proxy's service port", m.Service.Host, m.Port.Number, m.By)
			}
		})
	}
}

func TestScopeImportsTheDestinationsOfItsVirtualServices(t *testing.T) {
	t.Parallel()
	vs := `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-common, namespace: team}
spec:
  hosts: [own.example.com]
  tls:
  - match: [{sniHosts: [own.example.com]}]
    route: [{destination: {host: common.example.com, port: {number: 443}}}]
`
	snap := snapshotOf(t, scopeEntries+vs+sidecarDoc("default", "team", "  egress:\n  - hosts: [./own.example.com]\n"))
	sc := NewScope(snap, ScopeProxy{Namespace: "team", RootNamespace: "istio-system"})
	cases := []struct {
		name  string
		scope *Scope
		host  string
		port  uint32
		want  bool
	}{
		{name: "the route's destination has a cluster", scope: sc.Clusters(), host: "common.example.com", port: 443, want: true},
		{name: "the route's destination gets no route of its own", scope: sc, host: "common.example.com", port: 443, want: false},
		{name: "no cluster on a port the route does not name", scope: sc.Clusters(), host: "common.example.com", port: 80, want: false},
		{name: "the egress host itself has a cluster", scope: sc.Clusters(), host: "own.example.com", port: 443, want: true},
		{name: "a host neither the Sidecar nor a route names has no cluster", scope: sc.Clusters(), host: "foreign.example.com", port: 443, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filter{ns: "team", port: tc.port, scope: tc.scope}
			if svc, _ := snap.lookupHost(tc.host, &f); (svc != nil) != tc.want {
				t.Fatalf("%s:%d found %v, want found=%v", tc.host, tc.port, svc != nil, tc.want)
			}
		})
	}
}

func TestVisibleHostAnswersForTheDNSProxy(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(t, scopeEntries+sidecarDoc("default", "team", "  egress:\n  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [\"*/*.wild.example.com\"]\n  - hosts: [./*]\n"))
	sc := NewScope(snap, ScopeProxy{Namespace: "team", RootNamespace: "istio-system"})
	cases := []struct {
		host string
		want string
	}{
		{host: "Own.Example.com.", want: "own.example.com"},
		{host: "x.wild.example.com", want: "*.wild.example.com"},
		{host: "common.example.com", want: ""},
		{host: "10.0.0.1", want: ""},
	}
	for _, tc := range cases {
		got := ""
		if svc := snap.VisibleHost(tc.host, sc, "team"); svc != nil {
			got = svc.Host
		}
		if got != tc.want {
			t.Errorf("VisibleHost(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}

func TestScopeExplainsWhatItLeavesOut(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(t, scopeEntries+sidecarDoc("narrow", "team", "  egress:\n  - hosts: [./own.example.com]\n"))
	sc := NewScope(snap, ScopeProxy{Namespace: "team", RootNamespace: "istio-system"})
	if !strings.Contains(sc.Why, "default (no workloadSelector) of namespace team") {
		t.Errorf("Why = %q", sc.Why)
	}
	var foreign *Service
	for _, svc := range snap.Services {
		if svc.Host == "foreign.example.com" {
			foreign = svc
		}
	}
	why := sc.Excluded(foreign, 80)
	for _, want := range []string{"Sidecar team/narrow (test.yaml:", "egress[0]", "catch-all", "other/foreign.example.com", "team/own.example.com"} {
		if !strings.Contains(why, want) {
			t.Errorf("Excluded = %q, want it to name %q", why, want)
		}
	}
}

func TestMatchUnderAScopeAllocatesNothing(t *testing.T) {
	snap := snapshotOf(t, scopeEntries+sidecarDoc("s", "team", "  egress:\n  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [other/*]\n  - hosts: [./*]\n"))
	sc := NewScope(snap, ScopeProxy{Namespace: "team", RootNamespace: "istio-system"})
	q := Query{Namespace: "team", Host: "foreign.example.com", Port: 443, Protocol: TrafficTLS, Scope: sc}
	if m := snap.Match(q, false); m.Outcome != Matched {
		t.Fatalf("outcome %v, want matched", m.Outcome)
	}
	if n := testing.AllocsPerRun(200, func() { snap.Match(q, false) }); n != 0 {
		t.Fatalf("Match allocates %v times per call under a scope", n)
	}
}

func TestImportsHostIsTheRouteTablesImportHook(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(t, scopeEntries+sidecarDoc("s", "team", "  egress:\n  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [other/foreign.example.com]\n  - hosts: [./*.team.example.com, \"*/common.example.com\"]\n"))
	sc := NewScope(snap, ScopeProxy{Namespace: "team", RootNamespace: "istio-system"})
	cases := []struct {
		name      string
		namespace string
		host      string
		want      bool
	}{
		{name: "a host a port listener imports", namespace: "other", host: "foreign.example.com", want: true},
		{name: "the same host from another namespace", namespace: "shared", host: "foreign.example.com", want: false},
		{name: "a */ import from any namespace", namespace: "elsewhere", host: "Common.Example.com.", want: true},
		{name: "a VirtualService wildcard host that covers an egress host", namespace: "team", host: "*.example.com", want: true},
		{name: "a name under a ./ wildcard", namespace: "team", host: "api.team.example.com", want: true},
		{name: "a host nothing names", namespace: "team", host: "own.example.com", want: false},
	}
	for _, tc := range cases {
		if got := sc.ImportsHost(tc.namespace, tc.host); got != tc.want {
			t.Errorf("%s: ImportsHost(%q, %q) = %v, want %v", tc.name, tc.namespace, tc.host, got, tc.want)
		}
	}
	if NewScope(snapshotOf(t, scopeEntries), ScopeProxy{Namespace: "team"}).ImportFunc() != nil {
		t.Error("ImportFunc is set though no Sidecar narrows anything")
	}
}
