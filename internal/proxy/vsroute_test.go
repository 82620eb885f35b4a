package proxy

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// clusterSink keeps the cluster and flags of every request reported.
type clusterSink struct {
	mu       sync.Mutex
	clusters map[string]int
	flags    []telemetry.Flags
}

func (s *clusterSink) Request(r *telemetry.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clusters == nil {
		s.clusters = map[string]int{}
	}
	if r.Service != nil {
		s.clusters[r.Service.Cluster]++
	}
	s.flags = append(s.flags, r.Flags)
}

func (s *clusterSink) ConnOpened(*telemetry.Conn) {}
func (s *clusterSink) ConnClosed(*telemetry.Conn) {}

func (s *clusterSink) count(cluster string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clusters[cluster]
}

// String lists the clusters seen, for failure messages.
func (s *clusterSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.clusters)
}

// await waits until n requests were reported: a record is made after the response went out.
func (s *clusterSink) await(t *testing.T, n int) {
	t.Helper()
	pollFor(t, "telemetry records", 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.flags) >= n
	})
}

func (s *clusterSink) lastFlags() telemetry.Flags {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.flags) == 0 {
		return 0
	}
	return s.flags[len(s.flags)-1]
}

// versionedEntry is a STATIC ServiceEntry host:80 whose endpoints are the backends, each
// labelled version=<its name>.
func versionedEntry(name, host string, backends ...*drBackend) string {
	var eps []string
	for _, b := range backends {
		eps = append(eps, fmt.Sprintf("{address: 127.0.0.1, ports: {http: %d}, labels: {version: %s}}", b.port(), b.name))
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [%s]
`, name, host, strings.Join(eps, ", "))
}

// rawClient is one keep-alive connection to the forward proxy, cheaper per request than
// net/http's client, for the tests that count shares over thousands of requests.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func newRawClient(t *testing.T, h *harness) *rawClient {
	nc, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// get sends GET url and returns the status and body.
func (c *rawClient) get(url, host string) (int, string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", url, host); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// share fails the test unless got of n is within 5 points of want percent.
func share(t *testing.T, what string, got, n int, want float64) {
	t.Helper()
	pct := 100 * float64(got) / float64(n)
	if math.Abs(pct-want) > 5 {
		t.Errorf("%s: %.1f%% of %d requests, want %.0f%% ± 5", what, pct, n, want)
	}
}

func TestVirtualServiceWeightsAcrossSubsets(t *testing.T) {
	t.Parallel()
	v1, v2 := newDRBackend(t, "v1", nil), newDRBackend(t, "v2", nil)
	docs := versionedEntry("shop", "shop.test", v1, v2) + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop}
spec:
  host: shop.test
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.test]
  http:
  - route:
    - {destination: {host: shop.test, subset: v1}, weight: 20}
    - {destination: {host: shop.test, subset: v2}, weight: 80}
`
	sink := &clusterSink{}
	h := startProxy(t, docs, Config{Telemetry: sink}, "")
	c := newRawClient(t, h)
	const n = 2000
	for range n {
		if code, body := c.get("http://shop.test/", "shop.test"); code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
	}
	share(t, "subset v1", int(v1.hits.Load()), n, 20)
	share(t, "subset v2", int(v2.hits.Load()), n, 80)
	sink.await(t, n)
	if got := sink.count("outbound|80|v1|shop.test") + sink.count("outbound|80|v2|shop.test"); got != n {
		t.Errorf("%d requests reported under the subset clusters, want %d: %v", got, n, sink)
	}
}

func TestVirtualServiceUndefinedSubsetIs503NR(t *testing.T) {
	t.Parallel()
	v1 := newDRBackend(t, "v1", nil)
	docs := versionedEntry("shop", "shop.test", v1) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.test]
  http:
  - route: [{destination: {host: shop.test, subset: canary}}]
`
	sink := &clusterSink{}
	h := startProxy(t, docs, Config{Telemetry: sink}, "")
	code, body, hdr := fetch(t, drClient(t, h), "http://shop.test/")
	if code != 503 || !strings.Contains(hdr.Get("X-Meshentry-Reason"), `subset "canary"`) {
		t.Errorf("got %d (reason %q): %s; want 503 naming the subset", code, hdr.Get("X-Meshentry-Reason"), body)
	}
	sink.await(t, 1)
	if sink.lastFlags() != telemetry.NoRoute || sink.count("outbound|80|canary|shop.test") != 1 {
		t.Errorf("flags %v, clusters %v; want NR under outbound|80|canary|shop.test", sink.lastFlags(), sink)
	}
	if v1.hits.Load() != 0 {
		t.Errorf("the backend saw %d requests", v1.hits.Load())
	}
}

func TestVirtualServiceMatchKinds(t *testing.T) {
	t.Parallel()
	be := newDRBackend(t, "be", nil)
	rule := func(name, match string) string {
		return fmt.Sprintf("  - name: %s\n    match: [%s]\n    directResponse: {status: 200, body: {string: %s}}\n", name, match, name)
	}
	docs := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.test]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d, http-alt: %d}}]
`, be.port(), be.port()) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.test]
  http:
