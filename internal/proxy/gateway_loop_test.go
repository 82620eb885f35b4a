package proxy

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/meshentry/meshentry/internal/evloop"
)

// gatewayLoopConfig declares one service per case of GatewayLoopTarget, all on port 9000.
func gatewayLoopConfig(port int) string {
	entry := func(name, resolution, endpoints string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: istio-system}
spec:
  hosts: [%[1]s.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: %[2]s
%[3]s---
`, name, resolution, endpoints)
	}
	rule := func(name, policy string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %[1]s, namespace: istio-system}
spec:
  host: %[1]s.test
  %[2]s
---
`, name, policy)
	}
	static := fmt.Sprintf("  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}, labels: {v: one}}]\n", port)
	return entry("static", "STATIC", static) +
		rule("static", "subsets: [{name: one, labels: {v: one}}]") +
		entry("dns", "DNS", static) +
		entry("none", "NONE", "") +
		entry("unix", "STATIC", "  endpoints: [{address: unix:///tmp/meshentry-loop.sock}]\n") +
		entry("tls", "STATIC", static) + rule("tls", "trafficPolicy: {tls: {mode: SIMPLE}}") +
		entry("pool", "STATIC", static) + rule("pool", "trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}") +
		entry("passthrough", "STATIC", static) + rule("passthrough", "trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}")
}

// TestGatewayLoopTargetServesOnlyWhatItCanServeAsGatewayPipe: a STATIC service with an IP
// endpoint in plaintext is the loop's, at that endpoint; every other case is GatewayPipe's.
func TestGatewayLoopTargetServesOnlyWhatItCanServeAsGatewayPipe(t *testing.T) {
	const port = 39123
	h := startProxy(t, gatewayLoopConfig(port), Config{Namespace: "istio-system"}, "")
	acc := evloop.Accepted{Remote: netip.MustParseAddrPort("127.0.0.1:40000"), Local: netip.MustParseAddrPort("127.0.0.1:9000")}
	tests := []struct {
		host, subset string
		port         uint32
		want         bool
	}{
		{"static.test", "", 9000, true},
		{"static.test", "one", 9000, true},
		{"static.test", "undefined", 9000, false},
		{"dns.test", "", 9000, false},
		{"none.test", "", 9000, false},
		{"unix.test", "", 9000, false},
		{"tls.test", "", 9000, false},
		{"pool.test", "", 9000, false},
		{"passthrough.test", "", 9000, false},
		// A TCP port matches by its number, as in Istio: only another port leaves the registry.
		{"undeclared.test", "", 9001, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s:%d/%s", tt.host, tt.port, tt.subset), func(t *testing.T) {
			target, ok := h.p.GatewayLoopTarget(tt.host, tt.port, tt.subset, "", acc)
			if ok {
				// The pipe began: the proxy's Shutdown waits for its end.
				defer target.Done(evloop.Result{})
			}
			if ok != tt.want {
				t.Fatalf("GatewayLoopTarget(%s, subset %q) = %v, want %v", tt.host, tt.subset, ok, tt.want)
			}
			if !ok {
				return
			}
			if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port); target.Addr != want {
				t.Errorf("Addr %v, want %v", target.Addr, want)
			}
			if target.Done == nil || target.Retry == nil || target.Connected == nil {
				t.Errorf("Target %+v lacks a hook", target)
			}
		})
	}
}
