package policy

import (
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/registry"
)

// mergeCase is several rules for one host and what a proxy gets from their merge.
type mergeCase struct {
	name        string
	config      string
	proxyNS     string
	labels      map[string]string
	wantRule    string
	wantSubsets []string
	wantLB      networking.LoadBalancerSettings_SimpleLB // of the top-level policy, 0 for none
}

var mergeCases = []mergeCase{
	{
		name: "subsets are joined and the older rule's traffic policy wins",
		config: serviceEntry("default", "se", "api.example.com") +
			dr("default", "newer", "api.example.com", "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  - {name: v1, labels: {v: '1b'}}\n  - {name: v2, labels: {v: '2'}}\n") +
			"# older by creationTimestamp though loaded second\n" +
			dr("default", "older", "api.example.com", "  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}\n  subsets:\n  - {name: v1, labels: {v: '1'}}\n"),
		proxyNS: "default", wantRule: "default/older,default/newer", wantSubsets: []string{"v1", "v2"},
		wantLB: networking.LoadBalancerSettings_LEAST_REQUEST,
	},
	{
		name: "a later rule's traffic policy is used when the first has none",
		config: serviceEntry("default", "se", "api.example.com") +
			dr("default", "first", "api.example.com", "  subsets:\n  - {name: v1, labels: {v: '1'}}\n") +
			dr("default", "second", "api.example.com", "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"),
		proxyNS: "default", wantRule: "default/first,default/second", wantSubsets: []string{"v1"},
		wantLB: networking.LoadBalancerSettings_RANDOM,
	},
	{
		name: "rules with different exportTo are kept apart",
		config: serviceEntry("default", "se", "api.example.com") +
			dr("default", "private", "api.example.com", "  exportTo: [.]\n  subsets:\n  - {name: v1, labels: {v: '1'}}\n") +
			dr("default", "public", "api.example.com", "  subsets:\n  - {name: v2, labels: {v: '2'}}\n"),
		proxyNS: "client", wantRule: "default/public", wantSubsets: []string{"v2"},
	},
	{
		name: "a private rule without selector is folded into a selector rule of the same exportTo",
		config: serviceEntry("default", "se", "api.example.com") +
			dr("default", "all", "api.example.com", "  exportTo: [.]\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  - {name: v2, labels: {v: '2'}}\n") +
			dr("default", "picked", "api.example.com", "  workloadSelector: {matchLabels: {app: web}}\n  subsets:\n  - {name: v1, labels: {v: '1'}}\n"),
		proxyNS: "default", labels: map[string]string{"app": "web"},
		wantRule: "default/picked,default/all", wantSubsets: []string{"v1", "v2"}, wantLB: networking.LoadBalancerSettings_RANDOM,
	},
	{
		name: "a public rule is not merged into a selector rule, whose exportTo is only its namespace",
		config: serviceEntry("default", "se", "api.example.com") +
			dr("default", "all", "api.example.com", "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  - {name: v2, labels: {v: '2'}}\n") +
			dr("default", "picked", "api.example.com", "  workloadSelector: {matchLabels: {app: web}}\n  subsets:\n  - {name: v1, labels: {v: '1'}}\n"),
		proxyNS: "default", labels: map[string]string{"app": "web"},
		wantRule: "default/picked", wantSubsets: []string{"v1"},
	},
	{
		name: "a catch-all folded into a selector rule leaves proxies the selector does not pick without a rule, as in Istio",
		config: serviceEntry("default", "se", "api.example.com") +
			dr("default", "all", "api.example.com", "  exportTo: [.]\n  subsets:\n  - {name: v2, labels: {v: '2'}}\n") +
			dr("default", "picked", "api.example.com", "  workloadSelector: {matchLabels: {app: web}}\n  subsets:\n  - {name: v1, labels: {v: '1'}}\n"),
		proxyNS: "default", labels: map[string]string{"app": "db"},
		wantRule: "",
	},
}

func TestRulesForOneHostMergeAsIstioMergesThem(t *testing.T) {
	t.Parallel()
	tests := mergeCases
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			docs := decode(t, tt.config)
			for _, d := range docs {
				if d.Name == "older" {
					d.Created = d.Created.AddDate(2020, 0, 0)
				}
			}
			snap := registry.Build(docs, 1)
			a, ok := Build(docs, "").For(service(t, snap, "default", "api.example.com"), 80, Proxy{Namespace: tt.proxyNS, Labels: tt.labels})
			if ok != (tt.wantRule != "") || sourceNames(a) != tt.wantRule {
				t.Fatalf("rule = %q (found %v), want %q", sourceNames(a), ok, tt.wantRule)
			}
			if !ok {
				return
			}
			var names []string
			for _, s := range a.Subsets {
				names = append(names, s.Name)
			}
			if len(names) != len(tt.wantSubsets) || (len(names) > 0 && joined(names) != joined(tt.wantSubsets)) {
				t.Errorf("subsets = %v, want %v", names, tt.wantSubsets)
			}
			if got := a.Traffic.GetLoadBalancer().GetSimple(); got != tt.wantLB {
				t.Errorf("loadBalancer = %v, want %v", got, tt.wantLB)
			}
		})
	}
}

func joined(xs []string) string {
	s := ""
	for _, x := range xs {
		s += x + ","
	}
	return s
}

