package validate

import "testing"

func TestVirtualServiceRoutes(t *testing.T) {
	const host = "hosts: [a.example.com]\n"
	const to = "route: [{destination: {host: a.example.com}}]"
	cases := []ruleCase{
		{name: "accepts every http match kind with valid regexes", kind: "VirtualService", spec: host + `http:
- match:
  - uri: {regex: "/v[0-9]+/.*"}
    scheme: {exact: https}
    method: {exact: GET}
    authority: {prefix: a.example}
    headers: {x-user: {regex: "(alice|bob)"}, x-any: {regex: "*"}}
    withoutHeaders: {x-debug: {}}
    queryParams: {v: {exact: "1"}}
    port: 80
    ignoreUriCase: true
  ` + to},
		{name: "rejects a uri regex that is not RE2", kind: "VirtualService", spec: host + "http:\n- match: [{uri: {regex: \"/a(?=b)\"}}]\n  " + to,
			want: []finding{e(CodeRegex, "spec.http[0].match[0].uri.regex")}},
		{name: "rejects header, query and CORS regexes that do not compile", kind: "VirtualService", spec: host + `http:
- match: [{headers: {x-a: {regex: "("}}, queryParams: {q: {regex: "[z-a]"}}}]
  corsPolicy: {allowOrigins: [{regex: "*.example.com"}]}
  ` + to,
			want: []finding{e(CodeRegex, "spec.http[0].match[0].headers.x-a.regex"), e(CodeRegex, "spec.http[0].match[0].queryParams.q.regex"),
				e(CodeRegex, "spec.http[0].corsPolicy.allowOrigins[0].regex")}},
		{name: "rejects a uriRegexRewrite that does not compile", kind: "VirtualService", spec: host + "http:\n- rewrite: {uriRegexRewrite: {match: \"a{2,1}\", rewrite: /x}}\n  " + to,
			want: []finding{e(CodeRegex, "spec.http[0].rewrite.uriRegexRewrite.match")}},
		{name: "rejects an empty prefix on a header", kind: "VirtualService", spec: host + "http:\n- match: [{headers: {x-a: {prefix: \"\"}}}]\n  " + to,
			want: []finding{e(CodeStringMatch, "spec.http[0].match[0].headers.x-a.prefix")}},
		{name: "warns about weights that do not add up to 100", kind: "VirtualService", spec: host + "http:\n- route: [{destination: {host: a.example.com, subset: v1}, weight: 30}, {destination: {host: a.example.com, subset: v2}, weight: 30}]",
			want: []finding{w(CodeWeightSum, "spec.http[0].route")}},
		{name: "accepts weights that add up to 100 and a lone destination without a weight", kind: "VirtualService", spec: host + "http:\n- match: [{uri: {prefix: /a}}]\n  route: [{destination: {host: a.example.com, subset: v1}, weight: 75}, {destination: {host: a.example.com, subset: v2}, weight: 25}]\n- " + to},
		{name: "rejects a negative weight and destinations that all weigh 0", kind: "VirtualService", spec: host + "tcp:\n- route: [{destination: {host: a.example.com}, weight: -1}, {destination: {host: a.example.com}, weight: 1}]\n- route: [{destination: {host: a.example.com}}, {destination: {host: b.example.com}}]",
			want: []finding{e(CodeWeight, "spec.tcp[0].route[0].weight"), e(CodeWeight, "spec.tcp[0].route"), e(CodeWeight, "spec.tcp[1].route"), w(CodeUnreachableRule, "spec.tcp[1]")}},
		{name: "rejects weights whose sum exceeds Envoy's 2^32-1, however an int32 sum would wrap", kind: "VirtualService", spec: host + "tcp:\n- route: [{destination: {host: a.example.com}, weight: 2147483647}, {destination: {host: b.example.com}, weight: 2147483647}, {destination: {host: a.example.com}, weight: 3}]",
			want: []finding{e(CodeWeight, "spec.tcp[0].route")}},
		{name: "only warns about large weights whose sum Envoy takes", kind: "VirtualService", spec: host + "tcp:\n- route: [{destination: {host: a.example.com}, weight: 2147483647}, {destination: {host: b.example.com}, weight: 2147483647}]",
			want: []finding{w(CodeWeightSum, "spec.tcp[0].route")}},
		{name: "rejects a rule with both a route and a redirect, and one with neither", kind: "VirtualService", spec: host + "http:\n- match: [{uri: {prefix: /a}}]\n  redirect: {uri: /b}\n  " + to + "\n- match: [{uri: {prefix: /c}}]\n  timeout: 1s",
			want: []finding{e(CodeRouteAction, "spec.http[0]"), e(CodeRouteAction, "spec.http[1]")}},
		{name: "rejects a retryOn condition Envoy does not know and a bad percentage", kind: "VirtualService", spec: host + "http:\n- retries: {attempts: 2, retryOn: \"5xx,connect-failure,503,sometimes\"}\n  fault: {abort: {httpStatus: 503, percentage: {value: 120}}}\n  " + to,
			want: []finding{e(CodeRetryTiming, "spec.http[0].retries.retryOn"), e(CodeRetryTiming, "spec.http[0].fault.abort.percentage.value")}},
		{name: "rejects a tls rule without matches and an SNI outside the hosts", kind: "VirtualService", spec: host + "tls:\n- route: [{destination: {host: a.example.com}}]\n- match: [{sniHosts: [b.example.com], destinationSubnets: [10.0.0.0/33]}]\n  route: [{destination: {host: a.example.com}}]",
			want: []finding{e(CodeL4Match, "spec.tls[0].match"), e(CodeL4Match, "spec.tls[1].match[0].sniHosts[0]"), e(CodeL4Match, "spec.tls[1].match[0].destinationSubnets[0]"),
				w(CodeUnreachableRule, "spec.tls[1]")}},
		{name: "warns about a rule after one without matches", kind: "VirtualService", spec: host + "http:\n- " + to + "\n- match: [{uri: {prefix: /a}}]\n  " + to,
			want: []finding{w(CodeUnreachableRule, "spec.http[1]")}},
		{name: "warns about a rule whose matches all repeat earlier ones, ignoring names", kind: "VirtualService", spec: host + "http:\n- match: [{name: one, uri: {exact: /a}}]\n  " + to + "\n- match: [{name: two, uri: {exact: /a}}]\n  " + to,
			want: []finding{i(CodeIneffectiveMatch, "spec.http[1].match[0]"), w(CodeUnreachableRule, "spec.http[1]")}},
		{name: "notes a match that an earlier uri prefix covers", kind: "VirtualService", spec: host + "http:\n- match: [{uri: {prefix: /api}}]\n  " + to + "\n- match: [{uri: {prefix: /api/v2}, method: {exact: GET}}, {uri: {prefix: /shop}}]\n  " + to,
			want: []finding{i(CodeIneffectiveMatch, "spec.http[1].match[0]")}},
	}
	runRules(t, cases)
}

