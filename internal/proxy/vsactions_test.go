package proxy

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

func TestSubsetTrafficPolicyOverridesTheRules(t *testing.T) {
	t.Parallel()
	a := newDRBackend(t, "v1", nil)
	b, c := newDRBackend(t, "v2a", nil), newDRBackend(t, "v2b", nil)
	docs := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop}
spec:
  hosts: [shop.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: %d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: %d}, labels: {version: v2}}
  - {address: 127.0.0.1, ports: {http: %d}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop}
spec:
  host: shop.test
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.test]
  http:
  - route: [{destination: {host: shop.test, subset: v2}}]
`, a.port(), b.port(), c.port())
	h := startProxy(t, docs, Config{}, "")
	client := drClient(t, h)
	var got []string
	for range 12 {
		code, body, _ := fetch(t, client, "http://shop.test/")
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		got = append(got, body)
	}
	if a.hits.Load() != 0 {
		t.Errorf("the endpoint outside the subset got %d requests", a.hits.Load())
	}
	// The subset's ROUND_ROBIN replaces the rule's RANDOM: the two endpoints alternate exactly
	// (RANDOM would, 2 times in 4096).
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("request %d went to %s again: %v, want the subset's endpoints in turn", i, got[i], got)
		}
	}
}

func TestVirtualServiceRewritesAndDelay(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 4)
	be := startEchoHost(t, seen)
	docs := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [svc.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc}
spec:
  hosts: [svc.test]
  http:
  - match: [{uri: {prefix: /service/}}]
    rewrite:
      uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: '\2/instance/\1'}
      authority: internal.svc.test
    route: [{destination: {host: svc.test}}]
  - match: [{uri: {prefix: /slow}}]
    fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}
    route: [{destination: {host: svc.test}}]
`, be)
	sink := &clusterSink{}
	h := startProxy(t, docs, Config{Telemetry: sink}, "")
	c := drClient(t, h)
	if code, _, _ := fetch(t, c, "http://svc.test/service/foo/v1/api"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if got := <-seen; got != "internal.svc.test /v1/api/instance/foo" {
		t.Errorf("upstream saw %q, want the regex rewrite and the new authority", got)
	}
	start := time.Now()
	if code, _, _ := fetch(t, c, "http://svc.test/slow"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("answered after %v, before the 300ms delay", took)
	}
	sink.await(t, 2)
	if sink.lastFlags() != telemetry.DelayInjected {
		t.Errorf("flags %v, want DI", sink.lastFlags())
	}
}

// startEchoHost serves on loopback, sending "HOST PATH" of each request to seen; it returns the port.
func startEchoHost(t *testing.T, seen chan<- string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Host + " " + r.RequestURI
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}
