package policy

import (
	"strings"
	"sync"
	"testing"

	"github.com/meshentry/meshentry/internal/registry"
)

// dr is a DestinationRule document; extra is more spec YAML indented by two spaces.
func dr(ns, name, host, extra string) string {
	return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " + name + ", namespace: " + ns +
		"}\nspec:\n  host: " + host + "\n" + extra + "---\n"
}

// forCase is one lookup: the documents, the service and proxy, and the rule Istio would pick.
type forCase struct {
	name      string
	config    string
	svcNS     string
	host      string
	proxyNS   string
	labels    map[string]string
	wantRule  string // ns/name list, "" for none
	wantScope Scope
	wantWhy   string
}

var forCases = []forCase{
	{
		name:   "an exact host beats a wildcard in the same namespace",
		config: serviceEntry("default", "se", "api.example.com") + dr("default", "wild", "'*.example.com'", "") + dr("default", "exact", "api.example.com", ""),
		svcNS:  "default", host: "api.example.com", proxyNS: "default",
		wantRule: "default/exact", wantScope: ScopeProxy, wantWhy: "exact host api.example.com in namespace default (the proxy's own)",
	},
	{
		name: "the longest wildcard wins over shorter ones and over *",
		config: serviceEntry("default", "se", "a.b.example.com") + dr("default", "all", "'*'", "") +
			dr("default", "short", "'*.example.com'", "") + dr("default", "long", "'*.b.example.com'", ""),
		svcNS: "default", host: "a.b.example.com", proxyNS: "default",
		wantRule: "default/long", wantScope: ScopeProxy, wantWhy: "most specific host *.b.example.com",
	},
	{
		name:   "a wildcard does not cover its own apex",
		config: serviceEntry("default", "se", "example.com") + dr("default", "wild", "'*.example.com'", ""),
		svcNS:  "default", host: "example.com", proxyNS: "default",
		wantRule: "",
	},
	{
		name:   "a wildcard service host takes the rule for that same wildcard",
		config: serviceEntry("default", "se", "*.example.com") + dr("default", "short", "'*.com'", "") + dr("default", "same", "'*.example.com'", ""),
		svcNS:  "default", host: "*.example.com", proxyNS: "default",
		wantRule: "default/same", wantScope: ScopeProxy,
	},
	{
		name:   "a wildcard service host falls back to a broader wildcard rule",
		config: serviceEntry("default", "se", "*.example.com") + dr("default", "short", "'*.com'", ""),
		svcNS:  "default", host: "*.example.com", proxyNS: "default",
		wantRule: "default/short", wantScope: ScopeProxy,
	},
	{
		name: "the proxy's namespace is searched before the service's and the root",
		config: serviceEntry("svc", "se", "api.example.com") + dr("istio-system", "mesh", "api.example.com", "") +
			dr("svc", "owner", "api.example.com", "") + dr("client", "mine", "'*.example.com'", ""),
		svcNS: "svc", host: "api.example.com", proxyNS: "client",
		wantRule: "client/mine", wantScope: ScopeProxy,
	},
	{
		name:   "the service's namespace is searched before the root",
		config: serviceEntry("svc", "se", "api.example.com") + dr("istio-system", "mesh", "api.example.com", "") + dr("svc", "owner", "'*.example.com'", ""),
		svcNS:  "svc", host: "api.example.com", proxyNS: "client",
		wantRule: "svc/owner", wantScope: ScopeService, wantWhy: "in namespace svc (the service's, exported to the proxy's namespace)",
	},
	{
		name:   "the root namespace applies when nothing nearer does",
		config: serviceEntry("svc", "se", "api.example.com") + dr("istio-system", "mesh", "'*.example.com'", ""),
		svcNS:  "svc", host: "api.example.com", proxyNS: "client",
		wantRule: "istio-system/mesh", wantScope: ScopeRoot, wantWhy: "most specific host *.example.com in namespace istio-system (root)",
	},
	{
		name:   "a rule exported to . in the service's namespace is not seen from another namespace",
		config: serviceEntry("svc", "se", "api.example.com") + dr("svc", "private", "api.example.com", "  exportTo: [.]\n") + dr("istio-system", "mesh", "api.example.com", ""),
		svcNS:  "svc", host: "api.example.com", proxyNS: "client",
		wantRule: "istio-system/mesh", wantScope: ScopeRoot,
	},
	{
		name:   "a rule exported to . applies to proxies of its own namespace",
		config: serviceEntry("svc", "se", "api.example.com") + dr("svc", "private", "api.example.com", "  exportTo: [.]\n"),
		svcNS:  "svc", host: "api.example.com", proxyNS: "svc",
		wantRule: "svc/private", wantScope: ScopeProxy,
	},
	{
		name:   "a rule exported to a named namespace applies there",
		config: serviceEntry("svc", "se", "api.example.com") + dr("svc", "named", "api.example.com", "  exportTo: [client]\n"),
		svcNS:  "svc", host: "api.example.com", proxyNS: "client",
		wantRule: "svc/named", wantScope: ScopeService,
	},
	{
		name: "of two rules the service's namespace exports with different exportTo, the later one applies, as Istio's catch-all",
		config: serviceEntry("svc", "se", "api.example.com") + dr("svc", "public", "api.example.com", "  exportTo: ['*']\n") +
			dr("svc", "named", "api.example.com", "  exportTo: [client, other]\n"),
		svcNS: "svc", host: "api.example.com", proxyNS: "client",
		wantRule: "svc/named", wantScope: ScopeService,
	},
	{
		name:   "a rule exported to a named namespace does not apply elsewhere",
		config: serviceEntry("svc", "se", "api.example.com") + dr("svc", "named", "api.example.com", "  exportTo: [client]\n"),
		svcNS:  "svc", host: "api.example.com", proxyNS: "other",
		wantRule: "",
	},
	{
		name:   "a rule in a third namespace applies to nobody else",
		config: serviceEntry("svc", "se", "api.example.com") + dr("third", "elsewhere", "api.example.com", ""),
		svcNS:  "svc", host: "api.example.com", proxyNS: "client",
		wantRule: "",
	},
	{
		name:   "a private root rule applies to proxies in the root namespace",
		config: serviceEntry("svc", "se", "api.example.com") + dr("istio-system", "rootonly", "api.example.com", "  exportTo: [.]\n"),
		svcNS:  "svc", host: "api.example.com", proxyNS: "istio-system",
		wantRule: "istio-system/rootonly", wantScope: ScopeProxy, wantWhy: "the proxy's own, the root",
	},
	{
		name:   "a private root rule does not apply to other namespaces",
		config: serviceEntry("svc", "se", "api.example.com") + dr("istio-system", "rootonly", "api.example.com", "  exportTo: [.]\n"),
		svcNS:  "svc", host: "api.example.com", proxyNS: "client",
		wantRule: "",
	},
	{
		name: "a workloadSelector rule applies to a proxy whose labels match",
		config: serviceEntry("default", "se", "api.example.com") + dr("default", "all", "api.example.com", "") +
			dr("default", "picked", "api.example.com", "  workloadSelector: {matchLabels: {app: web}}\n"),
		svcNS: "default", host: "api.example.com", proxyNS: "default", labels: map[string]string{"app": "web", "v": "1"},
		wantRule: "default/picked", wantScope: ScopeProxy, wantWhy: "its workloadSelector app=web matches the proxy's labels",
	},
	{
		name: "a workloadSelector rule gives way to the catch-all for other labels",
		config: serviceEntry("default", "se", "api.example.com") + dr("default", "all", "api.example.com", "") +
			dr("default", "picked", "api.example.com", "  workloadSelector: {matchLabels: {app: web}}\n"),
		svcNS: "default", host: "api.example.com", proxyNS: "default", labels: map[string]string{"app": "db"},
		wantRule: "default/all", wantScope: ScopeProxy,
	},
	{
		name: "a workloadSelector rule that does not select the proxy hides the service's rules, as in Istio",
		config: serviceEntry("svc", "se", "api.example.com") + dr("svc", "owner", "api.example.com", "") +
			dr("client", "picked", "api.example.com", "  workloadSelector: {matchLabels: {app: web}}\n"),
		svcNS: "svc", host: "api.example.com", proxyNS: "client", labels: map[string]string{"app": "db"},
		wantRule: "",
	},
	{
		name:   "a workloadSelector rule is never exported to other namespaces",
		config: serviceEntry("svc", "se", "api.example.com") + dr("svc", "picked", "api.example.com", "  workloadSelector: {matchLabels: {app: web}}\n"),
		svcNS:  "svc", host: "api.example.com", proxyNS: "client", labels: map[string]string{"app": "web"},
		wantRule: "",
	},
	{
		name:   "a short host means name.namespace.svc.cluster.local",
		config: serviceEntry("svc", "se", "reviews.svc.svc.cluster.local") + dr("svc", "short", "reviews", ""),
		svcNS:  "svc", host: "reviews.svc.svc.cluster.local", proxyNS: "client",
		wantRule: "svc/short", wantScope: ScopeService,
	},
	{
		name:   "a rule's host matches case-insensitively",
		config: serviceEntry("default", "se", "api.example.com") + dr("default", "upper", "API.Example.com", ""),
		svcNS:  "default", host: "api.example.com", proxyNS: "default",
		wantRule: "default/upper", wantScope: ScopeProxy,
	},
}

