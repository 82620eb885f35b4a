package config

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// decodeBoth decodes input by the direct path and by the JSON round trip alone.
func decodeBoth(input string) (direct, roundTrip []*Document, dd, rd string) {
	order := 0
	direct, ddiags, _ := decodeStream("in.yaml", strings.NewReader(input), "default", &order, newInterner())
	order = 0
	rt := newInterner()
	rt.roundTripOnly = true
	roundTrip, rdiags, _ := decodeStream("in.yaml", strings.NewReader(input), "default", &order, rt)
	return direct, roundTrip, fmt.Sprint(ddiags), fmt.Sprint(rdiags)
}

// sameDecoding fails t when the two paths decided differently about input.
func sameDecoding(t *testing.T, input string) {
	t.Helper()
	direct, roundTrip, dd, rd := decodeBoth(input)
	if dd != rd {
		t.Fatalf("findings differ:\ndirect     %s\nround trip %s", dd, rd)
	}
	if len(direct) != len(roundTrip) {
		t.Fatalf("direct path kept %d documents, round trip %d", len(direct), len(roundTrip))
	}
	for i := range direct {
		if !proto.Equal(direct[i].Spec, roundTrip[i].Spec) {
			t.Fatalf("document %d differs:\ndirect     %v\nround trip %v", i, direct[i].Spec, roundTrip[i].Spec)
		}
	}
}

const directHead = "apiVersion: networking.istio.io/v1\nkind: %s\nmetadata: {name: x}\nspec:\n"

func TestDirectDecodingSetsWhatTheJSONRoundTripSets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kind string
		spec string
	}{
		{name: "reads a full ServiceEntry", kind: "ServiceEntry", spec: "  hosts: [a.com, \"*.b.com\"]\n  addresses: [10.0.0.1, 10.1.0.0/16]\n  ports:\n  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n  location: MESH_INTERNAL\n  resolution: STATIC\n  exportTo: [\".\", other]\n  endpoints:\n  - address: 1.2.3.4\n    ports: {http: 9090}\n    labels: {app.kubernetes.io/name: x, v: \"1\"}\n    weight: 3\n    locality: r/z\n  subjectAltNames: [spiffe://x/y]\n  workloadSelector: {labels: {app: a}}\n"},
		{name: "reads enums by number", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  resolution: 2\n  location: 1\n"},
		{name: "reads proto field names", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  ports: [{number: 80, name: http, target_port: 81}]\n"},
		{name: "refuses a field under both its names", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  ports: [{number: 80, name: http, target_port: 81, targetPort: 82}]\n"},
		{name: "reads quoted and signed numbers as protojson does", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  ports: [{number: \"80\", name: http}, {number: +81, name: b}, {number: 082, name: c}]\n"},
		{name: "refuses a quoted number protojson refuses", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  ports: [{number: \"+80\", name: http}]\n"},
		{name: "leaves null fields unset", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  addresses: null\n  endpoints: ~\n"},
		{name: "refuses a null list item", kind: "ServiceEntry", spec: "  hosts: [a.com, null]\n"},
		{name: "follows aliases", kind: "ServiceEntry", spec: "  hosts: &h [a.com]\n  subjectAltNames: *h\n"},
		{name: "reads durations and wrappers through the round trip", kind: "DestinationRule", spec: "  host: a.com\n  trafficPolicy:\n    connectionPool: {tcp: {connectTimeout: 1m30s, maxConnections: 7}}\n    outlierDetection: {consecutive5xxErrors: 3, interval: 10s}\n"},
		{name: "reads a VirtualService with a oneof", kind: "VirtualService", spec: "  hosts: [a.com]\n  http:\n  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: b.com, port: {number: 80}}, weight: 100}]\n"},
		{name: "refuses a oneof set twice", kind: "VirtualService", spec: "  hosts: [a.com]\n  http:\n  - match: [{uri: {prefix: /a, exact: /b}}]\n"},
		{name: "reads a Sidecar", kind: "Sidecar", spec: "  egress:\n  - hosts: [\"./*\"]\n    port: {number: 80, protocol: HTTP, name: h}\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"},
		{name: "reads every endpoint field of a ServiceEntry", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  endpoints:\n  - {address: 1.2.3.4, network: n1, locality: r/z/s, service_account: sa, serviceAccount: sb, weight: 0, labels: {a: b}, ports: {http: 80, tls: 443}}\n"},
		{name: "refuses a ServiceEntry port protojson refuses", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  ports: [{number: 1.5, name: http}, {number: 99999999999, name: b}]\n"},
		{name: "leaves null ServiceEntry fields and items to the same rules", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  ports: [{number: 80, name: ~, protocol: null}, null]\n  endpoints: [{address: ~, labels: {a: ~}}]\n"},
		{name: "reads a ServiceEntry enum by number and refuses a float one", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  resolution: 1\n  location: 1.0\n"},
		{name: "reads a ServiceEntry workload selector through the generic path", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  workloadSelector: {labels: {app: a}}\n  exportTo: ['*']\n  subject_alt_names: [x]\n"},
		{name: "refuses a ServiceEntry field under both its names", kind: "ServiceEntry", spec: "  hosts: [a.com]\n  exportTo: [a]\n  export_to: [b]\n"},
		{name: "reads booleans in every spelling", kind: "DestinationRule", spec: "  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: True}}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sameDecoding(t, fmt.Sprintf(directHead, tc.kind)+tc.spec)
		})
	}
}

func FuzzDirectDecodingMatchesTheRoundTrip(f *testing.F) {
	for _, kind := range []string{"ServiceEntry", "VirtualService", "DestinationRule"} {
		f.Add(fmt.Sprintf(directHead, kind) + "  hosts: [a.com]\n  ports: [{number: 80, name: http}]\n  endpoints: [{address: 1.2.3.4, ports: {http: 1}, weight: 2}]\n  resolution: STATIC\n")
	}
	f.Fuzz(func(t *testing.T, input string) {
		sameDecoding(t, input)
	})
}
