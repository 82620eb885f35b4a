package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestExplainGatewayNamesTheServer(t *testing.T) {
	t.Parallel()
	example := "../../testdata/validate/examples/04-egress-gateway.yaml"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{name: "the server that takes the host is named with its file and line", wantCode: 0,
			args: []string{"--host", "httpbin.com", "--port", "80"},
			want: "gateway:      istio-system/istio-egressgateway server 0 (port 80 HTTP, http), " + example + ":28"},
		{name: "a port no server listens on is refused with exit 3", wantCode: 3,
			args: []string{"--host", "httpbin.com", "--port", "443"},
			want: "gateway:      not accepted: no server of Gateway istio-system/istio-egressgateway listens on port 443 (ports: 80)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"explain", "-f", example, "-n", "egress", "--gateway", "istio-system/istio-egressgateway"}, tc.args...)
			code, out, errOut := runCLI(args...)
			if code != tc.wantCode || !strings.Contains(out, tc.want+"\n") {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d and the line %q", code, out, errOut, tc.wantCode, tc.want)
			}
		})
	}
}

func TestRunRefusesBadGatewayFlags(t *testing.T) {
	t.Parallel()
	example := "../../testdata/validate/examples/04-egress-gateway.yaml"
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "a --gateway-port that is not two ports is a usage error", args: []string{"--gateway-port", "80:8080"},
			want: `--gateway-port: "80:8080" is not SERVER=BIND`},
		{name: "labels that select no Gateway stop the start", args: []string{"--labels", "istio=ingressgateway"},
			want: "no Gateway's selector matches the labels"},
		{name: "a server port that cannot be bound names its server", args: []string{"--labels", "istio=egressgateway", "--gateway-port", "80=" + busy},
			want: "Gateway istio-system/istio-egressgateway server 0 (port 80 HTTP) at " + example + ":28: listen on 127.0.0.1:" + busy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "-f", example, "-n", "egress", "--gateway", "--gateway-bind", "127.0.0.1",
				"--listen", "", "--admin", ""}, tc.args...)
			code, _, errOut := runCLI(args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant a failure saying %q", code, errOut, tc.want)
			}
		})
	}
}
