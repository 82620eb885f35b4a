package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

func TestRoundRobinRotatesExactlyAcrossThreeBackends(t *testing.T) {
	t.Parallel()
	a, b, c := newDRBackend(t, "a", nil), newDRBackend(t, "b", nil), newDRBackend(t, "c", nil)
	h := startProxy(t, drDocs("rr.test", "loadBalancer: {simple: ROUND_ROBIN}", a, b, c), Config{}, "")
	client := drClient(t, h)
	var got []string
	for range 12 {
		code, body, _ := fetch(t, client, "http://rr.test/")
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		got = append(got, body)
	}
	first := map[string]bool{got[0]: true, got[1]: true, got[2]: true}
	if len(first) != 3 {
		t.Fatalf("the first three requests went to %v, want each backend once", got[:3])
	}
	for i := 3; i < len(got); i++ {
		if got[i] != got[i-3] {
			t.Fatalf("request %d went to %s, not %s as the rotation says: %v", i, got[i], got[i-3], got)
		}
	}
}

func TestLeastRequestAvoidsTheBackendHoldingASlowRequest(t *testing.T) {
	t.Parallel()
	held := make(chan string, 1)
	a, b := newDRBackend(t, "a", held), newDRBackend(t, "b", held)
	h := startProxy(t, drDocs("lr.test", "loadBalancer: {simple: LEAST_REQUEST}", a, b), Config{}, "")
	client := drClient(t, h)
	slow := make(chan error, 1)
	go func() {
		_, _, _, err := do(client, "http://lr.test/slow", "X-Hold: 1")
		slow <- err
	}()
	var busy string
	select {
	case busy = <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow request reached no backend")
	}
	// Two random choices with one busy backend: it is chosen only when both draws land on it
	// (1 in 4); weighted random would send it half the requests.
	const n = 200
	onBusy := 0
	for range n {
		code, body, _ := fetch(t, client, "http://lr.test/")
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		if body == busy {
			onBusy++
		}
	}
	a.unblock()
	b.unblock()
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if onBusy > n*3/8 {
		t.Fatalf("%d of %d requests went to %s, which held a request all along; least request sends about %d", onBusy, n, busy, n/4)
	}
}

func TestConsistentHashKeepsEachKeyOnOneBackend(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		hash string
		// request gives the URL and fields of a request with key k.
		request func(k string) (string, []string)
	}{
		{name: "keeps each value of a header on one backend", hash: "{httpHeaderName: x-user}",
			request: func(k string) (string, []string) { return "http://hash.test/", []string{"X-User: " + k} }},
		{name: "keeps each value of a query parameter on one backend", hash: "{httpQueryParameterName: user}",
			request: func(k string) (string, []string) { return "http://hash.test/?a=1&user=" + k, nil }},
		{name: "keeps one client address on one backend", hash: "{useSourceIp: true}",
			request: func(string) (string, []string) { return "http://hash.test/", nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b, c := newDRBackend(t, "a", nil), newDRBackend(t, "b", nil), newDRBackend(t, "c", nil)
			h := startProxy(t, drDocs("hash.test", "loadBalancer: {consistentHash: "+tc.hash+"}", a, b, c), Config{}, "")
			client := drClient(t, h)
			where := map[string]string{}
			for i := range 50 {
				key := fmt.Sprintf("user-%d", i%5)
				url, fields := tc.request(key)
				code, body, _ := fetch(t, client, url, fields...)
				if code != 200 {
					t.Fatalf("status %d: %s", code, body)
				}
				if prev, ok := where[key]; ok && prev != body {
					t.Fatalf("%s went to %s, then to %s", key, prev, body)
				}
				where[key] = body
			}
		})
	}
}

func TestConsistentHashOnACookieWithTTLSetsItWhenAbsentAndHonoursIt(t *testing.T) {
	t.Parallel()
	a, b, c := newDRBackend(t, "a", nil), newDRBackend(t, "b", nil), newDRBackend(t, "c", nil)
	h := startProxy(t, drDocs("cookie.test", "loadBalancer: {consistentHash: {httpCookie: {name: sticky, path: /, ttl: 60s}}}", a, b, c), Config{}, "")
	client := drClient(t, h)
	code, first, hdr := fetch(t, client, "http://cookie.test/")
	set := hdr.Get("Set-Cookie")
	if code != 200 || !strings.HasPrefix(set, "sticky=") || !strings.Contains(set, "Max-Age=60") {
		t.Fatalf("a request without the cookie got %d and Set-Cookie %q, want sticky=…; Max-Age=60", code, set)
	}
	cookie, _, _ := strings.Cut(set, ";")
	for range 20 {
		code, body, hdr := fetch(t, client, "http://cookie.test/", "Cookie: "+cookie)
		if code != 200 || body != first {
			t.Fatalf("with %s the request went to %s (status %d), not %s", cookie, body, code, first)
		}
		if got := hdr.Get("Set-Cookie"); got != "" {
			t.Fatalf("a request carrying the cookie was given another: %q", got)
		}
	}
}

