package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// gatewayTCPConfig is a Gateway TCP server on port 9000 whose tcp route goes to a STATIC entry
// with one loopback endpoint on backendPort.
func gatewayTCPConfig(backendPort int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: src, namespace: egress}
spec:
  hosts: [source.local]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - {port: {number: 9000, name: tcp, protocol: TCP}, hosts: ["*"]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: src, namespace: egress}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  tcp:
  - match: [{port: 9000}]
    route: [{destination: {host: source.local, port: {number: 9000}}}]
`, backendPort)
}

// TestGatewayEventLoopFlagRelaysATCPServer runs `meshentry run --gateway` with and without
// --gateway-event-loop: the TCP server relays both ways alike, and the Istio TCP metrics
// count the connection alike.
func TestGatewayEventLoopFlagRelaysATCPServer(t *testing.T) {
	t.Parallel()
	ln := echoListener(t)
	cfg := writeYAML(t, gatewayTCPConfig(ln.Addr().(*net.TCPAddr).Port))
	for _, loop := range []bool{false, true} {
		t.Run(fmt.Sprintf("event loop %v", loop), func(t *testing.T) {
			args := []string{"-f", cfg, "-n", "egress", "--gateway", "--labels", "istio=egressgateway",
				"--gateway-bind", "127.0.0.1", "--gateway-port", "9000=0", "--listen", "", "--admin", "127.0.0.1:0"}
			if loop {
				args = append(args, "--gateway-event-loop")
			}
			out := startRunArgs(t, args...)
			c, err := net.DialTimeout("tcp", out["gateway port 9000"].String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := "through the gateway's TCP server"
			io.WriteString(c, msg)
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			c.Close()
			if err != nil || string(got) != msg {
				t.Fatalf("read %q, %v; want the echo %q", got, err, msg)
			}
			if out["admin"] == nil {
				t.Skip("start reports only the first listener, the gateway's")
			}
			want := `istio_tcp_connections_closed_total{`
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				_, metrics := fetch(t, &http.Client{Timeout: 5 * time.Second}, "http://"+out["admin"].String()+"/stats/prometheus")
				if line := grepLines(metrics, want); strings.Contains(line, `destination_service="source.local"`) && strings.HasSuffix(line, " 1") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no closed connection to source.local counted:\n%s", grepLines(metrics, "istio_tcp"))
				}
			}
			_, metrics := fetch(t, &http.Client{Timeout: 5 * time.Second}, "http://"+out["admin"].String()+"/stats/prometheus")
			accepted := grepLines(metrics, `meshentry_event_loop_connections_accepted_total{listener="gateway"}`)
			if want := map[bool]string{true: " 1", false: ""}[loop]; !strings.HasSuffix(accepted, want) || (want == "") != (accepted == "") {
				t.Errorf("event loop %v: meshentry_event_loop_connections_accepted_total is %q, want the loop's one connection counted only with the flag", loop, accepted)
			}
		})
	}
}
