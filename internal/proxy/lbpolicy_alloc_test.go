package proxy

import (
	"net"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/httpfwd"
)

// TestRoutingUnderADestinationRuleDoesNotAllocate is not parallel, as AllocsPerRun counts the
// whole process: a request's Route and Done under a load-balancing policy, outlier detection
// and connection-pool limits reuse the route's prebuilt upstreams.
func TestRoutingUnderADestinationRuleDoesNotAllocate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backends := []*drBackend{newDRBackend(t, "a", nil), newDRBackend(t, "b", nil), newDRBackend(t, "c", nil)}
	tests := []struct {
		name    string
		traffic string
		allocs  float64
	}{
		{name: "LEAST_REQUEST", traffic: "loadBalancer: {simple: LEAST_REQUEST}"},
		{name: "ROUND_ROBIN with outlier detection and limits", traffic: `loadBalancer: {simple: ROUND_ROBIN}
outlierDetection: {consecutive5xxErrors: 5}
connectionPool: {tcp: {maxConnections: 10}, http: {http2MaxRequests: 10}}`},
		// The header lookup the key is taken from is a closure over the request head.
		{name: "consistent hash on a header", traffic: "loadBalancer: {consistentHash: {httpHeaderName: x-user}}", allocs: 1},
	}
	var docs string
	for i, tc := range tests {
		if i > 0 {
			docs += "---\n"
		}
		docs += renamed(drDocs(hostOf(i), tc.traffic, backends...), i)
	}
	h := startProxyOn(t, ln, docs, Config{}, "")
	router := &httpRouter{p: h.p}
	for i, tc := range tests {
		t.Run("routes a request under "+tc.name+" within its allocation budget", func(t *testing.T) {
			req := &httpfwd.RequestHead{Method: "GET", Host: hostOf(i), Port: 80}
			one := func() {
				up, rej := router.Route(req, 0)
				if rej != nil {
					t.Fatalf("Route: %+v", rej)
				}
				router.Responded(up, 200)
				router.Done(up, nil)
			}
			one()
			n := testing.AllocsPerRun(200, one)
			t.Logf("%s: %.1f allocations per Route+Done", tc.name, n)
			if n > tc.allocs {
				t.Fatalf("Route and Done allocate %.1f times per request, want at most %.0f", n, tc.allocs)
			}
		})
	}
}

// hostOf names the i-th service of the alloc test.
func hostOf(i int) string { return string(rune('a'+i)) + ".alloc.test" }

// renamed gives the i-th pair of documents names of their own.
func renamed(docs string, i int) string {
	return strings.ReplaceAll(strings.ReplaceAll(docs, "{name: svc}", "{name: svc"+string(rune('a'+i))+"}"), "{name: dr}", "{name: dr"+string(rune('a'+i))+"}")
}
