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
		{
			name: "accepts route subsets a DestinationRule defines, short names included",
			yaml: se("reviews", "shop", "", "reviews.shop.svc.cluster.local", http) +
				other("DestinationRule", "dr", "shop", "host: reviews\nsubsets: [{name: v1}]") +
				other("VirtualService", "vs", "shop", "hosts: [reviews]\nhttp: [{route: [{destination: {host: reviews.shop.svc.cluster.local, subset: v1}}]}]"),
		},
		{
			name: "warns about a route subset no DestinationRule defines, as Istio's IST0101",
			yaml: api + other("DestinationRule", "dr", "ns", "host: api.example.com\nsubsets: [{name: v1}]") +
				other("VirtualService", "vs", "ns", "hosts: [api.example.com]\nhttp: [{route: [{destination: {host: api.example.com, subset: v2}}], mirror: {host: api.example.com, subset: v1}}]"),
			want:     []string{"vs IST0101 spec.http[0].route[0].destination.subset"},
			contains: []string{`defines subset "v2"`},
		},
	}
	runAnalyze(t, cases)
}
