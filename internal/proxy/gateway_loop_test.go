package proxy

import (
	"errors"
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

// TestGatewayLoopTargetChecksForItselfOnceConnected gives the loop dialGuarded's check after
// the connect, where one of the proxy's listeners is on a wildcard address: a connection
// whose two ends share an IP on such a port is the proxy reaching itself.
func TestGatewayLoopTargetChecksForItselfOnceConnected(t *testing.T) {
	const port = 39124
	acc := evloop.Accepted{Remote: netip.MustParseAddrPort("127.0.0.1:40000"), Local: netip.MustParseAddrPort("127.0.0.1:9000")}
	other := netip.MustParseAddrPort("192.0.2.7:40100") // never dialled: Check only compares
	tests := []struct {
		name   string
		self   []netip.AddrPort
		check  bool
		remote netip.AddrPort
		local  netip.AddrPort
		isLoop bool
	}{
		{"no wildcard listener: no check", []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:40100")}, false, other, other, false},
		{"wildcard port, same IP both ends", []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:40100")}, true,
			other, netip.AddrPortFrom(other.Addr(), 51000), true},
		{"wildcard port, another IP", []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:40100")}, true,
			other, netip.MustParseAddrPort("192.0.2.8:51000"), false},
		{"another port", []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:40100")}, true,
			netip.AddrPortFrom(other.Addr(), 40101), netip.AddrPortFrom(other.Addr(), 51000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startProxy(t, gatewayLoopConfig(port), Config{Namespace: "istio-system", SelfAddrs: tt.self}, "")
			target, ok := h.p.GatewayLoopTarget("static.test", 9000, "", "", acc)
			if !ok {
				t.Fatal("GatewayLoopTarget refused a STATIC destination")
			}
			defer target.Done(evloop.Result{})
			if (target.Check != nil) != tt.check {
				t.Fatalf("Check set %v, want %v", target.Check != nil, tt.check)
			}
			if target.Check == nil {
				return
			}
			err := target.Check(tt.remote, tt.local)
			if errors.Is(err, errLoop) != tt.isLoop {
				t.Errorf("Check(%v from %v) = %v, want a loop %v", tt.remote, tt.local, err, tt.isLoop)
			}
		})
	}
}