func TestForChoosesTheRuleIstioWould(t *testing.T) {
	t.Parallel()
	tests := forCases
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			docs := decode(t, tt.config)
			snap := registry.Build(docs, 1)
			x := Build(docs, "")
			a, ok := x.For(service(t, snap, tt.svcNS, tt.host), 80, Proxy{Namespace: tt.proxyNS, Labels: tt.labels})
			if got := sourceNames(a); got != tt.wantRule || ok != (tt.wantRule != "") {
				t.Fatalf("rule = %q (found %v), want %q", got, ok, tt.wantRule)
			}
			if !ok {
				return
			}
			if a.Scope != tt.wantScope {
				t.Errorf("scope = %d, want %d", a.Scope, tt.wantScope)
			}
			if !strings.Contains(a.Why(), tt.wantWhy) {
				t.Errorf("why = %q, want it to contain %q", a.Why(), tt.wantWhy)
			}
		})
	}
}

func TestRootNamespaceIsConfigurable(t *testing.T) {
	t.Parallel()
	docs := decode(t, serviceEntry("svc", "se", "api.example.com")+dr("mesh-root", "mesh", "api.example.com", "")+dr("istio-system", "old", "api.example.com", ""))
	snap := registry.Build(docs, 1)
	a, ok := Build(docs, "mesh-root").For(service(t, snap, "svc", "api.example.com"), 80, Proxy{Namespace: "client"})
	if !ok || sourceNames(a) != "mesh-root/mesh" || a.Scope != ScopeRoot {
		t.Fatalf("rule = %q (scope %d, found %v), want mesh-root/mesh from the root", sourceNames(a), a.Scope, ok)
	}
}

func TestLookupIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	docs := decode(t, serviceEntry("svc", "se", "a.b.example.com")+dr("svc", "one", "'*.example.com'", "")+
		dr("istio-system", "two", "'*.b.example.com'", "  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: SIMPLE}\n"))
	snap := registry.Build(docs, 1)
	svc := service(t, snap, "svc", "a.b.example.com")
	x := Build(docs, "")
	proxy := Proxy{Namespace: "client", Labels: map[string]string{"app": "x"}}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if a, ok := x.For(svc, uint32(80+j%2), proxy); !ok || sourceNames(a) != "svc/one" {
					t.Errorf("concurrent lookup got %q", sourceNames(a))
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestLookupDoesNotAllocate is not parallel: AllocsPerRun counts the whole process.
func TestLookupDoesNotAllocate(t *testing.T) {
	docs := decode(t, serviceEntry("svc", "se", "a.b.example.com")+dr("svc", "one", "'*.example.com'", "")+
		dr("client", "two", "'*.b.example.com'", "  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: SIMPLE}\n"))
	snap := registry.Build(docs, 1)
	svc := service(t, snap, "svc", "a.b.example.com")
	x := Build(docs, "")
	proxy := Proxy{Namespace: "client", Labels: map[string]string{"app": "x"}}
	for _, port := range []uint32{80, 443} {
		if allocs := testing.AllocsPerRun(100, func() { x.For(svc, port, proxy) }); allocs != 0 {
			t.Errorf("For(port %d) allocates %.0f times per lookup, want 0", port, allocs)
		}
	}
}
