package validate

import (
	"fmt"

	"strings"
	"testing"
)

const httpPort = "ports: [{number: 80, name: http, protocol: HTTP}]"

func TestServiceEntryHosts(t *testing.T) {
	long := strings.Repeat("a", 64)
	longest := strings.Repeat("a", 63)
	cases := []ruleCase{
		{name: "accepts a plain DNS name", spec: "hosts: [api.example.com]\n" + httpPort + "\nresolution: DNS"},
		{name: "accepts upper case and a trailing dot, as Istio does", spec: "hosts: [API.Example.com.]\n" + httpPort + "\nresolution: DNS"},
		{name: "accepts a single-label host, as Istio does", spec: "hosts: [foo]\n" + httpPort + "\nresolution: DNS"},
		{name: "accepts a leading wildcard label", spec: "hosts: [\"*.example.com\"]\n" + httpPort + "\nresolution: NONE"},
		{
			name: "rejects a ServiceEntry without hosts",
			spec: httpPort + "\nresolution: DNS",
			want: []finding{e(CodeHostsRequired, "spec.hosts")},
		},
		{
			name: "rejects the full wildcard as a host",
			spec: "hosts: [\"*\"]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostFullWildcard, "spec.hosts[0]")},
		},
		{
			name: "rejects a wildcard in the middle of a host",
			spec: "hosts: [ok.example.com, \"foo.*.com\"]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[1]"), w(CodeHostPartialWildcard, "spec.hosts[1]")},
		},
		{
			name: "rejects a wildcard at the end of a label",
			spec: "hosts: [\"foo*.example.com\"]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[0]"), w(CodeHostPartialWildcard, "spec.hosts[0]")},
		},
		{
			name: "warns about a partial wildcard at the start of a host",
			spec: "hosts: [\"*foo.example.com\"]\n" + httpPort + "\nresolution: NONE",
			want: []finding{w(CodeHostPartialWildcard, "spec.hosts[0]")},
		},
		{
			name: "rejects an all-numeric top-level label",
			spec: "hosts: [foo.123]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[0]")},
		},
		{
			name: "rejects an IPv4 address as a host",
			spec: "hosts: [10.0.0.1]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[0]")},
		},
		{
			name: "rejects an IPv6 address as a host",
			spec: "hosts: [\"2001:db8::1\"]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[0]")},
		},
		{
			name: "rejects an empty label",
			spec: "hosts: [foo..example.com]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[0]")},
		},
		{
			name: "rejects a label that starts with a hyphen",
			spec: "hosts: [-foo.example.com]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[0]")},
		},
		{name: "accepts a label of 63 characters", spec: "hosts: [" + longest + ".com]\n" + httpPort + "\nresolution: NONE"},
		{
			name: "rejects a label longer than 63 characters",
			spec: "hosts: [" + long + ".com]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[0]")},
		},
		{
			name: "rejects a host longer than 255 characters",
			spec: "hosts: [" + strings.Repeat(longest+".", 4) + "com]\n" + httpPort + "\nresolution: NONE",
			want: []finding{e(CodeHostInvalid, "spec.hosts[0]")},
		},
	}
	runRules(t, cases)
}

