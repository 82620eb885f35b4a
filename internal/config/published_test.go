package config

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

// TestDecodeReadsGoDurationsAsIstioDoes loads a DestinationRule that sets every traffic-policy
// duration field in Go's duration syntax and checks each value, since Istio accepts that syntax
// and protojson alone accepts only seconds ("90s").
func TestDecodeReadsGoDurationsAsIstioDoes(t *testing.T) {
	t.Parallel()
	res, err := Load([]string{"../../testdata/published/destination-rule-all.yaml"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Diagnostics) > 0 || len(res.Documents) != 1 {
		t.Fatalf("got %d documents and findings %v, want the one document and no finding", len(res.Documents), res.Diagnostics)
	}
	dr := res.Documents[0].DestinationRule()
	tp := dr.GetTrafficPolicy()
	pl := tp.GetPortLevelSettings()[0]
	sub := dr.GetSubsets()[0].GetTrafficPolicy()
	tests := []struct {
		name string
		got  *durationpb.Duration
		want time.Duration
	}{
		{name: "reads minutes in warmupDurationSecs", got: tp.GetLoadBalancer().GetWarmupDurationSecs(), want: time.Minute},
		{name: "reads a fraction of a second in a cookie ttl", got: tp.GetLoadBalancer().GetConsistentHash().GetHttpCookie().GetTtl(), want: 500 * time.Millisecond},
		{name: "reads milliseconds in connectTimeout", got: tp.GetConnectionPool().GetTcp().GetConnectTimeout(), want: 500 * time.Millisecond},
		{name: "reads hours in maxConnectionDuration", got: tp.GetConnectionPool().GetTcp().GetMaxConnectionDuration(), want: time.Hour},
		{name: "reads minutes and seconds in the TCP idleTimeout", got: tp.GetConnectionPool().GetTcp().GetIdleTimeout(), want: 90 * time.Second},
		{name: "reads hours in the keepalive time", got: tp.GetConnectionPool().GetTcp().GetTcpKeepalive().GetTime(), want: 2 * time.Hour},
		{name: "reads seconds over a minute in the keepalive interval", got: tp.GetConnectionPool().GetTcp().GetTcpKeepalive().GetInterval(), want: 75 * time.Second},
		{name: "reads seconds in the HTTP idleTimeout", got: tp.GetConnectionPool().GetHttp().GetIdleTimeout(), want: 10 * time.Second},
		{name: "reads minutes in the outlier interval", got: tp.GetOutlierDetection().GetInterval(), want: 5 * time.Minute},
		{name: "reads minutes in baseEjectionTime", got: tp.GetOutlierDetection().GetBaseEjectionTime(), want: 15 * time.Minute},
		{name: "reads a port-level connectTimeout", got: pl.GetConnectionPool().GetTcp().GetConnectTimeout(), want: time.Second},
		{name: "reads a port-level HTTP idleTimeout", got: pl.GetConnectionPool().GetHttp().GetIdleTimeout(), want: 3 * time.Minute},
		{name: "reads a port-level fractional outlier interval", got: pl.GetOutlierDetection().GetInterval(), want: 1500 * time.Millisecond},
		{name: "reads a port-level baseEjectionTime", got: pl.GetOutlierDetection().GetBaseEjectionTime(), want: 30 * time.Second},
		{name: "reads a subset connectTimeout", got: sub.GetConnectionPool().GetTcp().GetConnectTimeout(), want: 250 * time.Millisecond},
		{name: "reads a subset keepalive time", got: sub.GetConnectionPool().GetTcp().GetTcpKeepalive().GetTime(), want: 30 * time.Minute},
		{name: "reads a subset keepalive interval", got: sub.GetConnectionPool().GetTcp().GetTcpKeepalive().GetInterval(), want: time.Minute},
		{name: "reads a subset outlier interval", got: sub.GetOutlierDetection().GetInterval(), want: 10 * time.Second},
		{name: "reads a subset baseEjectionTime", got: sub.GetOutlierDetection().GetBaseEjectionTime(), want: 2 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got == nil {
				t.Fatal("field not set")
			}
			if got := tc.got.AsDuration(); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecodeLocatesValueErrorsAtTheirYAMLLine(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a.com\n  trafficPolicy:\n"
	tests := []struct {
		name      string
		input     string
		wantLine  int
		wantField string
		wantMsg   string
	}{
		{name: "names a duration without a unit", input: head + "    connectionPool:\n      tcp:\n        connectTimeout: 10\n", wantLine: 9, wantField: "spec.trafficPolicy.connectionPool.tcp.connectTimeout", wantMsg: `not a duration: "10"`},
		{name: "names a misspelt duration unit", input: head + "    outlierDetection:\n      interval: 5mins\n", wantLine: 8, wantField: "spec.trafficPolicy.outlierDetection.interval", wantMsg: `not a duration: "5mins"`},
		{name: "names a duration given as a list", input: head + "    outlierDetection:\n      interval: [1s]\n", wantLine: 8, wantField: "spec.trafficPolicy.outlierDetection.interval", wantMsg: "expected a duration"},
		{name: "names a wrapped value of the wrong type", input: head + "    tls:\n      mode: SIMPLE\n      insecureSkipVerify: maybe\n", wantLine: 9, wantField: "spec.trafficPolicy.tls.insecureSkipVerify", wantMsg: `expected true or false, got "maybe"`},
		{name: "names the object whose oneof is set twice", input: head + "    loadBalancer:\n      simple: ROUND_ROBIN\n      consistentHash: {useSourceIp: true}\n", wantLine: 7, wantField: "spec.trafficPolicy.loadBalancer", wantMsg: "oneof"},
		{name: "names a list item whose oneof is set twice", input: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [a.com]\n  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}\n", wantLine: 8, wantField: "spec.http[0].match[0].uri", wantMsg: "oneof"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order := 0
			docs, diags := Decode("in.yaml", strings.NewReader(tc.input), "default", &order)
			if len(docs) != 0 || len(diags) != 1 {
				t.Fatalf("got %d documents and findings %v, want one finding and the document left out", len(docs), diags)
			}
			d := diags[0]
			if d.Line != tc.wantLine || d.Field != tc.wantField || !strings.Contains(d.Message, tc.wantMsg) || strings.Contains(d.Message, "line 1:") {
				t.Fatalf("got %s (line %d, field %q), want line %d field %q message containing %q and no JSON offset", d, d.Line, d.Field, tc.wantLine, tc.wantField, tc.wantMsg)
			}
		})
	}
}
