package explain

import (
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

func snapshotOf(t *testing.T, yaml string) *registry.Snapshot {
	t.Helper()
	order := 0
	docs, diags := config.Decode("t.yaml", strings.NewReader(yaml), "default", &order)
	if len(diags) > 0 {
		t.Fatalf("decode: %v", diags)
	}
	return registry.Build(docs, 1)
}

const meshEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [svc.internal]
  location: %LOCATION%
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {security.istio.io/tlsMode: istio}}]
  subjectAltNames: ["spiffe://cluster.local/ns/default/sa/from-entry"]
---
`

func TestExplainTLSIdentities(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		location string
		rule     string // trafficPolicy YAML, "" for no DestinationRule
		wantMode string // "" when no tls line at all
		wantIDs  string
		wantNote string
	}{
		{name: "uses the ServiceEntry's subjectAltNames for ISTIO_MUTUAL", location: "MESH_INTERNAL", rule: "{tls: {mode: ISTIO_MUTUAL}}",
			wantMode: "ISTIO_MUTUAL", wantIDs: "spiffe://cluster.local/ns/default/sa/from-entry"},
		{name: "prefers the DestinationRule's subjectAltNames", location: "MESH_INTERNAL", rule: "{tls: {mode: ISTIO_MUTUAL, subjectAltNames: ['spiffe://td/ns/x/sa/from-rule']}}",
			wantMode: "ISTIO_MUTUAL", wantIDs: "spiffe://td/ns/x/sa/from-rule"},
		{name: "applies auto mTLS to labelled MESH_INTERNAL endpoints", location: "MESH_INTERNAL",
			wantMode: "ISTIO_MUTUAL", wantIDs: "spiffe://cluster.local/ns/default/sa/from-entry", wantNote: "auto mTLS: 1 of 1 endpoints"},
		{name: "never applies auto mTLS to MESH_EXTERNAL", location: "MESH_EXTERNAL"},
		{name: "lets a rule's tls DISABLE turn auto mTLS off", location: "MESH_INTERNAL", rule: "{tls: {mode: DISABLE}}",
			wantMode: "DISABLE", wantNote: "plaintext"},
		{name: "says when the server certificate goes unverified", location: "MESH_EXTERNAL", rule: "{tls: {mode: SIMPLE, insecureSkipVerify: true}}",
			wantMode: "SIMPLE", wantNote: "not verified"},
		{name: "keeps auto mTLS when a rule sets no tls", location: "MESH_INTERNAL", rule: "{loadBalancer: {simple: RANDOM}}",
			wantMode: "ISTIO_MUTUAL", wantIDs: "spiffe://cluster.local/ns/default/sa/from-entry", wantNote: "auto mTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			yaml := strings.ReplaceAll(meshEntry, "%LOCATION%", tt.location)
			if tt.rule != "" {
				yaml += "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\nspec:\n  host: svc.internal\n  trafficPolicy: " + tt.rule + "\n"
			}
			rep := Explain(snapshotOf(t, yaml), Request{Namespace: "default", Host: "svc.internal", Port: 80, Protocol: registry.TrafficHTTP})
			var tls *TLS
			if rep.Policy != nil {
				tls = rep.Policy.TLS
			}
			if tt.wantMode == "" {
				if tls != nil {
					t.Fatalf("tls = %+v, want none", tls)
				}
				return
			}
			if tls == nil || tls.Mode != tt.wantMode {
				t.Fatalf("tls = %+v, want mode %s", tls, tt.wantMode)
			}
			if got := strings.Join(tls.Identities, ","); got != tt.wantIDs {
				t.Errorf("identities = %q, want %q", got, tt.wantIDs)
			}
			if !strings.Contains(tls.Note, tt.wantNote) {
				t.Errorf("note = %q, want it to say %q", tls.Note, tt.wantNote)
			}
		})
	}
}