func TestServiceEntryAddresses(t *testing.T) {
	cases := []ruleCase{
		{
			name: "accepts IPv4 and IPv6 addresses and CIDR blocks with resolution STATIC",
			spec: "hosts: [db.example.com]\naddresses: [10.0.0.1, \"2001:db8::1\", 10.0.0.0/24, \"2001:db8::/64\"]\n" + httpPort +
				"\nresolution: STATIC\nendpoints: [{address: 10.0.0.5}]",
		},
		{name: "accepts a CIDR block with resolution NONE", spec: "hosts: [db.example.com]\naddresses: [172.1.2.16/16]\n" + httpPort},
		{
			name: "rejects an address that is not an IP",
			spec: "hosts: [db.example.com]\naddresses: [db.example.com]\n" + httpPort,
			want: []finding{e(CodeAddressInvalid, "spec.addresses[0]")},
		},
		{
			name: "rejects a CIDR block with an impossible prefix length",
			spec: "hosts: [db.example.com]\naddresses: [1.2.3.4/99]\n" + httpPort,
			want: []finding{e(CodeAddressInvalid, "spec.addresses[0]")},
		},
		{
			name: "rejects an address with two slashes",
			spec: "hosts: [db.example.com]\naddresses: [1.2.3.4/8/8]\n" + httpPort,
			want: []finding{e(CodeAddressInvalid, "spec.addresses[0]")},
		},
		{
			name: "rejects a unix socket as an address",
			spec: "hosts: [db.example.com]\naddresses: [\"unix:///var/run/db.sock\"]\n" + httpPort,
			want: []finding{e(CodeAddressInvalid, "spec.addresses[0]")},
		},
		{
			name: "rejects a CIDR block with resolution DNS",
			spec: "hosts: [db.example.com]\naddresses: [10.0.0.1, 10.0.0.0/24]\n" + httpPort + "\nresolution: DNS",
			want: []finding{e(CodeCIDRResolution, "spec.addresses[1]")},
		},
		{
			name: "reports the CIDR resolution rule once however many blocks there are",
			spec: "hosts: [db.example.com]\naddresses: [10.0.0.0/24, 10.1.0.0/24]\n" + httpPort + "\nresolution: DNS_ROUND_ROBIN",
			want: []finding{e(CodeCIDRResolution, "spec.addresses[0]")},
		},
	}
	runRules(t, cases)
}

func TestServiceEntryPorts(t *testing.T) {
	cases := []ruleCase{
		{
			name: "accepts every protocol Istio knows, in any case",
			spec: `hosts: [svc.example.com]
addresses: [10.0.0.1]
ports:
- {number: 1, name: a, protocol: HTTP}
- {number: 2, name: b, protocol: https}
- {number: 3, name: c, protocol: GRPC}
- {number: 4, name: d, protocol: GRPC-WEB}
- {number: 5, name: e, protocol: HTTP2}
- {number: 6, name: f, protocol: HTTP_PROXY}
- {number: 7, name: g, protocol: MONGO}
- {number: 8, name: h, protocol: MySQL}
- {number: 9, name: i, protocol: REDIS}
- {number: 10, name: j, protocol: TCP}
- {number: 11, name: k, protocol: TLS}
- {number: 12, name: l, protocol: UDP}
- {number: 65535, name: m}
resolution: STATIC
endpoints: [{address: 10.0.0.2}]`,
		},
		{
			name: "rejects an unknown protocol",
			spec: "hosts: [svc.example.com]\naddresses: [10.0.0.1]\nports: [{number: 9092, name: kafka, protocol: KAFKA}]",
			want: []finding{e(CodeProtocolUnknown, "spec.ports[0].protocol")},
		},
		{
			name: "rejects duplicate port names",
			spec: "hosts: [svc.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http, protocol: HTTP}]",
			want: []finding{e(CodePortNameDuplicate, "spec.ports[1].name")},
		},
		{
			name: "rejects duplicate port numbers",
			spec: "hosts: [svc.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 80, name: web, protocol: HTTP}]",
			want: []finding{e(CodePortNumberDuplicate, "spec.ports[1].number")},
		},
		{
			name: "rejects port number 0 and numbers above 65535",
			spec: "hosts: [svc.example.com]\nports: [{number: 0, name: a, protocol: HTTP}, {number: 65536, name: b, protocol: HTTP}]",
			want: []finding{e(CodePortNumberRange, "spec.ports[0].number"), e(CodePortNumberRange, "spec.ports[1].number")},
		},
		{
			name: "rejects a targetPort above 65535",
			spec: "hosts: [svc.example.com]\nports: [{number: 80, name: http, protocol: HTTP, targetPort: 65536}]\nresolution: DNS",
			want: []finding{e(CodeTargetPortRange, "spec.ports[0].targetPort")},
		},
		{
			name: "accepts two ports with the same targetPort",
			spec: "hosts: [svc.example.com]\nports: [{number: 80, name: a, protocol: HTTP, targetPort: 8080}, {number: 81, name: b, protocol: HTTP, targetPort: 8080}]\nresolution: DNS",
		},
		{
			name: "rejects a port name that is not a DNS-1123 label",
			spec: "hosts: [svc.example.com]\nports: [{number: 80, name: http_web, protocol: HTTP}]",
			want: []finding{e(CodePortNameInvalid, "spec.ports[0].name")},
		},
		{
			name: "rejects a port without a name",
			spec: "hosts: [svc.example.com]\nports: [{number: 80, protocol: HTTP}]",
			want: []finding{e(CodePortNameInvalid, "spec.ports[0].name")},
		},
		{
			name: "warns about a TCP port without addresses under resolution NONE",
			spec: "hosts: [db.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 3306, name: mysql, protocol: TCP}]",
			want: []finding{w(CodeTCPWithoutAddresses, "spec.ports[1]")},
		},
		{
			name: "warns about a protocol-less port without addresses under resolution NONE",
			spec: "hosts: [db.example.com]\nports: [{number: 3306, name: mysql}]\nresolution: NONE",
			want: []finding{w(CodeTCPWithoutAddresses, "spec.ports[0]")},
		},
		{
			name: "does not warn about a TCP port under DNS, where Istio allocates an address",
			spec: "hosts: [db.example.com]\nports: [{number: 3306, name: mysql, protocol: TCP}]\nresolution: DNS",
		},
		{
			name: "warns about a TCP port under DNS when the label turns auto-allocation off",
			meta: "labels: {networking.istio.io/enable-autoallocate-ip: \"false\"}",
			spec: "hosts: [db.example.com]\nports: [{number: 3306, name: mysql, protocol: TCP}]\nresolution: DNS",
			want: []finding{w(CodeTCPWithoutAddresses, "spec.ports[0]")},
		},
		{
			name: "warns about a ServiceEntry without ports, which Istio accepts",
			spec: "hosts: [svc.example.com]",
			want: []finding{w(CodeNoPorts, "spec.ports")},
		},
	}
	runRules(t, cases)
}

