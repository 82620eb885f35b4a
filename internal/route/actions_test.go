package route

import (
	"reflect"
	"testing"
	"time"
)

const actionsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: actions, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - name: defaults
    match: [{uri: {exact: /defaults}}]
    route: [{destination: {host: httpbin.org}}]
  - name: tuned
    match: [{uri: {exact: /tuned}}]
    timeout: 2500ms
    retries: {attempts: 4, perTryTimeout: 500ms, retryOn: "gateway-error,reset,504", retryRemoteLocalities: true}
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 12.5}}
      abort: {httpStatus: 503, percentage: {value: 20}}
    headers:
      request: {set: {X-Set: a}, add: {x-add: b}, remove: [X-Drop]}
      response: {set: {x-resp: c}}
    mirror: {host: other.org, subset: shadow}
    mirrorPercentage: {value: 30}
    rewrite: {uriRegexRewrite: {match: "^/tuned/(.*)$", rewrite: "/v2/\\1"}, authority: up.example.com}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example.com"}, {regex: "https://.*\\.b\\.example\\.com"}]
      allowMethods: [GET, POST]
      maxAge: 24h
      allowCredentials: true
    route:
    - destination: {host: httpbin.org}
      headers: {request: {set: {x-dest: d}}}
  - name: no-retries
    match: [{uri: {exact: /no-retries}}]
    retries: {attempts: 0}
    route: [{destination: {host: httpbin.org}}]
  - name: redirect
    match: [{uri: {exact: /redirect}}]
    redirect: {uri: /new, authority: new.example.com, derivePort: FROM_REQUEST_PORT}
  - name: direct
    match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {string: teapot}}