` + rule("exact", "{uri: {exact: /exact}}") +
		rule("prefix", "{uri: {prefix: /prefix/}}") +
		rule("regex", `{uri: {regex: "/re/[0-9]+"}}`) +
		rule("nocase", "{uri: {exact: /CaSe}, ignoreUriCase: true}") +
		rule("method", "{method: {exact: DELETE}}") +
		rule("header", "{headers: {x-team: {prefix: blue}}}") +
		rule("without", "{uri: {prefix: /guarded}, withoutHeaders: {x-token: {}}}") +
		rule("query", "{queryParams: {debug: {exact: \"1\"}}}") +
		rule("authority", "{uri: {prefix: /auth}, authority: {exact: api.test}}") +
		rule("port", "{port: 8080}") +
		rule("scheme", "{uri: {prefix: /scheme}, scheme: {exact: http}}") +
		rule("otherlabels", "{uri: {prefix: /src}, sourceLabels: {app: other}}") +
		rule("labels", "{uri: {prefix: /src}, sourceLabels: {app: web}}") +
		rule("othernamespace", "{uri: {prefix: /ns}, sourceNamespace: elsewhere}") +
		rule("namespace", "{uri: {prefix: /ns}, sourceNamespace: shop}") +
		"  - route: [{destination: {host: api.test, port: {number: 80}}}]\n"
	h := startProxy(t, docs, Config{Namespace: "shop", Labels: map[string]string{"app": "web"}}, "")
	c := drClient(t, h)
	tests := []struct {
		name   string
		method string
		url    string
		fields []string
		want   string
	}{
		{name: "an exact uri matches only itself", url: "http://api.test/exact", want: "exact"},
		{name: "an exact uri does not match a longer path", url: "http://api.test/exact/more", want: "be"},
		{name: "a prefix matches what starts with it", url: "http://api.test/prefix/a/b", want: "prefix"},
		{name: "a regex matches the whole path", url: "http://api.test/re/42", want: "regex"},
		{name: "a regex does not match part of a path", url: "http://api.test/re/42x", want: "be"},
		{name: "ignoreUriCase folds the case", url: "http://api.test/case", want: "nocase"},
		{name: "the method matches", method: "DELETE", url: "http://api.test/x", want: "method"},
		{name: "a header prefix matches", url: "http://api.test/x", fields: []string{"X-Team: blue-green"}, want: "header"},
		{name: "withoutHeaders matches when the header is absent", url: "http://api.test/guarded", want: "without"},
		{name: "withoutHeaders does not match when it is present", url: "http://api.test/guarded", fields: []string{"X-Token: t"}, want: "be"},
		{name: "a query parameter matches", url: "http://api.test/x?a=2&debug=1", want: "query"},
		{name: "the authority matches the Host as sent", url: "http://api.test/auth", want: "authority"},
		{name: "the port matches the service port asked for", url: "http://api.test:8080/x", want: "port"},
		{name: "the scheme of a plaintext request is http", url: "http://api.test/scheme", want: "scheme"},
		{name: "sourceLabels match the proxy's labels, not others", url: "http://api.test/src", want: "labels"},
		{name: "sourceNamespace matches the proxy's namespace, not others", url: "http://api.test/ns", want: "namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req, _ := http.NewRequest(method, tt.url, nil)
			for _, f := range tt.fields {
				k, v, _ := strings.Cut(f, ": ")
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := strings.TrimSpace(string(body)); got != tt.want {
				t.Errorf("answered by %q (status %d), want %q", got, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestVirtualServiceRoutesToAnotherServiceEntryHost(t *testing.T) {
	t.Parallel()
	front, back := newDRBackend(t, "front", nil), newDRBackend(t, "back", nil)
	docs := versionedEntry("front", "front.test", front) + "---\n" + versionedEntry("back", "back.test", back) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front}
spec:
  hosts: [front.test]
  http:
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2}
    headers:
      request: {set: {x-routed: "yes"}}
      response: {add: {x-served-by: back}}
    route: [{destination: {host: back.test}}]
  - route: [{destination: {host: front.test}}]
`
	sink := &clusterSink{}
	h := startProxy(t, docs, Config{Telemetry: sink}, "")
	c := drClient(t, h)
	code, body, hdr := fetch(t, c, "http://front.test/api/items")
	if code != 200 || body != "back" || hdr.Get("X-Served-By") != "back" {
		t.Errorf("got %d %q (x-served-by %q), want back's answer with the added field", code, body, hdr.Get("X-Served-By"))
	}
	sink.await(t, 1)
	if sink.count("outbound|80||back.test") != 1 {
		t.Errorf("clusters %v, want one request under outbound|80||back.test", sink)
	}
	if code, body, _ := fetch(t, c, "http://front.test/other"); code != 200 || body != "front" {
		t.Errorf("the fallback rule got %d %q, want front", code, body)
	}
}