func TestPassthroughGoesToTheOriginalDestination(t *testing.T) {
	t.Parallel()
	real, decoy := newDRBackend(t, "original", nil), newDRBackend(t, "endpoint", nil)
	dns := dnstest.Start(t)
	dns.Set("pass.test", 30, "127.0.0.1")
	docs := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [pass.test]
  ports: [{number: %d, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, real.port(), decoy.port())
	cases := []struct {
		name    string
		traffic string
		// captured sends the request through transparent capture instead of the forward proxy.
		captured bool
		want     string
	}{
		{name: "sends the request where the application addressed it under PASSTHROUGH", traffic: "loadBalancer: {simple: PASSTHROUGH}", want: "original"},
		{name: "sends a captured request to its original destination under PASSTHROUGH", traffic: "loadBalancer: {simple: PASSTHROUGH}", captured: true, want: "original"},
		{name: "sends it to the declared endpoint without a DestinationRule", want: "endpoint"},
		{name: "sends a captured request to the declared endpoint without a DestinationRule", captured: true, want: "endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := docs
			if tc.traffic != "" {
				d += "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\nspec:\n  host: pass.test\n  trafficPolicy:\n" + indent(tc.traffic, "    ") + "\n"
			}
			h := startProxy(t, d, Config{}, dns.Addr)
			var code int
			var body string
			if tc.captured {
				orig := fmt.Sprintf("127.0.0.1:%d", real.port())
				capture := h.serveCapture(t, orig)
				c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
				t.Cleanup(c.CloseIdleConnections)
				code, body, _ = fetch(t, c, "http://"+capture+"/", fmt.Sprintf("Host: pass.test:%d", real.port()))
			} else {
				code, body, _ = fetch(t, drClient(t, h), fmt.Sprintf("http://pass.test:%d/", real.port()))
			}
			if code != 200 || body != tc.want {
				t.Fatalf("got %d from %q, want 200 from %q", code, body, tc.want)
			}
		})
	}
}

func TestOutlierDetectionEjectsABackendAnswering500(t *testing.T) {
	t.Parallel()
	good, bad := newDRBackend(t, "good", nil), newDRBackend(t, "bad", nil)
	bad.status.Store(500)
	traffic := `loadBalancer: {simple: ROUND_ROBIN}
outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}`
	h := startProxy(t, drDocs("od.test", traffic, good, bad), Config{}, "")
	client := drClient(t, h)
	for i := 0; bad.hits.Load() < 3; i++ {
		if i > 20 {
			t.Fatalf("the bad backend had %d requests of 20", bad.hits.Load())
		}
		fetch(t, client, "http://od.test/")
	}
	// The third 500 reaches the client just before the proxy counts it.
	badAddr := fmt.Sprintf("127.0.0.1:%d", bad.port())
	pollFor(t, "the bad backend ejected", 5*time.Second, func() bool {
		for _, c := range h.p.Clusters() {
			for _, ep := range c.Endpoints {
				if ep.Address == badAddr && ep.Ejected && ep.Counts.Ejections == 1 {
					return true
				}
			}
		}
		return false
	})
	for range 30 {
		if code, body, _ := fetch(t, client, "http://od.test/"); code != 200 || body != "good" {
			t.Fatalf("after three 500s in a row the request got %d from %s", code, body)
		}
	}
	if n := bad.hits.Load(); n != 3 {
		t.Fatalf("the ejected backend had %d requests, want 3", n)
	}
}

func TestAnOutlierEjectionOutlastsAReload(t *testing.T) {
	t.Parallel()
	good, bad := newDRBackend(t, "good", nil), newDRBackend(t, "bad", nil)
	bad.status.Store(500)
	traffic := `loadBalancer: {simple: ROUND_ROBIN}
outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}`
	docs := drDocs("reload.test", traffic, good, bad)
	h := startProxy(t, docs, Config{}, "")
	client := drClient(t, h)
	for i := 0; bad.hits.Load() < 1; i++ {
		if i > 10 {
			t.Fatal("the bad backend got no request")
		}
		fetch(t, client, "http://reload.test/")
	}
	h.p.Update(compileSnapshot(t, docs))
	for range 20 {
		if code, body, _ := fetch(t, client, "http://reload.test/"); body != "good" {
			t.Fatalf("after the reload a request got %d from %s: the ejection was forgotten", code, body)
		}
	}
}

