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

func TestExplainAsGatewayWorkload(t *testing.T) {
	t.Parallel()
	example := "../../testdata/validate/examples/04-egress-gateway.yaml"
	base := []string{"explain", "-f", example, "-n", "egress", "--host", "httpbin.com", "--port", "80"}
	t.Run("the labels' Gateway explains the request as naming it does", func(t *testing.T) {
		wantCode, want, _ := runCLI(append(base, "--gateway", "istio-system/istio-egressgateway")...)
		code, out, errOut := runCLI(append(base, "--as-gateway", "--labels", "istio=egressgateway")...)
		if code != wantCode || out != want {
			t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d and:\n%s", code, out, errOut, wantCode, want)
		}
		if !strings.Contains(out, "gateway:      istio-system/istio-egressgateway server 0") {
			t.Errorf("no gateway server line in:\n%s", out)
		}
	})
	t.Run("labels no Gateway selects are refused with exit 3", func(t *testing.T) {
		code, out, _ := runCLI(append(base, "--as-gateway", "--labels", "istio=ingressgateway")...)
		want := "gateway:      not accepted: no server of any Gateway selecting istio=ingressgateway listens on port 80 (ports: none)\n"
		if code != 3 || !strings.Contains(out, want) {
			t.Errorf("exit %d, stdout:\n%s\nwant exit 3 and %q", code, out, want)
		}
	})
	t.Run("--gateway and --as-gateway together are a usage error", func(t *testing.T) {
		code, _, errOut := runCLI(append(base, "--as-gateway", "--gateway", "istio-system/istio-egressgateway")...)
		if code != 2 || !strings.Contains(errOut, "not both") {
			t.Errorf("exit %d, stderr %q; want a usage error", code, errOut)
		}
	})
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
