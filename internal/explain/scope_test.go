package explain

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/registry"
)

const scopeYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: own, namespace: team}
spec:
  hosts: [own.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: foreign, namespace: other}
spec:
  hosts: [foreign.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress-proxy, namespace: team}
spec:
  hosts: [egress.proxy.internal]
  ports: [{number: 3128, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.9}]
---
`

func TestExplainReportsTheSidecarScope(t *testing.T) {
	t.Parallel()
	narrow := "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: narrow, namespace: team}\nspec:\n  egress:\n  - hosts: [./*]\n"
	egress := "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: via-proxy, namespace: team}\nspec:\n" +
		"  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: egress.proxy.internal, port: {number: 3128}}\n  egress:\n  - hosts: [./*]\n"
	tests := []struct {
		name        string
		sidecar     string
		host        string
		wantOutcome string
		wantCluster string
		wantSidecar string // "" when the report names no Sidecar
		wantIn      []string
	}{
		{name: "names no Sidecar when none applies", host: "foreign.example.com", wantOutcome: "matched", wantCluster: "outbound|80||foreign.example.com"},
		{name: "names the Sidecar that applies to a host in scope", sidecar: narrow, host: "own.example.com",
			wantOutcome: "matched", wantCluster: "outbound|80||own.example.com", wantSidecar: "team/narrow",
			wantIn: []string{"sidecar:      team/narrow (t.yaml:", "default (no workloadSelector) of namespace team"}},
		{name: "says why a host is out of the Sidecar's scope", sidecar: narrow, host: "foreign.example.com",
			wantOutcome: "blackhole", wantCluster: registry.BlackHoleCluster, wantSidecar: "team/narrow",
			wantIn: []string{"out of scope: Sidecar team/narrow", "does not import other/foreign.example.com", "its hosts are team/*"}},
		{name: "shows the egress proxy that takes unmatched traffic", sidecar: egress, host: "foreign.example.com",
			wantOutcome: "matched", wantCluster: "outbound|3128||egress.proxy.internal", wantSidecar: "team/via-proxy",
			wantIn: []string{"outboundTrafficPolicy ALLOW_ANY overrides", "egressProxy: outbound|3128||egress.proxy.internal", "sends it to its egressProxy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := snapshotOf(t, scopeYAML+tc.sidecar)
			rep := Explain(snap, Request{Namespace: "team", Host: tc.host, Port: 80, Protocol: registry.TrafficHTTP})
			if rep.Outcome != tc.wantOutcome || rep.Cluster != tc.wantCluster {
				t.Fatalf("outcome %s cluster %s, want %s %s (%s)", rep.Outcome, rep.Cluster, tc.wantOutcome, tc.wantCluster, rep.Reason)
			}
			switch {
			case tc.wantSidecar == "" && rep.Sidecar != nil:
				t.Fatalf("report names Sidecar %+v, want none", rep.Sidecar)
			case tc.wantSidecar != "" && (rep.Sidecar == nil || rep.Sidecar.Name != tc.wantSidecar):
				t.Fatalf("report names Sidecar %+v, want %s", rep.Sidecar, tc.wantSidecar)
			}
			var buf bytes.Buffer
			rep.WriteText(&buf)
			for _, want := range tc.wantIn {
				if !strings.Contains(buf.String(), want) {
					t.Errorf("text lacks %q:\n%s", want, buf.String())
				}
			}
		})
	}
}