func TestPortLevelSettingsOverrideAsIstioMergesThem(t *testing.T) {
	t.Parallel()
	const policy = `  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {maxConnections: 10}}
    tls: {mode: DISABLE}
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, sni: port.example.com}
  subsets:
  - name: v1
    labels: {v: '1'}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
      portLevelSettings:
      - port: {number: 80}
        connectionPool: {tcp: {maxConnections: 3}}
      - port: {number: 8080}
        loadBalancer: {simple: LEAST_REQUEST}
  - name: v2
    labels: {v: '2'}
`
	docs := decode(t, serviceEntry("default", "se", "api.example.com")+dr("default", "r", "api.example.com", policy))
	svc := service(t, registry.Build(docs, 1), "default", "api.example.com")
	x := Build(docs, "")
	tests := []struct {
		name     string
		port     uint32
		subset   string
		wantTLS  networking.ClientTLSSettings_TLSmode
		wantSNI  string
		wantLB   networking.LoadBalancerSettings_SimpleLB
		wantConn int32
		// wantNoTLS is set where tls must be absent, not merely DISABLE (its zero value).
		wantNoTLS bool
	}{
		{name: "a port without port-level settings gets the top level", port: 80, wantTLS: networking.ClientTLSSettings_DISABLE, wantLB: networking.LoadBalancerSettings_RANDOM, wantConn: 10},
		{name: "a port-level entry replaces the whole policy, so what it omits falls back to defaults", port: 443, wantTLS: networking.ClientTLSSettings_SIMPLE, wantSNI: "port.example.com"},
		{name: "a subset's policy replaces the fields it sets over the port's policy", port: 443, subset: "v1", wantTLS: networking.ClientTLSSettings_SIMPLE, wantSNI: "port.example.com", wantLB: networking.LoadBalancerSettings_ROUND_ROBIN},
		{name: "a subset's port-level entry replaces all four fields on its port", port: 80, subset: "v1", wantConn: 3, wantNoTLS: true},
		{name: "a subset's port-level entry drops what it omits even when the rule sets it", port: 8080, subset: "v1", wantLB: networking.LoadBalancerSettings_LEAST_REQUEST, wantNoTLS: true},
		{name: "a subset without a policy gets the port's policy", port: 443, subset: "v2", wantTLS: networking.ClientTLSSettings_SIMPLE, wantSNI: "port.example.com"},
		{name: "a subset without a policy gets the top level on other ports", port: 8080, subset: "v2", wantTLS: networking.ClientTLSSettings_DISABLE, wantLB: networking.LoadBalancerSettings_RANDOM, wantConn: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, ok := x.For(svc, tt.port, Proxy{Namespace: "default"})
			if !ok {
				t.Fatal("no rule applies")
			}
			if wantPortLevel := tt.port == 443; (a.PortLevel != 0) != wantPortLevel || !strings.Contains(a.Why(), "portLevelSettings") == wantPortLevel {
				t.Errorf("port level = %d, why %q; want the port level named only for port 443", a.PortLevel, a.Why())
			}
			tp := a.Traffic
			if tt.subset != "" {
				s := a.Subset(tt.subset)
				if s == nil {
					t.Fatalf("no subset %q", tt.subset)
				}
				tp = s.Traffic
			}
			if len(tp.GetPortLevelSettings()) != 0 {
				t.Errorf("effective policy still carries portLevelSettings: %v", tp.GetPortLevelSettings())
			}
			if tt.wantNoTLS && tp.GetTls() != nil {
				t.Errorf("tls = %v, want none", tp.GetTls())
			}
			if got := tp.GetTls().GetMode(); got != tt.wantTLS {
				t.Errorf("tls mode = %v, want %v", got, tt.wantTLS)
			}
			if got := tp.GetTls().GetSni(); got != tt.wantSNI {
				t.Errorf("sni = %q, want %q", got, tt.wantSNI)
			}
			if got := tp.GetLoadBalancer().GetSimple(); got != tt.wantLB {
				t.Errorf("loadBalancer = %v, want %v", got, tt.wantLB)
			}
			if got := tp.GetConnectionPool().GetTcp().GetMaxConnections(); got != tt.wantConn {
				t.Errorf("maxConnections = %d, want %d", got, tt.wantConn)
			}
		})
	}
}

func TestAppliedPoliciesNeverShareMemoryWithTheDocuments(t *testing.T) {
	t.Parallel()
	docs := decode(t, serviceEntry("default", "se", "api.example.com")+dr("default", "r", "api.example.com",
		"  trafficPolicy: {tls: {mode: SIMPLE, sni: a.example.com}}\n  subsets:\n  - {name: v1, labels: {v: '1'}}\n"))
	svc := service(t, registry.Build(docs, 1), "default", "api.example.com")
	a, _ := Build(docs, "").For(svc, 80, Proxy{Namespace: "default"})
	a.Traffic.Tls.Sni = "changed"
	a.Subsets[0].Traffic.Tls.Sni = "changed too"
	spec := docs[1].DestinationRule()
	if got := spec.TrafficPolicy.Tls.Sni; got != "a.example.com" {
		t.Errorf("document's sni = %q after changing the applied policy, want it untouched", got)
	}
}
