package proxy

import (
	"testing"

	"github.com/meshentry/meshentry/internal/httpfwd"
)

// TestRoutingThroughAVirtualServiceDoesNotAllocate is not parallel: AllocsPerRun counts the
// whole process. A request a VirtualService routes to a subset costs no allocation: the
// route's Actions and the subset's route are made once per table, and the match reuses a
// pooled request.
func TestRoutingThroughAVirtualServiceDoesNotAllocate(t *testing.T) {
	v1 := newDRBackend(t, "v1", nil)
	docs := versionedEntry("shop", "shop.test", v1) + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop}
spec:
  host: shop.test
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.test]
  http:
  - match: [{uri: {prefix: /api}, method: {exact: GET}}]
    route: [{destination: {host: shop.test, subset: v1}}]
    retries: {attempts: 2, retryOn: 5xx}
    headers: {request: {set: {x-routed: "1"}}}
  - route: [{destination: {host: shop.test}}]
`
	h := startProxy(t, docs, Config{}, "")
	router := &httpRouter{p: h.p}
	req := &httpfwd.RequestHead{Method: "GET", Host: "shop.test", Port: 80, Target: []byte("/api/items"), RequestID: []byte("id-1")}
	up, rej := router.Route(req, 0)
	if rej != nil || up.Actions == nil || up.Service.Cluster != "outbound|80|v1|shop.test" {
		t.Fatalf("Route: %+v, %+v", up, rej)
	}
	n := testing.AllocsPerRun(200, func() { router.Route(req, 0) })
	if n != 0 {
		t.Fatalf("Route allocates %.1f times per request", n)
	}
}
