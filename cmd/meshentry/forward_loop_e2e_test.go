package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// forwardLoopConfig declares a TCP service on port 9000 with an echo endpoint and an HTTP
// service on port 80, both STATIC on loopback.
func forwardLoopConfig(echoPort, webPort int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: apps}
spec:
  hosts: [echo.local]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: apps}
spec:
  hosts: [web.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, echoPort, webPort)
}

// rawConnect sends a CONNECT head (and then, once answered 200, msg) through the proxy at
// addr and returns the answer's head and, for a 200, the echo of msg, else the answer's body.
func rawConnect(t *testing.T, addr net.Addr, head, msg string) (string, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, head)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatalf("CONNECT answer: %v", err)
	}
	answer := resp.Status + " " + resp.Header.Get("X-Meshentry-Reason") + " " + resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return answer, string(b)
	}
	io.WriteString(c, msg)
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(br)
	return answer, string(b)
}

// TestForwardEventLoopFlagServesTheForwardPort runs `meshentry run` with and without
// --forward-event-loop: a CONNECT tunnel and a plain HTTP request through the same port (both
// on the loop with it) are answered alike and counted alike, and a CONNECT to an undeclared host is refused alike.
func TestForwardEventLoopFlagServesTheForwardPort(t *testing.T) {
	t.Parallel()
	echo := echoListener(t)
	webLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	webPort := viaEcho(t, webLn)
	cfg := writeYAML(t, forwardLoopConfig(echo.Addr().(*net.TCPAddr).Port, webPort))
	answers := map[bool][]string{}
	for _, loop := range []bool{false, true} {
		t.Run(fmt.Sprintf("event loop %v", loop), func(t *testing.T) {
			args := []string{"-f", cfg, "-n", "apps", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
			args = append(args, fmt.Sprintf("--forward-event-loop=%v", loop))
			if loop {
				args = append(args, "--event-loops", "1") // the flag taken; one loop serves all
			}
			out := startRunArgs(t, args...)
			fwd := out["forward proxy"]
			tunnel, echoed := rawConnect(t, fwd, "CONNECT echo.local:9000 HTTP/1.1\r\nHost: echo.local:9000\r\n\r\n", "through the tunnel")
			if !strings.HasPrefix(tunnel, "200 ") || echoed != "through the tunnel" {
				t.Fatalf("tunnel: %q, echo %q", tunnel, echoed)
			}
			status, body := fetch(t, viaProxy(t, fwd), "http://web.local/page")
			if status != 200 || !strings.HasPrefix(body, "web.local /page via ") {
				t.Fatalf("HTTP through the same port: %d %q", status, body)
			}
			refused, refusal := rawConnect(t, fwd, "CONNECT nowhere.test:9001 HTTP/1.1\r\nHost: nowhere.test\r\nX-Request-Id: e2e-1\r\n\r\n", "")
			answers[loop] = []string{tunnel, echoed, refused, refusal}
			if _, listed := fetch(t, &http.Client{Timeout: 5 * time.Second}, "http://"+out["admin"].String()+"/listeners"); !strings.Contains(listed, "forward_proxy::"+fwd.String()) {
				t.Errorf("/listeners does not name the forward port:\n%s", listed)
			}
			metricsURL := "http://" + out["admin"].String() + "/stats/prometheus"
			wants := []struct{ metric, service, value string }{
				{"istio_tcp_connections_closed_total{", `destination_service="echo.local"`, " 1"},
				{"istio_tcp_sent_bytes_total{", `destination_service="echo.local"`, fmt.Sprintf(" %d", len(echoed))},
				{"istio_requests_total{", `destination_service="web.local"`, " 1"},
			}
			if _, metrics := fetch(t, &http.Client{Timeout: 5 * time.Second}, metricsURL); !loop && strings.Contains(metrics, `listener="forward"`) {
				t.Errorf("--forward-event-loop=false, and the loop's metrics are there:\n%s", grepLines(metrics, `listener="forward"`))
			}
			if loop {
				// The tunnel and the HTTP request ran on the loop; the refused CONNECT was handed off.
				wants = append(wants, []struct{ metric, service, value string }{
					{"meshentry_event_loop_pairs_total{", `listener="forward"`, " 1"},
					{"meshentry_event_loop_handoffs_total{", `listener="forward"`, " 1"},
					{"meshentry_event_loop_http_requests_total{", `listener="forward"`, " 1"},
					{"meshentry_event_loop_http_connections_total{", `listener="forward"`, " 1"},
				}...)
			}
			for _, want := range wants {
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					_, metrics := fetch(t, &http.Client{Timeout: 5 * time.Second}, metricsURL)
					line := grepLines(grepLines(metrics, want.metric), want.service)
					if strings.HasSuffix(line, want.value) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s%s not%s:\n%s", want.metric, want.service, want.value, grepLines(metrics, "istio_"))
					}
				}
			}
		})
	}
	if a, b := strings.Join(answers[false], "\n"), strings.Join(answers[true], "\n"); a != b {
		t.Errorf("answers differ:\nwithout the loop:\n%s\nwith it:\n%s", a, b)
	}
}