func TestLocalityLbSettingSteersTrafficBetweenLocalities(t *testing.T) {
	t.Parallel()
	near, far := newDRBackend(t, "near", nil), newDRBackend(t, "far", nil)
	docs := func(traffic string) string {
		d := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [loc.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: %d}, locality: r1/z1, labels: {tier: gold}}
  - {address: 127.0.0.1, ports: {http: %d}, locality: r2/z1, labels: {tier: bronze}}
`, near.port(), far.port())
		return d + "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\nspec:\n  host: loc.test\n  trafficPolicy:\n" + indent(traffic, "    ") + "\n"
	}
	cases := []struct {
		name    string
		traffic string
		labels  map[string]string
		// want is the backend every request must reach, empty when both must be reached.
		want string
	}{
		{name: "sends everything to the far region when distribute says so",
			traffic: "loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {distribute: [{from: r1/z1/*, to: {r2/*: 100}}]}}", want: "far"},
		{name: "prefers endpoints that share the proxy's label under failoverPriority",
			traffic: "loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {failoverPriority: [tier]}}\noutlierDetection: {consecutive5xxErrors: 5}",
			labels:  map[string]string{"tier": "bronze"}, want: "far"},
		{name: "spreads over both localities when locality load balancing is disabled",
			traffic: "loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: false}}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, docs(tc.traffic), Config{Locality: "r1/z1", Labels: tc.labels}, "")
			client := drClient(t, h)
			seen := map[string]int{}
			for range 20 {
				code, body, _ := fetch(t, client, "http://loc.test/")
				if code != 200 {
					t.Fatalf("status %d: %s", code, body)
				}
				seen[body]++
			}
			switch {
			case tc.want != "" && seen[tc.want] != 20:
				t.Fatalf("requests went to %v, want all 20 to %s", seen, tc.want)
			case tc.want == "" && (seen["near"] == 0 || seen["far"] == 0):
				t.Fatalf("requests went to %v, want both localities", seen)
			}
		})
	}
}

// nameServer accepts connections on loopback and answers the first byte of each with its name,
// then closes it.
func nameServer(t *testing.T, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				c.Write([]byte(name))
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

func TestConsistentHashOnTheSourceIPKeepsATunnelsClientOnOneEndpoint(t *testing.T) {
	t.Parallel()
	var eps []string
	for _, name := range []string{"a", "b", "c"} {
		eps = append(eps, fmt.Sprintf("{address: 127.0.0.1, ports: {tcp: %d}}", nameServer(t, name)))
	}
	docs := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.test]
  ports: [{number: 7000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [%s]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db.test
  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
`, strings.Join(eps, ", "))
	h := startProxy(t, docs, Config{}, "")
	seen := map[string]int{}
	for range 12 {
		c, status := h.connect(t, "db.test:7000")
		if status != 200 {
			t.Fatalf("CONNECT got %d", status)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("?")); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		seen[string(b)]++
	}
	if len(seen) != 1 {
		t.Fatalf("tunnels from one client reached %v, want one endpoint", seen)
	}
}

func TestAnHTTP2ClientGetsTheHashCookieToo(t *testing.T) {
	t.Parallel()
	a, b := newDRBackend(t, "a", nil), newDRBackend(t, "b", nil)
	h := startProxy(t, drDocs("cookie2.test", "loadBalancer: {consistentHash: {httpCookie: {name: sticky, ttl: 30s}}}", a, b), Config{}, "")
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	code, _, hdr := fetch(t, c, "http://"+h.addr+"/", "Host: cookie2.test")
	if set := hdr.Get("Set-Cookie"); code != 200 || !strings.HasPrefix(set, "sticky=") {
		t.Fatalf("an HTTP/2 request without the cookie got %d and Set-Cookie %q", code, set)
	}
}

func TestOutlierDetectionCountsConnectFailures(t *testing.T) {
	t.Parallel()
	good, dead := newDRBackend(t, "good", nil), newDRBackend(t, "dead", nil)
	deadAddr := fmt.Sprintf("127.0.0.1:%d", dead.port())
	d := &dialRecorder{refuseAddr: deadAddr}
	// Unsplit, a connect failure counts as a 503; the fixed default would need five.
	traffic := `loadBalancer: {simple: ROUND_ROBIN}
outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}`
	h := startProxy(t, drDocs("odc.test", traffic, good, dead), Config{Dial: d.dial}, "")
	client := drClient(t, h)
	for i := 0; d.refused.Load() < 2; i++ {
		if i > 20 {
			t.Fatalf("the dead endpoint was tried %d times in 20 requests", d.refused.Load())
		}
		if code, body, _ := fetch(t, client, "http://odc.test/"); code != 200 || body != "good" {
			t.Fatalf("got %d from %s, want the retry to reach the good backend", code, body)
		}
	}
	ejected := false
	for _, c := range h.p.Clusters() {
		for _, ep := range c.Endpoints {
			ejected = ejected || ep.Address == deadAddr && ep.Ejected
		}
	}
	if !ejected {
		t.Fatal("two connect failures in a row did not eject the endpoint")
	}
}
