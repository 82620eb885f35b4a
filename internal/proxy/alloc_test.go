package proxy

import (
	"net"
	"testing"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// TestRoutingAnEndpointDoesNotAllocate is not parallel: AllocsPerRun counts the allocations of
// the whole process. The guarded dial must not cost the keep-alive path an allocation: routes
// carry one prebuilt Dial per endpoint address, and the loop check parses without allocating.
func TestRoutingAnEndpointDoesNotAllocate(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Set("named.internal", 3600, "127.0.0.7")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := startProxyOn(t, ln, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [static.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.5, ports: {http: 18080}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: named}
spec:
  hosts: [named.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: named.internal}]
`, Config{}, dns.Addr)
	router := &httpRouter{p: h.p}
	tests := []struct {
		name string
		host string
	}{
		{name: "a STATIC endpoint", host: "static.example.com"},
		{name: "a DNS endpoint whose answer is cached", host: "named.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &httpfwd.RequestHead{Method: "GET", Host: tc.host, Port: 80}
			if up, rej := router.Route(req, 0); rej != nil || up.Dial == nil {
				t.Fatalf("Route: %+v, %+v", up, rej)
			}
			if n := testing.AllocsPerRun(200, func() { router.Route(req, 0) }); n != 0 {
				t.Fatalf("Route allocates %.1f times per request", n)
			}
		})
	}
}
