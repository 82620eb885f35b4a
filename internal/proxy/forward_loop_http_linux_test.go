package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// rawBackend is an HTTP/1.1 upstream on loopback that records each request head byte for byte
// and answers with the canned response its path names, so that what the proxy sends and
// relays can be compared exactly.
type rawBackend struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []string // request heads, in arrival order
}

// backendResponses are the answers by path; "close" after one closes the connection.
var backendResponses = map[string]string{
	"/cl":      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\nConnection: keep-alive, X-Up\r\nKeep-Alive: timeout=5\r\n\r\nhello",
	"/chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 2\r\n\r\n5;ext=1\r\nhello\r\n3\r\n, w\r\n0\r\nX-Trailer: t\r\nContent-Length: 9\r\n\r\n",
	"/interim": "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"/204":     "HTTP/1.1 204 No Content\r\nX-Up: 3\r\n\r\n",
	"/bad":     "HTTP/1.1 20x Nope\r\n\r\n",
	"/big":     "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + strings.Repeat("b", 200000),
	"/close":   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	"/eof":     "HTTP/1.1 200 OK\r\nX-Up: eof\r\n\r\nto the end",
	"/short":   "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
	"/slow":    "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow",
	"/extra":   "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
	"/503":     "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
}

func startRawBackend(t testing.TB) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); b.serve(c) }()
		}
	}()
	return b
}

func (b *rawBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var head bytes.Buffer
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		h := head.String()
		b.mu.Lock()
		b.seen = append(b.seen, h)
		b.mu.Unlock()
		method, path, _ := strings.Cut(h, " ")
		path, _, _ = strings.Cut(path, " ")
		resp := backendResponses[path]
		if method == "HEAD" {
			resp, _, _ = strings.Cut(resp, "\r\n\r\n")
			resp += "\r\n\r\n"
		}
		switch path {
		case "/hang":
			io.Copy(io.Discard, br) // never answers: until the proxy closes
			return
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(c, resp)
		if path == "/extra" {
			// Bytes nobody asked for, while the connection idles in the proxy's pool.
			time.Sleep(50 * time.Millisecond)
			io.WriteString(c, backendResponses["/cl"])
		}
		if path == "/close" || path == "/eof" || path == "/short" || resp == "" {
			return
		}
	}
}

// takeSeen returns the request heads recorded since the last call.
func (b *rawBackend) takeSeen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.seen
	b.seen = nil
	return s
}

// requestSink keeps a copy of each request record, the fields an access log and Istio's
// metrics take.
type requestSink struct {
	mu   sync.Mutex
	recs []string
}

func (s *requestSink) Request(r *telemetry.Request) {
	svc := ""
	if r.Service != nil {
		svc = r.Service.Name + "/" + r.Service.Namespace
	}
	line := fmt.Sprintf("%s %s %s %s authority=%s xff=%s ua=%s id=%s flags=%v req=%d resp=%d up=%s svc=%s upstreamTime=%v",
		r.Protocol, r.Method, r.Path, fmt.Sprint(r.Status), r.Authority, r.ForwardedFor, r.UserAgent, r.RequestID,
		r.Flags, r.RequestBytes, r.ResponseBytes, r.UpstreamHost, svc, r.UpstreamTime >= 0)
	s.mu.Lock()
	s.recs = append(s.recs, line)
	s.mu.Unlock()
}
func (s *requestSink) ConnOpened(*telemetry.Conn) {}
func (s *requestSink) ConnClosed(*telemetry.Conn) {}

func (s *requestSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

func (s *requestSink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs
	s.recs = nil
	return r
}

// httpLoopConfig declares web.test, a STATIC HTTP service at the backend, and down.test, one
// whose endpoint refuses connections.
func httpLoopConfig(upPort, downPort int) string {
	return loopEntry("web", upPort) + loopEntry("down", downPort)
}

// loopEntry declares NAME.test, a STATIC HTTP service on port 80 at 127.0.0.1:port.
func loopEntry(name string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: istio-system}
spec:
  hosts: [%[1]s.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %[2]d}}]
---
`, name, port)
}

// loopVirtualService binds NAME.test with the http rules given (YAML, indented by two after
// their first line), as loopEntry declares it.
func loopVirtualService(name, rules string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[1]s, namespace: istio-system}
spec:
  hosts: [%[1]s.test]
  http:
  %[2]s
---
`, name, rules)
}

