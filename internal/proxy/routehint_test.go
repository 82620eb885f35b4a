package proxy

import (
	"net"
	"testing"

	"github.com/meshentry/meshentry/internal/httpfwd"
)

const hintConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [static.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.5, ports: {http: 18080}}]
`

// The same host, its endpoint moved: what a request routed after the reload must reach.
const hintConfigMoved = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [static.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.6, ports: {http: 18080}}]
`

// TestRouteTakesTheHintServesLeft: the loop's Serves leaves the route it found in the request,
// Route answers by it as it answers without it, and a hint that is stale (a reload came
// between, a later attempt, a captured router) is dropped for a lookup of its own.
func TestRouteTakesTheHintServesLeft(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := startProxyOn(t, ln, hintConfig, Config{}, "")
	lh, router := loopHTTP{p: h.p}, &httpRouter{p: h.p}
	newReq := func(t *testing.T) *httpfwd.RequestHead {
		t.Helper()
		req := &httpfwd.RequestHead{Method: "GET", Host: "static.example.com", Port: 80, RequestID: []byte("id")}
		if !lh.Serves(req) {
			t.Fatal("Serves: false for a STATIC service the loop reaches")
		}
		if _, ok := req.RouteHint.(*route); !ok {
			t.Fatalf("Serves left %T as the hint, want a *route", req.RouteHint)
		}
		return req
	}
	plain := &httpfwd.RequestHead{Method: "GET", Host: "static.example.com", Port: 80, RequestID: []byte("id")}
	want, rej := router.Route(plain, 0)
	if rej != nil {
		t.Fatalf("Route without a hint: %+v", rej)
	}

	t.Run("a hint routes as the lookup does, once", func(t *testing.T) {
		req := newReq(t)
		got, rej := router.Route(req, 0)
		if rej != nil || got.Key != want.Key || got.Addr != want.Addr || got.Service != want.Service || got.Tag != want.Tag {
			t.Fatalf("Route by the hint: %+v, %+v; without one: %+v", got, rej, want)
		}
		if req.RouteHint != nil {
			t.Fatalf("the hint outlived its Route: %v", req.RouteHint)
		}
	})
	t.Run("a retry does not take the hint", func(t *testing.T) {
		req := newReq(t)
		hint := req.RouteHint.(*route)
		if router.hinted(h.p.table.Load(), req, 1) != nil || req.RouteHint != nil {
			t.Fatal("attempt 1 took the hint")
		}
		req.RouteHint = hint
		if (&httpRouter{p: h.p, captured: true}).hinted(h.p.table.Load(), req, 0) != nil {
			t.Fatal("a captured router took the hint")
		}
	})
	t.Run("a hint from before a reload is dropped", func(t *testing.T) {
		req := newReq(t)
		h.p.Update(compileSnapshot(t, hintConfigMoved))
		got, rej := router.Route(req, 0)
		if rej != nil || got.Addr != "127.0.0.6:18080" {
			t.Fatalf("Route after the reload: %+v, %+v; want the moved endpoint 127.0.0.6:18080", got, rej)
		}
	})
}

// BenchmarkServesThenRoute is the loop's two questions of a request, Serves then Route, with
// the hint (as the loop asks them) and without it (Route looking the service up again).
func BenchmarkServesThenRoute(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	h := startProxyOn(b, ln, hintConfig, Config{}, "")
	lh, router := loopHTTP{p: h.p}, &httpRouter{p: h.p}
	req := &httpfwd.RequestHead{Method: "GET", Host: "static.example.com", Port: 80, RequestID: []byte("id")}
	for _, bc := range []struct {
		name string
		keep bool
	}{{name: "with the hint", keep: true}, {name: "without it"}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !lh.Serves(req) {
					b.Fatal("Serves: false")
				}
				if !bc.keep {
					req.RouteHint = nil
				}
				if _, rej := router.Route(req, 0); rej != nil {
					b.Fatal(rej)
				}
			}
		})
	}
}

// ruleHintConfig routes /a to a.example.com and everything else to b.example.com, both STATIC,
// by a VirtualService whose rules only route (and retry): the loop serves them.
const ruleHintConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: front}
spec:
  hosts: [front.example.com, a.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.5, ports: {http: 18080}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b}
spec:
  hosts: [b.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.7, ports: {http: 18080}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front}
spec:
  hosts: [front.example.com]
  http:
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: a.example.com}}]
  - route: [{destination: {host: b.example.com}}]
`

// TestRouteTakesTheRuleServesMatched: for a host a VirtualService binds, Serves leaves the rule
// it matched, and Route follows that rule rather than match again, for attempt 0 of the same
// table only: a retry, or a reload in between, matches anew.
func TestRouteTakesTheRuleServesMatched(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := startProxyOn(t, ln, ruleHintConfig, Config{}, "")
	lh, router := loopHTTP{p: h.p}, &httpRouter{p: h.p}
	newReq := func(path string) *httpfwd.RequestHead {
		return &httpfwd.RequestHead{Method: "GET", Host: "front.example.com", Port: 80, Target: []byte(path), RequestID: []byte("id")}
	}
	// The hint of a request for /a, put on a request for /b: whoever follows it goes to a.
	a := newReq("/a")
	if !lh.Serves(a) {
		t.Fatal("Serves: false for a rule that only routes")
	}
	hint, ok := a.RouteHint.(*vsActions)
	if !ok {
		t.Fatalf("Serves left %T as the hint, want the rule's *vsActions", a.RouteHint)
	}
	for _, tc := range []struct {
		name    string
		attempt int
		reload  bool
		want    string // the endpoint the request for /b goes to
	}{
		{"attempt 0 follows the hint", 0, false, "127.0.0.5:18080"},
		{"a retry matches anew", 1, false, "127.0.0.7:18080"},
		{"a hint from before a reload is dropped", 0, true, "127.0.0.7:18080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.reload {
				h.p.Update(compileSnapshot(t, ruleHintConfig))
			}
			req := newReq("/b")
			req.RouteHint = hint
			up, rej := router.Route(req, tc.attempt)
			if rej != nil || up.Addr != tc.want || req.RouteHint != nil {
				t.Fatalf("Route: %+v, %+v, hint left %v; want %s and the hint taken", up.Addr, rej, req.RouteHint, tc.want)
			}
		})
	}
}