func TestVirtualServiceRetriesReachASecondEndpoint(t *testing.T) {
	t.Parallel()
	bad, good := newDRBackend(t, "bad", nil), newDRBackend(t, "good", nil)
	bad.status.Store(503)
	docs := versionedEntry("svc", "svc.test", bad, good) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc}
spec:
  hosts: [svc.test]
  http:
  - route: [{destination: {host: svc.test}}]
    retries: {attempts: 2, retryOn: 5xx}
`
	h := startProxy(t, docs, Config{}, "")
	c := drClient(t, h)
	for i := range 20 {
		if code, body, _ := fetch(t, c, "http://svc.test/"); code != 200 || body != "good" {
			t.Fatalf("request %d: %d %q, want the good endpoint's answer after a retry", i, code, body)
		}
	}
	if bad.hits.Load() == 0 {
		t.Error("no request tried the failing endpoint first: the retry was not exercised")
	}
}

// TestVirtualServiceRetriesAStatusOnEndpointsAlreadyTried: with no untried endpoint left, a
// retry of a retriable status goes to one already tried, as Envoy's previous_hosts predicate
// gives way, and the client gets the upstream's last answer, not one of the proxy's own.
func TestVirtualServiceRetriesAStatusOnEndpointsAlreadyTried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		status    int
		endpoints int
		retries   string // the route's retries field, empty for Istio's default policy
		hits      int64  // requests the endpoints get in all
	}{
		{"default policy, one endpoint", 503, 1, "", 3},
		{"default policy, two endpoints", 503, 2, "", 3},
		{"5xx once, one endpoint", 500, 1, "retries: {attempts: 1, retryOn: 5xx}", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var backs []*drBackend
			for i := range tc.endpoints {
				b := newDRBackend(t, fmt.Sprintf("failing-%d", i), nil)
				b.status.Store(int64(tc.status))
				backs = append(backs, b)
			}
			docs := versionedEntry("svc", "svc.test", backs...) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc}
spec:
  hosts: [svc.test]
  http:
  - route: [{destination: {host: svc.test}}]
    ` + tc.retries + "\n"
			h := startProxy(t, docs, Config{}, "")
			code, body, hdr := fetch(t, drClient(t, h), "http://svc.test/")
			if code != tc.status || !strings.HasPrefix(body, "failing-") || hdr.Get("X-Meshentry-Reason") != "" {
				t.Errorf("got %d %q (reason %q), want the upstream's own %d", code, body, hdr.Get("X-Meshentry-Reason"), tc.status)
			}
			var hits int64
			for _, b := range backs {
				if b.hits.Load() == 0 {
					t.Errorf("%s got no request: the retries did not go to the untried endpoint first", b.name)
				}
				hits += b.hits.Load()
			}
			if hits != tc.hits {
				t.Errorf("the endpoints got %d requests, want %d: the first and each retry", hits, tc.hits)
			}
		})
	}
}

func TestVirtualServiceTimeoutAnswers504AtTheDeadline(t *testing.T) {
	t.Parallel()
	slow := newDRBackend(t, "slow", nil)
	slow.holdAll.Store(true)
	docs := versionedEntry("svc", "svc.test", slow) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc}
spec:
  hosts: [svc.test]
  http:
  - route: [{destination: {host: svc.test}}]
    timeout: 300ms