func TestServiceEntryMultipleHosts(t *testing.T) {
	cases := []ruleCase{
		{
			name: "accepts several hosts on HTTP and TLS ports",
			spec: "hosts: [a.example.com, b.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]\nresolution: DNS",
		},
		{
			name: "rejects several hosts on a TCP port unless resolution is NONE",
			spec: "hosts: [a.example.com, b.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 3306, name: mysql, protocol: MYSQL}]\nresolution: DNS",
			want: []finding{e(CodeMultiHostOpaquePort, "spec.ports[1].protocol")},
		},
		{
			name: "rejects several hosts on a protocol-less port",
			spec: "hosts: [a.example.com, b.example.com]\nports: [{number: 8080, name: web}]\nresolution: STATIC\nendpoints: [{address: 10.0.0.1}]",
			want: []finding{e(CodeMultiHostOpaquePort, "spec.ports[0].protocol")},
		},
		{
			name: "reports the multi-host rule once however many ports break it",
			spec: "hosts: [a.example.com, b.example.com]\nports: [{number: 1, name: a, protocol: TCP}, {number: 2, name: b, protocol: TCP}]\nresolution: DNS",
			want: []finding{e(CodeMultiHostOpaquePort, "spec.ports[0].protocol")},
		},
		{
			name: "accepts several hosts on a TCP port with resolution NONE",
			spec: "hosts: [a.example.com, b.example.com]\naddresses: [10.0.0.1]\nports: [{number: 3306, name: mysql, protocol: TCP}]\nresolution: NONE",
		},
		{
			name: "warns about several hosts sharing addresses and a TCP-based port under DNS",
			spec: "hosts: [a.example.com, b.example.com]\naddresses: [10.0.0.1]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]\nresolution: DNS",
			want: []finding{w(CodeMultiHostAddressTCP, "spec.ports[1]")},
		},
	}
	runRules(t, cases)
}

