package gateway

import (
	"strconv"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

func decode(t testing.TB, yaml string) []*config.Document {
	t.Helper()
	order := 0
	docs, diags := config.Decode("gw.yaml", strings.NewReader(yaml), "default", &order)
	if len(diags) > 0 {
		t.Fatalf("decode: %v", diags)
	}
	return docs
}

const twoGateways = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [edition.cnn.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["./*.example.com"]
    tls: {mode: SIMPLE, credentialName: example}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
`

func TestSelect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		yaml   string
		labels map[string]string
		want   string // "port:gateway/index:kind ..." or the error's start
		err    bool
	}{
		{name: "the selector picks the egress gateway's servers, grouped by port", yaml: twoGateways,
			labels: map[string]string{"istio": "egressgateway", "app": "x"},
			want:   "80:istio-system/egress/0:http 443:istio-system/egress/1:tls passthrough,istio-system/egress/2:terminate tls, then http"},
		{name: "labels no selector matches select nothing", yaml: twoGateways, labels: map[string]string{"istio": "other"}, want: ""},
		{name: "plaintext and TLS on one port are refused", labels: map[string]string{"a": "b"}, err: true, want: "gw.yaml:",
			yaml: `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
spec:
  servers:
  - {port: {number: 80, name: a, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 80, name: b, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: c}}
`},
		{name: "two TLS servers with the same host on one port are refused", labels: nil, err: true, want: "gw.yaml:",
			yaml: `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
spec:
  servers:
  - {port: {number: 443, name: a, protocol: TLS}, hosts: [a.com], tls: {mode: PASSTHROUGH}}
  - {port: {number: 443, name: b, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialName: c}}
`},
		{name: "an HTTPS server without tls is refused", labels: nil, err: true, want: "gw.yaml:",
			yaml: `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
spec:
  servers:
  - {port: {number: 443, name: a, protocol: HTTPS}, hosts: [a.com]}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ls, err := Select(decode(t, tc.yaml), tc.labels)
			if tc.err {
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one starting %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, l := range ls {
				var ss []string
				for _, s := range l.Servers {
					ss = append(ss, s.Gateway+"/"+strconv.Itoa(s.Index)+":"+s.Kind.String())
				}
				parts = append(parts, strconv.Itoa(int(l.Port))+":"+strings.Join(ss, ","))
			}
			if got := strings.Join(parts, " "); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
