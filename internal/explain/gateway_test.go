package explain

import (
	"strconv"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

const gatewayDocs = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [egress/httpbin.com]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.wikipedia.org"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [edition.cnn.com]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 15443, name: auto, protocol: TLS}
    hosts: ["*.svc.cluster.local"]
    tls: {mode: AUTO_PASSTHROUGH}
`

func TestExplainGateway(t *testing.T) {
	t.Parallel()
	order := 0
	docs, diags := config.Decode("gw.yaml", strings.NewReader(gatewayDocs), "default", &order)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	egress := "istio-system/istio-egressgateway"
	tests := []struct {
		name    string
		gateway string
		host    string
		port    uint32
		want    string // "accepted server mode host line" or a piece of the reason
	}{
		{name: "a plaintext server takes a host it declares", gateway: egress, host: "httpbin.com", port: 80,
			want: "true 0 http egress/httpbin.com 7"},
		{name: "TLS servers on one port are told apart by SNI", gateway: egress, host: "en.wikipedia.org", port: 443,
			want: "true 1 tls passthrough */*.wikipedia.org 9"},
		{name: "the terminating server takes its own SNI", gateway: egress, host: "edition.cnn.com", port: 443,
			want: "true 2 terminate tls, then http */edition.cnn.com 12"},
		{name: "AUTO_PASSTHROUGH takes a cluster SNI whose host it covers", gateway: egress, host: "outbound_.80_._.a.ns.svc.cluster.local", port: 15443,
			want: "true 3 tls auto passthrough */*.svc.cluster.local 15"},
		{name: "AUTO_PASSTHROUGH refuses a cluster SNI whose host it does not cover", gateway: egress, host: "outbound_.80_._.evil.com", port: 15443,
			want: "no server on port 15443"},
		{name: "a host no server declares is not accepted", gateway: egress, host: "evil.com", port: 80, want: "no server on port 80"},
		{name: "a port the Gateway has no server on is not accepted", gateway: egress, host: "httpbin.com", port: 8080,
			want: "no server of Gateway istio-system/istio-egressgateway listens on port 8080 (ports: 80, 443, 15443)"},
		{name: "a Gateway that is not declared takes nothing", gateway: "istio-system/other", host: "httpbin.com", port: 80,
			want: "no Gateway istio-system/other is declared"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := ExplainGateway(docs, tc.gateway, tc.host, tc.port)
			checkGateway(t, g, tc.want, strconv.Itoa(g.Server), g.Mode, g.Host, strconv.Itoa(g.Line))
		})
	}
}

// checkGateway compares an accepted server, "true" and its fields, or else the refusal's
// reason, with want.
func checkGateway(t *testing.T, g *GatewayServer, want string, fields ...string) {
	t.Helper()
	if g.Accepted {
		if got := strings.Join(append([]string{"true"}, fields...), " "); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		return
	}
	if !strings.Contains(g.Reason, want) {
		t.Errorf("reason %q does not say %q", g.Reason, want)
	}
}

const workloadGatewayDocs = gatewayDocs + `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: extra, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 8080, name: http-alt, protocol: HTTP}
    hosts: ["*/api.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 9090, name: http-in, protocol: HTTP}
    hosts: ["*/in.example.com"]
`

func TestExplainGatewayWorkload(t *testing.T) {
	t.Parallel()
	order := 0
	docs, diags := config.Decode("gw.yaml", strings.NewReader(workloadGatewayDocs), "default", &order)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	egress := map[string]string{"istio": "egressgateway", "app": "egress"}
	tests := []struct {
		name   string
		labels map[string]string
		host   string
		port   uint32
		want   string // "accepted gateway server" or a piece of the reason
	}{
		{name: "each Gateway the labels select serves its own port", labels: egress, host: "api.example.com", port: 8080,
			want: "true istio-system/extra 0"},
		{name: "the other selected Gateway keeps its servers", labels: egress, host: "httpbin.com", port: 80,
			want: "true istio-system/istio-egressgateway 0"},
		{name: "a Gateway selecting other labels is not served", labels: egress, host: "in.example.com", port: 9090,
			want: "no server of any Gateway selecting app=egress,istio=egressgateway listens on port 9090 (ports: "},
		{name: "labels no Gateway selects serve nothing", labels: map[string]string{"app": "web"}, host: "httpbin.com", port: 80,
			want: "(ports: none)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := ExplainGatewayWorkload(docs, tc.labels, tc.host, tc.port)
			checkGateway(t, g, tc.want, g.Gateway, strconv.Itoa(g.Server))
		})
	}
}
