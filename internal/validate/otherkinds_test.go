package validate

import (
	"testing"
)

func TestDestinationRule(t *testing.T) {
	cases := []ruleCase{
		{name: "accepts a DestinationRule with a short-name host and subsets", kind: "DestinationRule", spec: "host: reviews\nsubsets: [{name: v1}, {name: v2}]"},
		{
			name: "rejects a DestinationRule without a host",
			kind: "DestinationRule", spec: "subsets: [{name: v1}]",
			want: []finding{e(CodeDestinationRuleHost, "spec.host")},
		},
		{
			name: "rejects a DestinationRule host that is not a DNS name",
			kind: "DestinationRule", spec: "host: foo..example.com",
			want: []finding{e(CodeDestinationRuleHost, "spec.host")},
		},
		{
			name: "rejects repeated and invalid subset names",
			kind: "DestinationRule", spec: "host: a.example.com\nsubsets: [{name: v1}, {name: v1}, {name: V_2}, {labels: {a: b}}]",
			want: []finding{
				e(CodeDestinationRuleSubset, "spec.subsets[1].name"),
				e(CodeDestinationRuleSubset, "spec.subsets[2].name"),
				e(CodeDestinationRuleSubset, "spec.subsets[3].name"),
			},
		},
	}
	runRules(t, cases)
}

func TestVirtualService(t *testing.T) {
	cases := []ruleCase{
		{
			name: "accepts a VirtualService routing to a named host",
			kind: "VirtualService", spec: "hosts: [a.example.com]\nhttp: [{route: [{destination: {host: a.example.com}}]}]",
		},
		{
			name: "accepts \"*\" and IP hosts on a gateway VirtualService",
			kind: "VirtualService", spec: "hosts: [\"*\", 10.0.0.1]\ngateways: [ingress]\nhttp: [{route: [{destination: {host: a.example.com}}]}]",
		},
		{
			name: "warns about a VirtualService without hosts, which only delegation uses",
			kind: "VirtualService", spec: "http: [{route: [{destination: {host: a.example.com}}]}]",
			want: []finding{w(CodeVirtualServiceNoHosts, "spec.hosts")},
		},
		{
			name: "rejects a host with a wildcard in the middle",
			kind: "VirtualService", spec: "hosts: [\"a.*.com\"]\nhttp: [{route: [{destination: {host: a.example.com}}]}]",
			want: []finding{e(CodeVirtualServiceHost, "spec.hosts[0]")},
		},
		{
			name: "rejects route destinations without a host, or with \"*\", in http, tcp and tls routes",
			kind: "VirtualService",
			spec: `hosts: [a.example.com]
http: [{route: [{destination: {subset: v1}}], mirror: {host: "*"}}]
tcp: [{route: [{destination: {host: "bad..host"}}]}]
tls: [{match: [{sniHosts: [a.example.com]}], route: [{destination: {host: ""}}]}]`,
			want: []finding{
				e(CodeRouteDestination, "spec.http[0].route[0].destination.host"),
				e(CodeRouteDestination, "spec.http[0].mirror.host"),
				e(CodeRouteDestination, "spec.tcp[0].route[0].destination.host"),
				e(CodeRouteDestination, "spec.tls[0].route[0].destination.host"),
			},
		},
		{
			name: "rejects \"~\" in a VirtualService's exportTo",
			kind: "VirtualService", spec: "hosts: [a.example.com]\nexportTo: [\"~\"]\nhttp: [{route: [{destination: {host: a.example.com}}]}]",
			want: []finding{e(CodeExportToInvalid, "spec.exportTo[0]")},
		},
	}
	runRules(t, cases)
}