`

func TestActionsArePreParsed(t *testing.T) {
	t.Parallel()
	table := Build(snapshot(t, httpbinEntry+actionsVS), Proxy{Namespace: "default"})
	if errs := table.Errors(); len(errs) > 0 {
		t.Fatalf("build: %v", errs)
	}
	get := func(t *testing.T, path string) *HTTPRoute {
		t.Helper()
		r := table.HTTP(&Request{Host: "httpbin.org", Port: 80, Method: "GET", Path: []byte(path)})
		if r == nil || r.NotFound {
			t.Fatalf("no route for %s", path)
		}
		return r
	}
	t.Run("a rule without retries gets Istio's default policy and no timeout", func(t *testing.T) {
		t.Parallel()
		r := get(t, "/defaults")
		if want := DefaultRetries(); !reflect.DeepEqual(*r.Retries, want) {
			t.Fatalf("retries %+v, want %+v", *r.Retries, want)
		}
		if r.Retries.On.String() != "connect-failure,refused-stream,retriable-status-codes,cancelled,unavailable" || r.Timeout != 0 {
			t.Fatalf("retryOn %s, timeout %v", r.Retries.On, r.Timeout)
		}
	})
	t.Run("retries, timeout and faults are parsed", func(t *testing.T) {
		t.Parallel()
		r := get(t, "/tuned")
		want := RetryPolicy{Attempts: 4, PerTryTimeout: 500 * time.Millisecond, On: RetryGatewayError | RetryReset | RetryRetriableStatusCodes,
			StatusCodes: []int{504}, RemoteLocalities: true}
		if !reflect.DeepEqual(*r.Retries, want) || r.Timeout != 2500*time.Millisecond {
			t.Fatalf("retries %+v timeout %v, want %+v and 2.5s", *r.Retries, r.Timeout, want)
		}
		if f := *r.Fault; f != (Fault{Delay: time.Second, DelayPercent: 12.5, AbortStatus: 503, AbortPercent: 20}) {
			t.Fatalf("fault %+v", f)
		}
	})
	t.Run("header edits, mirror, rewrite and CORS are parsed", func(t *testing.T) {
		t.Parallel()
		r := get(t, "/tuned")
		wantReq := FieldOps{Set: []Field{{"x-set", "a"}, {"x-dest", "d"}}, Add: []Field{{"x-add", "b"}}, Remove: []string{"x-drop"}}
		if !reflect.DeepEqual(r.Headers.Request, wantReq) || !reflect.DeepEqual(r.Headers.Response.Set, []Field{{"x-resp", "c"}}) {
			t.Fatalf("headers %+v", r.Headers)
		}
		if r.Mirror == nil || r.Mirror.Cluster != "outbound|80|shadow|other.org" || r.MirrorPercent != 30 {
			t.Fatalf("mirror %+v at %v%%", r.Mirror, r.MirrorPercent)
		}
		if got := r.Rewrite.URIRegex.ReplaceAllString("/tuned/a/b", r.Rewrite.URIRegexReplace); got != "/v2/a/b" || r.Rewrite.Authority != "up.example.com" {
			t.Fatalf("rewrite gives %q, authority %q", got, r.Rewrite.Authority)
		}
		c := r.CORS
		if !c.AllowsOrigin([]byte("https://a.example.com")) || !c.AllowsOrigin([]byte("https://x.b.example.com")) || c.AllowsOrigin([]byte("https://evil.com")) {
			t.Fatal("allowOrigins do not match as written")
		}
		if c.AllowMethods != "GET,POST" || c.MaxAge != 24*time.Hour || !c.AllowCredentials {
			t.Fatalf("cors %+v", c)
		}
	})
	t.Run("attempts 0 turns retries off", func(t *testing.T) {
		t.Parallel()
		if r := get(t, "/no-retries"); r.Retries.Attempts != 0 || r.Retries.On != 0 {
			t.Fatalf("retries %+v", r.Retries)
		}
	})
	t.Run("redirect and direct response answer without destinations", func(t *testing.T) {
		t.Parallel()
		rd := get(t, "/redirect")
		if *rd.Redirect != (Redirect{URI: "/new", Authority: "new.example.com", DerivePort: FromRequestPort, Code: 301}) || len(rd.Route) != 0 || rd.Pick(7) != nil {
			t.Fatalf("redirect %+v, route %v", rd.Redirect, rd.Route)
		}
		dr := get(t, "/direct")
		if dr.DirectResponse.Status != 418 || string(dr.DirectResponse.Body) != "teapot" {
			t.Fatalf("direct response %+v", dr.DirectResponse)
		}
	})
}

func TestParseRetryOn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		on      RetryOn
		codes   []int
		wantErr bool
	}{
		{name: "reads Envoy's conditions", in: "5xx,connect-failure, refused-stream", on: Retry5xx | RetryConnectFailure | RetryRefusedStream},
		{name: "turns status codes into retriable-status-codes", in: "503,429", on: RetryRetriableStatusCodes, codes: []int{503, 429}},
		{name: "reads gRPC conditions", in: "cancelled,unavailable,deadline-exceeded", on: RetryCancelled | RetryUnavailable | RetryDeadlineExceeded},
		{name: "refuses an unknown condition", in: "5xx,sometimes", wantErr: true},
		{name: "refuses a number that is not a status", in: "42", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			on, codes, err := ParseRetryOn(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && (on != tc.on || !reflect.DeepEqual(codes, tc.codes)) {
				t.Fatalf("got %s %v, want %s %v", on, codes, tc.on, tc.codes)
			}
		})
	}
}

func TestPickFollowsWeights(t *testing.T) {
	t.Parallel()
	r := &HTTPRoute{Route: []Destination{{Cluster: "a", Weight: 75}, {Cluster: "b", Weight: 25}}}
	r.total = weighted(r.Route)
	counts := map[string]int{}
	for n := uint32(0); n < 2000; n++ {
		counts[r.Pick(n).Cluster]++
	}
	if counts["a"] != 1500 || counts["b"] != 500 {
		t.Fatalf("counter picks %v, want 1500/500", counts)
	}
}