// exchangeKeepAlive sends each request in turn on one connection to addr and returns each
// response as the client read it, byte for byte; a response after which the connection
// closed ends the list.
func exchangeKeepAlive(t testing.TB, addr string, reqs []string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	var out []string
	for _, r := range reqs {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, r); err != nil {
			break
		}
		method, _, _ := strings.Cut(r, " ")
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			out = append(out, "error: "+err.Error())
			break
		}
		for resp.StatusCode < 200 {
			resp, err = http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				out = append(out, "error: "+err.Error())
				return out
			}
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, raw.String()[:raw.Len()-br.Buffered()])
		raw.Next(raw.Len() - br.Buffered())
		if resp.Close {
			break
		}
	}
	return out
}

// TestForwardLoopServesHTTPAsTheEngine sends the same requests, on keep-alive connections, to
// a forward port served by the Go engine and to one served on an event loop: the upstream
// gets the same request heads, the client the same responses, telemetry the same records and
// the endpoints the same counts, modulo the request ids the proxies make up.
func TestForwardLoopServesHTTPAsTheEngine(t *testing.T) {
	back := startRawBackend(t)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downPort := down.Addr().(*net.TCPAddr).Port
	down.Close()
	// A VirtualService binds routed.test (declared with the endpoint that refuses): the loop
	// serves the other hosts still, and hands routed.test to the engine, which follows the rule.
	// The rules of retried.test, reset.test and downvs.test act only by retrying (Istio's
	// default policy, 5xx once, connect-failure once): the loop serves them itself.
	upPort := back.ln.Addr().(*net.TCPAddr).Port
	cfgYAML := httpLoopConfig(upPort, downPort) + loopEntry("routed", downPort) + loopEntry("retried", upPort) +
		loopEntry("reset", downPort) + loopEntry("downvs", downPort) +
		loopVirtualService("routed", `- headers: {request: {set: {x-routed: "yes"}}}
    route: [{destination: {host: web.test}}]`) +
		loopVirtualService("retried", `- route: [{destination: {host: retried.test}}]`) +
		loopVirtualService("reset", `- route: [{destination: {host: web.test}}]
    retries: {attempts: 1, retryOn: 5xx}`) +
		loopVirtualService("downvs", `- route: [{destination: {host: downvs.test}}]
    retries: {attempts: 1, retryOn: connect-failure}`)
	goSink, loopSink := &requestSink{}, &requestSink{}
	goPath := startProxy(t, cfgYAML, Config{Namespace: "istio-system", Telemetry: goSink}, "")
	loopPath, g := startLoopProxy(t, cfgYAML, Config{Namespace: "istio-system", Telemetry: loopSink})
	get := func(target, extra string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: web.test\r\n" + extra + "\r\n"
	}
	tests := []struct {
		name     string
		reqs     []string
		handoffs int64  // connections the loop hands to the engine
		seen     string // what the upstream must have read from the loop's port, if anything
		heads    int    // request heads the upstream must get from each port, if set: the tries
	}{
		{name: "relays Content-Length, chunked, interim and bodiless responses on one connection", reqs: []string{
			get("http://web.test/cl?q=1", "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nProxy-Connection: keep-alive\r\nUser-Agent: t\r\nX-Forwarded-For: 192.0.2.1\r\nVia: 1.1 other\r\n"),
			get("/chunked", "X-Request-Id: client-id-2\r\nTE: trailers\r\n"),
			get("/interim", ""),
			"HEAD /cl HTTP/1.1\r\nHost: web.test\r\n\r\n",
			get("/204", ""),
			get("/big", ""),
			get("/close", ""),
		}},
		{name: "answers a malformed response 502 and goes on", reqs: []string{get("/bad", ""), get("/cl", "")}},
		{name: "relays a close-delimited body", reqs: []string{get("/eof", "")}},
		{name: "cuts a body the upstream ends early", reqs: []string{get("/short", "")}},
		{name: "refuses an undeclared host as the engine's Router does", reqs: []string{
			"GET http://nowhere.test/ HTTP/1.1\r\nHost: nowhere.test\r\nX-Request-Id: r-1\r\n\r\n",
			get("/cl", ""),
		}},
		{name: "hands a head the parser refuses to the engine, which answers 400", handoffs: 1, reqs: []string{
			get("/cl", ""),
			"GET http://bad_host!/ HTTP/1.1\r\nHost: x\r\nX-Request-Id: r-2\r\n\r\n",
		}},
		{name: "answers 503 when every connect attempt fails", reqs: []string{
			"GET http://down.test/ HTTP/1.1\r\nHost: down.test\r\nX-Request-Id: d-1\r\n\r\n",
			get("/cl", ""),
		}},
		{name: "hands the connection to the engine at a request with a body, and keeps it there", handoffs: 1, reqs: []string{
			get("/cl", ""),
			"POST /cl HTTP/1.1\r\nHost: web.test\r\nContent-Length: 2\r\n\r\nhi",
			get("/cl", ""),
		}},
		{name: "hands a host a VirtualService binds to the engine, which follows its rule", handoffs: 1, seen: "x-routed: yes", reqs: []string{
			get("/cl", ""),
			"GET http://routed.test/cl HTTP/1.1\r\nHost: routed.test\r\n\r\n",
		}},
		{name: "retries a 503 of a rule with Istio's default policy on the loop, twice, as the engine", heads: 4, reqs: []string{
			"GET http://retried.test/503 HTTP/1.1\r\nHost: retried.test\r\n\r\n",
			"GET http://retried.test/cl HTTP/1.1\r\nHost: retried.test\r\n\r\n",
		}},
		{name: "retries a malformed response and a 503 once by a rule's 5xx policy on the loop", heads: 4, reqs: []string{
			"GET http://reset.test/bad HTTP/1.1\r\nHost: reset.test\r\n\r\n",
			"GET http://reset.test/503 HTTP/1.1\r\nHost: reset.test\r\n\r\n",
		}},
		{name: "answers 503 after the connect attempts of a rule's policy", reqs: []string{
			"GET http://downvs.test/ HTTP/1.1\r\nHost: downvs.test\r\nX-Request-Id: d-2\r\n\r\n",
		}},
		{name: "hands HTTP/1.0 to the engine", handoffs: 1, reqs: []string{"GET http://web.test/cl HTTP/1.0\r\n\r\n"}},
		{name: "hands a request with Expect to the engine", handoffs: 1, reqs: []string{
			get("/cl", "Expect: 100-continue\r\n"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := g.Stats()
			want := exchangeKeepAlive(t, goPath.addr, tt.reqs)
			wantSeen := back.takeSeen()
			got := exchangeKeepAlive(t, loopPath.addr, tt.reqs)
			gotSeen := back.takeSeen()
			if !slices.Equal(normalizeIDs(got), normalizeIDs(want)) {
				t.Errorf("responses on the loop:\n%q\nby the engine:\n%q", got, want)
			}
			if !slices.Equal(normalizeIDs(gotSeen), normalizeIDs(wantSeen)) {
				t.Errorf("request heads from the loop:\n%q\nfrom the engine:\n%q", gotSeen, wantSeen)
			}
			waitFor(t, func() bool { return goSink.count() >= len(want) && loopSink.count() >= len(got) }, "a record of each response")
			if w, l := normalizeIDs(goSink.take()), normalizeIDs(loopSink.take()); !slices.Equal(w, l) {
				t.Errorf("records on the loop:\n%s\nby the engine:\n%s", strings.Join(l, "\n"), strings.Join(w, "\n"))
			}
			if tt.heads != 0 && (len(gotSeen) != tt.heads || len(wantSeen) != tt.heads) {
				t.Errorf("the upstream got %d request heads from the loop, %d from the engine, want %d:\n%q\n%q", len(gotSeen), len(wantSeen), tt.heads, gotSeen, wantSeen)
			}
			if tt.seen != "" && !strings.Contains(strings.ToLower(strings.Join(gotSeen, "")), tt.seen) {
				t.Errorf("the upstream did not see %q from the loop's port:\n%q", tt.seen, gotSeen)
			}
			if handed := g.Stats().Handoffs - before.Handoffs; handed != tt.handoffs {
				t.Errorf("%d connections handed off, want %d", handed, tt.handoffs)
			}
		})
	}
	if w, l := endpointReport(goPath.p), endpointReport(loopPath.p); w != l {
		t.Errorf("endpoint counts on the loop %s, by the engine %s", l, w)
	}
	// Three malformed responses: web.test's /bad, and reset.test's first try and its retry.
	if s := loopPath.p.ForwardLoopHTTPStats(); s.Requests == 0 || s.PoolReused == 0 || s.BadResponses != 3 || s.Interim != 1 {
		t.Errorf("loop stats %+v", s)
	}
}

// normalizeIDs replaces the request ids the proxies make up.
func normalizeIDs(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = uuidPattern.ReplaceAllString(x, "ID")
	}
	return out
}

// endpointReport prints the counters and health of every endpoint, which Router.Done keeps.
func endpointReport(p *Proxy) string {
	var b strings.Builder
	for _, c := range p.Clusters() {
		for _, e := range c.Endpoints {
			fmt.Fprintf(&b, "%s %s ejected=%v failing=%v %+v; ", c.Name, e.Address, e.Ejected, e.Failing, e.Counts)
		}
	}
	return b.String()
}