func TestGateway(t *testing.T) {
	cases := []ruleCase{
		{
			name: "accepts the reference egress gateway",
			kind: "Gateway", spec: "selector: {istio: egressgateway}\nservers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]",
		},
		{
			name: "accepts namespace/host forms and IP hosts",
			kind: "Gateway", spec: "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [ns1/a.example.com, \"*/b.example.com\", ./c.example.com, 10.0.0.1]}]",
		},
		{
			name: "rejects a Gateway name with dots",
			kind: "Gateway", doc: "egress.gateway", spec: "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]",
			want: []finding{e(CodeGatewayName, "metadata.name")},
		},
		{
			name: "rejects a Gateway without servers",
			kind: "Gateway", spec: "selector: {istio: egressgateway}",
			want: []finding{e(CodeGatewayServers, "spec.servers")},
		},
		{
			name: "rejects a server without hosts, a short-name host and a partial wildcard",
			kind: "Gateway",
			spec: "servers:\n- {port: {number: 80, name: a, protocol: HTTP}}\n- {port: {number: 81, name: b, protocol: HTTP}, hosts: [foo, \"*foo.example.com\", \"~/x.example.com\"]}",
			want: []finding{
				e(CodeGatewayServers, "spec.servers[0].hosts"),
				e(CodeGatewayHost, "spec.servers[1].hosts[0]"),
				e(CodeGatewayHost, "spec.servers[1].hosts[1]"),
				e(CodeGatewayHost, "spec.servers[1].hosts[2]"),
			},
		},
		{
			name: "rejects a server port without a name, with an unknown protocol or out of range",
			kind: "Gateway", spec: "servers: [{port: {number: 70000, protocol: FTP}, hosts: [\"*\"]}]",
			want: []finding{
				e(CodeGatewayPort, "spec.servers[0].port.protocol"),
				e(CodeGatewayPort, "spec.servers[0].port.number"),
				e(CodeGatewayPort, "spec.servers[0].port.name"),
			},
		},
		{
			name: "rejects a server without a port",
			kind: "Gateway", spec: "servers: [{hosts: [\"*\"]}]",
			want: []finding{e(CodeGatewayServers, "spec.servers[0].port")},
		},
		{
			name: "rejects repeated server port names",
			kind: "Gateway", spec: "servers:\n- {port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}\n- {port: {number: 8080, name: http, protocol: HTTP}, hosts: [\"*\"]}",
			want: []finding{e(CodeGatewayPort, "spec.servers[1].port.name")},
		},
		{
			name: "rejects an HTTPS server without tls settings",
			kind: "Gateway", spec: "servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"]}]",
			want: []finding{e(CodeGatewayTLS, "spec.servers[0].port.protocol")},
		},
		{
			name: "accepts a TLS passthrough server",
			kind: "Gateway", spec: "servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: [\"*\"], tls: {mode: PASSTHROUGH}}]",
		},
	}
	runRules(t, cases)
}

func TestSidecar(t *testing.T) {
	cases := []ruleCase{
		{
			name: "accepts namespace/host egress hosts",
			kind: "Sidecar", spec: "egress: [{hosts: [\"./*\", \"istio-system/*\", \"*/api.example.com\"]}]",
		},
		{
			name: "accepts a Sidecar that only sets the outbound traffic policy",
			kind: "Sidecar", spec: "outboundTrafficPolicy: {mode: REGISTRY_ONLY}",
		},
		{
			name: "rejects a Sidecar that configures nothing",
			kind: "Sidecar", spec: "workloadSelector: {labels: {app: a}}",
			want: []finding{e(CodeSidecarEmpty, "spec")},
		},
		{
			name: "rejects an egress host without a namespace and a listener without hosts",
			kind: "Sidecar", spec: "egress:\n- {hosts: [api.example.com]}\n- {port: {number: 80, name: http, protocol: HTTP}}",
			want: []finding{e(CodeSidecarEgressHost, "spec.egress[0].hosts[0]"), e(CodeSidecarEgressHost, "spec.egress[1].hosts")},
		},
		{
			name: "rejects a short name and a bad namespace in egress hosts",
			kind: "Sidecar", spec: "egress: [{hosts: [ns1/api, Bad_NS/a.example.com]}]",
			want: []finding{e(CodeSidecarEgressHost, "spec.egress[0].hosts[0]"), e(CodeSidecarEgressHost, "spec.egress[0].hosts[1]")},
		},
	}
	runRules(t, cases)
}