func TestServiceEntryResolution(t *testing.T) {
	cases := []ruleCase{
		{
			name: "rejects endpoints with resolution NONE",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: NONE\nendpoints: [{address: 1.1.1.1}]",
			want: []finding{e(CodeNoneWithEndpoints, "spec.endpoints")},
		},
		{
			name: "treats a missing resolution as NONE",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nendpoints: [{address: 1.1.1.1}]",
			want: []finding{e(CodeNoneWithEndpoints, "spec.endpoints")},
		},
		{
			name: "warns that a workloadSelector has no effect with resolution NONE",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nworkloadSelector: {labels: {app: vm}}",
			want: []finding{w(CodeSelectorWithNone, "spec.workloadSelector")},
		},
		{
			name: "warns that targetPort has no effect with resolution NONE",
			spec: "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]",
			want: []finding{w(CodeTargetPortWithNone, "spec.ports[0].targetPort")},
		},
		{
			name: "accepts IP, unix path and abstract unix endpoints with resolution STATIC",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nendpoints: [{address: 10.0.0.1}, {address: \"unix:///var/run/a.sock\"}, {address: \"unix://@abstract\"}]",
		},
		{
			name: "rejects a DNS name as a STATIC endpoint",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nendpoints: [{address: b.example.com}]",
			want: []finding{e(CodeEndpointNotIP, "spec.endpoints[0].address")},
		},
		{
			name: "rejects a relative unix socket path",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nendpoints: [{address: \"unix://./a.sock\"}]",
			want: []finding{e(CodeUnixAddressInvalid, "spec.endpoints[0].address")},
		},
		{
			name: "rejects a unix socket path that names a directory",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nendpoints: [{address: \"unix:///var/run/\"}]",
			want: []finding{e(CodeUnixAddressInvalid, "spec.endpoints[0].address")},
		},
		{
			name: "rejects a unix socket address without a path",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nendpoints: [{address: \"unix://\"}]",
			want: []finding{e(CodeUnixAddressInvalid, "spec.endpoints[0].address")},
		},
		{
			name: "rejects ports on a unix socket endpoint",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nendpoints: [{address: \"unix:///var/run/a.sock\", ports: {http: 80}}]",
			want: []finding{e(CodeUnixEndpointPorts, "spec.endpoints[0].ports")},
		},
		{
			name: "rejects a unix socket endpoint when the service has two ports",
			spec: "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: admin, protocol: HTTP}]\nresolution: STATIC\nendpoints: [{address: \"unix:///var/run/a.sock\"}]",
			want: []finding{e(CodeUnixOnePort, "spec.endpoints[0].address")},
		},
		{
			name: "rejects an endpoint with neither address nor network",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nendpoints: [{labels: {app: a}}]",
			want: []finding{e(CodeEndpointAddressRequired, "spec.endpoints[0].address")},
		},
		{
			name: "warns about an endpoint with a network but no address",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nendpoints: [{network: net-2}]",
			want: []finding{w(CodeEndpointNetworkOnly, "spec.endpoints[0].network")},
		},
		{
			name: "warns about STATIC with neither endpoints nor workloadSelector",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC",
			want: []finding{w(CodeStaticNoEndpoints, "spec.resolution")},
		},
		{
			name: "accepts STATIC with a workloadSelector instead of endpoints",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nworkloadSelector: {labels: {app: vm}}",
		},
		{
			name: "accepts DNS names and IPs as DNS endpoints",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\nendpoints: [{address: us.example.com}, {address: 10.0.0.1}]",
		},
		{
			name: "rejects a wildcard DNS endpoint",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\nendpoints: [{address: \"*.example.com\"}]",
			want: []finding{e(CodeEndpointNotFQDN, "spec.endpoints[0].address")},
		},
		{
			name: "rejects a unix socket endpoint with resolution DNS",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\nendpoints: [{address: \"unix:///var/run/a.sock\"}]",
			want: []finding{e(CodeEndpointNotFQDN, "spec.endpoints[0].address")},
		},
		{
			name: "rejects a DNS endpoint without an address",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\nendpoints: [{network: net-2}]",
			want: []finding{e(CodeEndpointAddressRequired, "spec.endpoints[0].address")},
		},
		{
			name: "rejects a wildcard host with DNS and no endpoints",
			spec: "hosts: [a.example.com, \"*.example.com\"]\n" + httpPort + "\nresolution: DNS",
			want: []finding{e(CodeDNSHostNotFQDN, "spec.hosts[1]")},
		},
		{
			name: "accepts a wildcard host with DNS when endpoints are given",
			spec: "hosts: [\"*.example.com\"]\n" + httpPort + "\nresolution: DNS\nendpoints: [{address: a.example.com}]",
		},
		{
			name: "rejects two endpoints with DNS_ROUND_ROBIN",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: a1.example.com}, {address: a2.example.com}]",
			want: []finding{e(CodeDNSRoundRobinEndpoint, "spec.endpoints[1]")},
		},
		{
			name: "accepts DNS_ROUND_ROBIN with one endpoint",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: a1.example.com}]",
		},
		{
			name: "rejects a wildcard host with DNS_ROUND_ROBIN and no endpoints",
			spec: "hosts: [\"*.example.com\"]\n" + httpPort + "\nresolution: DNS_ROUND_ROBIN",
			want: []finding{e(CodeDNSHostNotFQDN, "spec.hosts[0]")},
		},
		{
			name: "rejects a resolution number that names no mode",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: 9",
			want: []finding{e(CodeResolutionUnsupported, "spec.resolution")},
		},
	}
	runRules(t, cases)
}

func TestServiceEntryEndpointPortsAndLabels(t *testing.T) {
	static := "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]\nresolution: STATIC\n"
	cases := []ruleCase{
		{name: "accepts endpoint ports named after declared ports", spec: static + "endpoints: [{address: 10.0.0.1, ports: {http: 8080, grpc: 9091}}]"},
		{
			name: "rejects an endpoint port name the service does not declare",
			spec: static + "endpoints: [{address: 10.0.0.1, ports: {https: 8443}}]",
			want: []finding{e(CodeEndpointPortUndeclared, "spec.endpoints[0].ports.https")},
		},
		{
			name: "rejects an undeclared endpoint port name with resolution DNS too",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\nendpoints: [{address: b.example.com, ports: {web: 8080}}]",
			want: []finding{e(CodeEndpointPortUndeclared, "spec.endpoints[0].ports.web")},
		},
		{
			name: "rejects endpoint port numbers 0 and above 65535",
			spec: static + "endpoints: [{address: 10.0.0.1, ports: {http: 0, grpc: 65536}}]",
			want: []finding{e(CodeEndpointPortRange, "spec.endpoints[0].ports.http"), e(CodeEndpointPortRange, "spec.endpoints[0].ports.grpc")},
		},
		{
			name: "rejects an endpoint port name that is not a DNS-1123 label",
			spec: static + "endpoints: [{address: 10.0.0.1, ports: {Bad_Name: 80}}]",
			want: []finding{e(CodeEndpointPortUndeclared, "spec.endpoints[0].ports.Bad_Name"), e(CodeEndpointPortName, "spec.endpoints[0].ports.Bad_Name")},
		},
		{
			name: "accepts Kubernetes label keys with a DNS prefix and empty values",
			spec: static + "endpoints: [{address: 10.0.0.1, labels: {security.istio.io/tlsMode: istio, app: web, empty: \"\"}}]",
		},
		{
			name: "rejects a label key with two slashes",
			spec: static + "endpoints: [{address: 10.0.0.1, labels: {a/b/c: x}}]",
			want: []finding{e(CodeLabelKeyInvalid, "spec.endpoints[0].labels.a/b/c")},
		},
		{
			name: "rejects a label key whose name is longer than 63 characters",
			spec: static + "endpoints: [{address: 10.0.0.1, labels: {" + strings.Repeat("k", 64) + ": x}}]",
			want: []finding{e(CodeLabelKeyInvalid, "spec.endpoints[0].labels."+strings.Repeat("k", 64))},
		},
		{
			name: "rejects a label value with a space",
			spec: static + "endpoints: [{address: 10.0.0.1, labels: {app: my app}}]",
			want: []finding{e(CodeLabelValueInvalid, "spec.endpoints[0].labels.app")},
		},
		{
			name: "rejects invalid labels on DNS endpoints too",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\nendpoints: [{address: b.example.com, labels: {app: -web}}]",
			want: []finding{e(CodeLabelValueInvalid, "spec.endpoints[0].labels.app")},
		},
	}
	runRules(t, cases)
}

func TestServiceEntryWorkloadSelector(t *testing.T) {
	cases := []ruleCase{
		{
			name: "rejects a workloadSelector together with endpoints",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nworkloadSelector: {labels: {app: vm}}\nendpoints: [{address: 10.0.0.1}]",
			want: []finding{e(CodeSelectorWithEndpoints, "spec.workloadSelector")},
		},
		{
			name: "rejects a selector label with an empty key",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nworkloadSelector: {labels: {\"\": vm}}",
			want: []finding{e(CodeSelectorEmptyKey, "spec.workloadSelector.labels.")},
		},
		{
			name: "rejects a wildcard in a selector value",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nworkloadSelector: {labels: {app: \"vm-*\"}}",
			want: []finding{e(CodeSelectorWildcard, "spec.workloadSelector.labels.app")},
		},
		{
			name: "rejects a wildcard in a selector key",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nworkloadSelector: {labels: {\"app*\": vm}}",
			want: []finding{e(CodeSelectorWildcard, "spec.workloadSelector.labels.app*")},
		},
		{
			name: "warns about a selector without labels",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nworkloadSelector: {}",
			want: []finding{w(CodeSelectorNoLabels, "spec.workloadSelector")},
		},
	}
	runRules(t, cases)
}

func TestExportTo(t *testing.T) {
	se := "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\n"
	cases := []ruleCase{
		{name: "accepts \".\" alone", spec: se + "exportTo: [\".\"]"},
		{name: "accepts \"*\" alone", spec: se + "exportTo: [\"*\"]"},
		{name: "accepts \"~\" alone on a ServiceEntry", spec: se + "exportTo: [\"~\"]"},
		{name: "accepts namespace names with \".\"", spec: se + "exportTo: [\".\", team-a, team-b]"},
		{
			name: "rejects \"~\" combined with a namespace",
			spec: se + "exportTo: [\"~\", team-a]",
			want: []finding{e(CodeExportToNoneMix, "spec.exportTo")},
		},
		{
			name: "rejects \"*\" combined with \".\"",
			spec: se + "exportTo: [\"*\", \".\"]",
			want: []finding{e(CodeExportToPublicMix, "spec.exportTo")},
		},
		{
			name: "rejects \".\" together with the own namespace",
			spec: se + "exportTo: [\".\", ns]",
			want: []finding{e(CodeExportToDuplicate, "spec.exportTo[1]")},
		},
		{
			name: "rejects a namespace listed twice",
			spec: se + "exportTo: [team-a, team-a]",
			want: []finding{e(CodeExportToDuplicate, "spec.exportTo[1]")},
		},
		{
			name: "rejects \"*\" listed twice as both a duplicate and a mix",
			spec: se + "exportTo: [\"*\", \"*\"]",
			want: []finding{e(CodeExportToDuplicate, "spec.exportTo[1]"), e(CodeExportToPublicMix, "spec.exportTo")},
		},
		{
			name: "rejects an entry that is not a namespace name",
			spec: se + "exportTo: [Team_A]",
			want: []finding{e(CodeExportToInvalid, "spec.exportTo[0]")},
		},
		{
			name: "rejects \"~\" outside a ServiceEntry",
			kind: "DestinationRule",
			spec: "host: a.example.com\nexportTo: [\"~\"]",
			want: []finding{e(CodeExportToInvalid, "spec.exportTo[0]")},
		},
	}
	runRules(t, cases)
}

func TestServiceEntryLimitsAndSubjectAltNames(t *testing.T) {
	many := make([]string, 257)
	for i := range many {
		many[i] = "h" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + ".example.com"
	}
	cases := []ruleCase{
		{
			name: "rejects more than 256 hosts, as Istio's schema does",
			spec: "hosts: [" + strings.Join(many, ", ") + "]\n" + httpPort,
			want: []finding{e(CodeSchemaLimit, "spec.hosts")},
		},
		{
			name: "rejects an address longer than 64 characters",
			spec: "hosts: [a.example.com]\naddresses: [\"fe80::1%" + strings.Repeat("z", 60) + "\"]\n" + httpPort,
			want: []finding{e(CodeSchemaLimit, "spec.addresses[0]")},
		},
		{
			name: "rejects a selector value longer than 63 characters",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: STATIC\nworkloadSelector: {labels: {app: " + strings.Repeat("v", 64) + "}}",
			want: []finding{e(CodeSchemaLimit, "spec.workloadSelector.labels.app")},
		},
		{
			name: "accepts SPIFFE and DNS subjectAltNames",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\nsubjectAltNames: [\"spiffe://cluster.local/ns/a/sa/b\", a.example.com]",
		},
		{
			name: "warns about an empty subjectAltNames entry",
			spec: "hosts: [a.example.com]\n" + httpPort + "\nresolution: DNS\nsubjectAltNames: [a.example.com, \"\"]",
			want: []finding{w(CodeSubjectAltEmpty, "spec.subjectAltNames[1]")},
		},
	}
	runRules(t, cases)
}

func TestUndeclaredEndpointPortMessageNamesTheDeclaredPorts(t *testing.T) {
	doc := decodeDoc(t, "", "", "", "hosts: [a.example.com]\nports: [{number: 80, name: http}, {number: 90, name: grpc}]\nresolution: STATIC\nendpoints: [{address: 10.0.0.1, ports: {https: 443}}]")
	ds := Document(doc)
	want := `port name "https" is not declared in spec.ports (declared: http, grpc)`
	for _, d := range ds {
		if d.Code == CodeEndpointPortUndeclared {
			if d.Message != want {
				t.Errorf("message = %q, want %q", d.Message, want)
			}
			return
		}
	}
	t.Fatalf("no %s finding in %s", CodeEndpointPortUndeclared, messages(ds))
}

func TestALongPortListFindsTheDuplicatesAShortOneFinds(t *testing.T) {
	t.Parallel()
	// The duplicates of a short list are searched for, those of a long one indexed: padded past
	// maxSearchedPorts with ports of their own, the list must give the same findings about
	// its first ports, with the same earlier port named.
	head := "- {number: 80, name: http, protocol: HTTP}\n- {number: 81, name: web, protocol: HTTP}\n" +
		"- {number: 80, name: web, protocol: HTTP}\n- {number: 81, name: http, protocol: HTTP}\n- {number: 82, name: web, protocol: HTTP}\n"
	pad := ""
	for n := range maxSearchedPorts {
		pad += fmt.Sprintf("- {number: %d, name: p%d, protocol: HTTP}\n", 9000+n, n)
	}
	spec := "hosts: [svc.example.com]\naddresses: [10.0.0.1]\nresolution: STATIC\nendpoints: [{address: 10.0.0.2, ports: {web: 8080}}]\nports:\n"
	short := Document(decodeDoc(t, "", "", "", spec+head))
	long := Document(decodeDoc(t, "", "", "", spec+head+pad))
	if len(short) == 0 || messages(short) != messages(long) {
		t.Fatalf("a short port list gives\n%s\na long one\n%s", messages(short), messages(long))
	}
}
