package policy

import (
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/registry"
)

// TestIstioExportToTable replays the rules and lookups of Istio's TestSetDestinationRuleWithExportTo
// (pilot/pkg/model/push_context_test.go), restated in YAML: which rule's subsets each proxy gets.
func TestIstioExportToTable(t *testing.T) {
	t.Parallel()
	subsets := func(names ...string) string {
		out := "  subsets:\n"
		for _, n := range names {
			out += "  - {name: " + n + "}\n"
		}
		return out
	}
	yaml := dr("test1", "rule1", "httpbin.org", "  exportTo: [., ns1]\n"+subsets("subset1", "subset2")) +
		dr("test2", "rule2", "httpbin.org", "  exportTo: [test2, ns1, test1, newns]\n"+subsets("subset3", "subset4")) +
		dr("test3", "rule3", "httpbin.org", "  exportTo: [test1, test2, '*']\n"+subsets("subset5", "subset6")) +
		dr("test4", "rule4-local", "httpbin.org", "  exportTo: [test4]\n"+subsets("subset15", "subset16")) +
		dr("istio-system", "rule4", "httpbin.org", subsets("subset7", "subset8")) +
		dr("istio-system", "rule1", "httpbin.org", "  exportTo: [.]\n"+subsets("subset9", "subset10")) +
		dr("istio-system", "rule2", "'*.org'", "  exportTo: [.]\n"+subsets("subset11", "subset12")) +
		dr("istio-system", "rule3", "'*.app.org'", "  exportTo: [.]\n"+subsets("subset13", "subset14")) +
		dr("test5", "rule5", "api.test.com", "  exportTo: [istio-system]\n"+subsets("subset5-0", "subset5-1")) +
		dr("test6", "rule6", "api.test.com", "  exportTo: [istio-system]\n"+subsets("subset6-0", "subset6-1"))
	x := Build(decode(t, yaml), "istio-system")
	tests := []struct {
		proxyNS, serviceNS, host string
		want                     string
	}{
		{proxyNS: "test1", serviceNS: "test1", host: "httpbin.org", want: "subset1,subset2"},
		{proxyNS: "test1", serviceNS: "test2", host: "httpbin.org", want: "subset1,subset2"},
		{proxyNS: "test2", serviceNS: "test1", host: "httpbin.org", want: "subset3,subset4"},
		{proxyNS: "newns", serviceNS: "test2", host: "httpbin.org", want: "subset3,subset4"},
		{proxyNS: "test3", serviceNS: "test1", host: "httpbin.org", want: "subset5,subset6"},
		{proxyNS: "test5", serviceNS: "test4", host: "httpbin.org", want: "subset7,subset8"},
		{proxyNS: "ns1", serviceNS: "test1", host: "httpbin.org", want: "subset1,subset2"},
		{proxyNS: "ns1", serviceNS: "random", host: "httpbin.org", want: "subset7,subset8"},
		{proxyNS: "random", serviceNS: "random", host: "httpbin.org", want: "subset7,subset8"},
		{proxyNS: "test3", serviceNS: "random", host: "httpbin.org", want: "subset5,subset6"},
		{proxyNS: "istio-system", serviceNS: "random", host: "httpbin.org", want: "subset9,subset10"},
		{proxyNS: "istio-system", serviceNS: "istio-system", host: "httpbin.org", want: "subset9,subset10"},
		{proxyNS: "istio-system", serviceNS: "istio-system", host: "foo.app.org", want: "subset13,subset14"},
		{proxyNS: "istio-system", serviceNS: "test5", host: "api.test.com", want: "subset5-0,subset5-1"},
		{proxyNS: "istio-system", serviceNS: "test6", host: "api.test.com", want: "subset6-0,subset6-1"},
		{proxyNS: "istio-system", serviceNS: "test7", host: "api.test.com", want: ""},
	}
	for _, tt := range tests {
		t.Run("a proxy in "+tt.proxyNS+" for "+tt.host+" of "+tt.serviceNS+" gets "+tt.want, func(t *testing.T) {
			t.Parallel()
			a, ok := x.For(&registry.Service{Host: tt.host, Namespace: tt.serviceNS}, 80, Proxy{Namespace: tt.proxyNS})
			var got []string
			if ok {
				for _, s := range a.Subsets {
					got = append(got, s.Name)
				}
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("subsets = %v (rule %s), want %s", got, sourceNames(a), tt.want)
			}
		})
	}
}

// TestIstioWorkloadSelectorTable replays Istio's TestSetDestinationRuleWithWorkloadSelector
// (pilot/pkg/model/push_context_test.go): selector rules merge with an older catch-all whose exportTo
// contains theirs, rules with the same selector merge, and selector rules are not exported.
func TestIstioWorkloadSelectorTable(t *testing.T) {
	t.Parallel()
	rule := func(name, created, selector, exportTo, policy string) string {
		out := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " + name +
			", namespace: test, creationTimestamp: '" + created + "'}\nspec:\n  host: httpbin.org\n  exportTo: " + exportTo + "\n"
		if selector != "" {
			out += "  workloadSelector: {matchLabels: {app: " + selector + "}}\n"
		}
		return out + "  trafficPolicy: " + policy + "\n---\n"
	}
	yaml := rule("nsrule1", "2026-01-01T00:00:10Z", "app1", "[test2, .]", "{connectionPool: {tcp: {maxConnections: 111}}}") +
		rule("nsrule2", "2026-01-01T00:00:11Z", "app2", "[test2, .]", "{tls: {mode: SIMPLE}}") +
		rule("nsrule3", "2026-01-01T00:00:11Z", "app2", "[test2, .]", "{tls: {mode: SIMPLE}}") +
		rule("nsrule5", "2026-01-01T00:00:09Z", "", "[., test2]", "{outlierDetection: {consecutive5xxErrors: 3}}")
	x := Build(decode(t, yaml), "istio-system")
	svc := &registry.Service{Host: "httpbin.org", Namespace: "test"}
	tests := []struct {
		name      string
		proxyNS   string
		labels    map[string]string
		want      string
		wantScope Scope
	}{
		{name: "a proxy labelled app1 gets nsrule1 merged with the catch-all", proxyNS: "test", labels: map[string]string{"app": "app1"}, want: "test/nsrule1,test/nsrule5", wantScope: ScopeProxy},
		{name: "a proxy labelled app2 gets nsrule2 and nsrule3 merged with the catch-all", proxyNS: "test", labels: map[string]string{"app": "app2"}, want: "test/nsrule2,test/nsrule3,test/nsrule5", wantScope: ScopeProxy},
		{name: "another proxy of the namespace gets the catch-all alone", proxyNS: "test", labels: map[string]string{"app": "other"}, want: "test/nsrule5", wantScope: ScopeProxy},
		{name: "a proxy of test2 gets only the exported catch-all", proxyNS: "test2", labels: map[string]string{"app": "app1"}, want: "test/nsrule5", wantScope: ScopeService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, ok := x.For(svc, 80, Proxy{Namespace: tt.proxyNS, Labels: tt.labels})
			if !ok || sourceNames(a) != tt.want || a.Scope != tt.wantScope {
				t.Fatalf("rule = %q (found %v), want %q in scope %d", sourceNames(a), ok, tt.want, tt.wantScope)
			}
		})
	}
}