func TestAnalyzeVirtualServiceGateways(t *testing.T) {
	gw := func(name, ns string) string {
		return other("Gateway", name, ns, "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*/*\"]}]")
	}
	const routes = "http: [{route: [{destination: {host: a.example.com}}]}]"
	entry := se("a", "ns", "", "a.example.com", "ports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS")
	runAnalyze(t, []analyzeCase{
		{name: "accepts gateways named bare, with a namespace, and mesh", yaml: entry + gw("in", "ns") + gw("out", "other") +
			other("VirtualService", "vs", "ns", "hosts: [a.example.com]\ngateways: [mesh, in, other/out]\n"+routes)},
		{name: "reports a gateway that does not exist", yaml: entry + other("VirtualService", "vs", "ns", "hosts: [a.example.com]\ngateways: [mesh, missing]\n"+routes),
			want: []string{"vs IST0101 spec.gateways[1]"}, contains: []string{`Referenced gateway not found: "ns/missing"`}},
		{name: "reports a bare name that exists only in another namespace, naming the one meshentry binds", yaml: entry + gw("egress", "istio-system") +
			other("VirtualService", "vs", "ns", "hosts: [a.example.com]\ngateways: [egress]\nhttp:\n- match: [{gateways: [egress]}]\n  route: [{destination: {host: a.example.com}}]"),
			want: []string{"vs IST0101 spec.gateways[0]", "vs IST0101 spec.http[0].match[0].gateways[0]"}, contains: []string{"meshentry binds istio-system/egress"}},
		{name: "reports a second mesh VirtualService for one host, naming the one sidecars use", yaml: entry +
			other("VirtualService", "first", "ns", "hosts: [a.example.com]\n"+routes) + other("VirtualService", "second", "ns", "hosts: [a.example.com]\n"+routes),
			want: []string{"second IST0109 spec.hosts[0]"}, contains: []string{"a sidecar uses only ns/first"}},
		{name: "leaves VirtualServices for one host alone when no namespace sees both", yaml: entry +
			other("VirtualService", "first", "ns", "hosts: [a.example.com]\nexportTo: [.]\n"+routes) + other("VirtualService", "second", "other", "hosts: [a.example.com]\nexportTo: [.]\n"+routes)},
	})
}
