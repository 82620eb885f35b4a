package validate

import "testing"

// TestServiceEntryDynamicDNS holds meshentry to Istio's rules for resolution DYNAMIC_DNS, where the
// name to resolve is the Host or SNI of each request; Istio's own cases are in istio-cases/se-5x.
func TestServiceEntryDynamicDNS(t *testing.T) {
	cases := []ruleCase{
		{
			name: "accepts DYNAMIC_DNS on wildcard hosts with HTTP, TLS, GRPC and HTTP2 ports",
			spec: "hosts: [\"*.example.com\", \"*.example.org\"]\nports: [{number: 80, name: http, protocol: http}, {number: 443, name: tls, protocol: TLS}, {number: 9090, name: grpc, protocol: GRPC}, {number: 8080, name: h2, protocol: HTTP2}]\nresolution: DYNAMIC_DNS",
		},
		{
			name: "accepts DYNAMIC_DNS with location MESH_INTERNAL",
			spec: "hosts: [\"*.svc.cluster.local\"]\n" + httpPort + "\nresolution: DYNAMIC_DNS\nlocation: MESH_INTERNAL",
		},
		{
			name: "rejects DYNAMIC_DNS on a host that is not a wildcard",
			spec: "hosts: [\"*.example.com\", google.com]\n" + httpPort + "\nresolution: DYNAMIC_DNS",
			want: []finding{e(CodeDynamicDNSHost, "spec.hosts[1]")},
		},
		{
			name: "rejects DYNAMIC_DNS with addresses",
			spec: "hosts: [\"*.example.com\"]\naddresses: [10.10.10.10]\n" + httpPort + "\nresolution: DYNAMIC_DNS",
			want: []finding{e(CodeDynamicDNSAddresses, "spec.addresses")},
		},
		{
			name: "rejects DYNAMIC_DNS with endpoints",
			spec: "hosts: [\"*.example.com\"]\n" + httpPort + "\nresolution: DYNAMIC_DNS\nendpoints: [{address: in.example.com, ports: {http: 9080}}]",
			want: []finding{e(CodeDynamicDNSEndpoints, "spec.endpoints")},
		},
		{
			name: "rejects DYNAMIC_DNS on a raw TCP port and on a port without protocol",
			spec: "hosts: [\"*.example.com\"]\naddresses: []\nports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: tcp, protocol: TCP}, {number: 82, name: auto}]\nresolution: DYNAMIC_DNS",
			want: []finding{
				e(CodeDynamicDNSProtocol, "spec.ports[1].protocol"),
				e(CodeDynamicDNSProtocol, "spec.ports[2].protocol"),
			},
		},
		{
			name: "rejects DYNAMIC_DNS on HTTPS, which Istio's dynamic forward proxy does not serve",
			spec: "hosts: [\"*.example.com\"]\nports: [{number: 443, name: https, protocol: HTTPS}]\nresolution: DYNAMIC_DNS",
			want: []finding{e(CodeDynamicDNSProtocol, "spec.ports[0].protocol")},
		},
	}
	runRules(t, cases)
}
