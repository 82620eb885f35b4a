package validate

import "testing"

func TestAnalyzeDestinationRules(t *testing.T) {
	http := "ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]\nresolution: DNS"
	api := se("api", "ns", "", "api.example.com", http)
	cases := []analyzeCase{
		{
			name: "accepts port-level settings for a port the ServiceEntry declares",
			yaml: api + other("DestinationRule", "dr", "ns", "host: api.example.com\ntrafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: SIMPLE}}]}"),
		},
		{
			name: "warns about port-level settings for a port no matching ServiceEntry declares",
			yaml: api + other("DestinationRule", "dr", "ns", "host: api.example.com\ntrafficPolicy: {portLevelSettings: [{port: {number: 8443}, tls: {mode: SIMPLE}}]}\n"+
				"subsets: [{name: v1, trafficPolicy: {portLevelSettings: [{port: {number: 9000}, loadBalancer: {simple: RANDOM}}]}}]"),
			want:     []string{"dr ME2008 spec.trafficPolicy.portLevelSettings[0].port.number", "dr ME2008 spec.subsets[0].trafficPolicy.portLevelSettings[0].port.number"},
			contains: []string{"port 8443 is not a port of any ServiceEntry", "(ports 80, 443)"},
		},
		{
			name: "warns that a newer rule's traffic policy and repeated subset are dropped by the merge",
			yaml: api + other("DestinationRule", "old", "ns", "host: api.example.com\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}\nsubsets: [{name: v1}]") +
				other("DestinationRule", "new", "ns", "host: api.example.com\ntrafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}\nsubsets: [{name: v1}, {name: v2}]"),
			want:     []string{"new ME2009 spec.trafficPolicy", "new ME2009 spec.subsets[0].name"},
			contains: []string{"the older ns/old (a.yaml:", `subset "v1" is ignored`},
		},
		{
			name: "does not warn about rules Istio keeps apart: other exportTo, other selector, other namespace",
			yaml: api + other("DestinationRule", "a", "ns", "host: api.example.com\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}") +
				other("DestinationRule", "b", "ns", "host: api.example.com\nexportTo: [.]\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}") +
				other("DestinationRule", "c", "ns", "host: api.example.com\nworkloadSelector: {matchLabels: {app: web}}\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}") +
				other("DestinationRule", "d", "other", "host: api.example.com\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}"),
		},
	}
	runAnalyze(t, cases)
}