`
	sink := &clusterSink{}
	h := startProxy(t, docs, Config{Telemetry: sink}, "")
	start := time.Now()
	code, body, _ := fetch(t, drClient(t, h), "http://svc.test/")
	took := time.Since(start)
	if code != 504 || body != "upstream request timeout" {
		t.Errorf("got %d %q, want 504 upstream request timeout", code, body)
	}
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("answered after %v, want at the 300ms deadline", took)
	}
	sink.await(t, 1)
	if sink.lastFlags()&telemetry.UpstreamTimeout == 0 {
		t.Errorf("flags %v, want UT", sink.lastFlags())
	}
}

func TestVirtualServiceFaultAbortShare(t *testing.T) {
	t.Parallel()
	be := newDRBackend(t, "be", nil)
	docs := versionedEntry("svc", "svc.test", be) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc}
spec:
  hosts: [svc.test]
  http:
  - route: [{destination: {host: svc.test}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 30}}}
`
	sink := &clusterSink{}
	h := startProxy(t, docs, Config{Telemetry: sink}, "")
	c := newRawClient(t, h)
	const n = 2000
	aborted := 0
	for range n {
		code, _ := c.get("http://svc.test/", "svc.test")
		switch code {
		case 418:
			aborted++
		case 200:
		default:
			t.Fatalf("status %d", code)
		}
	}
	share(t, "aborted", aborted, n, 30)
	if got := int(be.hits.Load()); got != n-aborted {
		t.Errorf("the backend saw %d requests, want the %d not aborted", got, n-aborted)
	}
}

func TestVirtualServiceMirrorNeverSlowsTheOriginal(t *testing.T) {
	t.Parallel()
	orig := newDRBackend(t, "orig", nil)
	shadow := newDRBackend(t, "shadow", nil)
	// The mirror answers after 2 s (or when the test ends).
	shadow.holdAll.Store(true)
	time.AfterFunc(2*time.Second, shadow.unblock)
	docs := versionedEntry("svc", "svc.test", orig) + "---\n" + versionedEntry("shadow", "shadow.test", shadow) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc}
spec:
  hosts: [svc.test]
  http:
  - route: [{destination: {host: svc.test}}]
    mirror: {host: shadow.test}
    mirrorPercentage: {value: 50}
`
	h := startProxy(t, docs, Config{}, "")
	c := drClient(t, h)
	const n = 100
	var slowest time.Duration
	for range n {
		start := time.Now()
		if code, body, _ := fetch(t, c, "http://svc.test/"); code != 200 || body != "orig" {
			t.Fatalf("original got %d %q", code, body)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > time.Second {
		t.Errorf("the slowest original took %v behind a mirror that takes 2 s", slowest)
	}
	// Each copy reaches the mirror at once even though its answer takes 2 s.
	pollFor(t, "every copy started reaching the mirror", 5*time.Second, func() bool {
		return uint64(shadow.hits.Load()) == h.p.Stats().MirrorsSent
	})
	if got := int(shadow.hits.Load()); got < 30 || got > 70 {
		t.Errorf("the mirror got %d of %d requests, want about half", got, n)
	}
	if st := h.p.Stats(); st.MirrorsDropped != 0 {
		t.Errorf("Stats: %d mirrors dropped, want none under the in-flight limit", st.MirrorsDropped)
	}
}

func TestVirtualServiceRedirectAndDirectResponse(t *testing.T) {
	t.Parallel()
	be := newDRBackend(t, "be", nil)
	docs := versionedEntry("svc", "svc.test", be) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc}
spec:
  hosts: [svc.test]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: moved.test}
  - match: [{uri: {exact: /health}}]
    directResponse: {status: 204}
  - route: [{destination: {host: svc.test}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.test"}]
      allowMethods: [GET, POST]
      maxAge: 24h
`
	h := startProxy(t, docs, Config{}, "")
	c := drClient(t, h)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code, _, hdr := fetch(t, c, "http://svc.test/old/x?q=1"); code != 301 || hdr.Get("Location") != "http://moved.test/new?q=1" {
		t.Errorf("redirect: %d to %q, want 301 to http://moved.test/new?q=1", code, hdr.Get("Location"))
	}
	if code, _, _ := fetch(t, c, "http://svc.test/health"); code != 204 {
		t.Errorf("direct response: %d, want 204", code)
	}
	req, _ := http.NewRequest("OPTIONS", "http://svc.test/r", nil)
	req.Header.Set("Origin", "https://app.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.test" || resp.Header.Get("Access-Control-Max-Age") != "86400" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if be.hits.Load() != 0 {
		t.Errorf("the backend saw %d requests; all of these are answered by the proxy", be.hits.Load())
	}
}
