package httpfwd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTP2StreamsCarryOutRouteActions(t *testing.T) {
	t.Parallel()
	holdOn := untilTestEnds(t)
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			holdOn(r)
			return
		}
		w.Header().Set("X-Secret", "internal")
		io.WriteString(w, r.Method+" "+r.RequestURI+" host="+r.Host+" a="+r.Header.Get("X-A"))
	})
	tests := []struct {
		name       string
		act        *Actions
		path       string
		wantStatus int
		wantBody   string
		wantHead   map[string]string
	}{
		{
			name: "request and response fields change and the path is rewritten",
			act: &Actions{
				Rewrite:  &Rewrite{Prefix: "/v1", URI: "/v2", Authority: "inner.example"},
				Request:  HeaderOps{Set: []Field{{Name: "X-A", Value: "set"}}},
				Response: HeaderOps{Remove: []string{"x-secret"}, Add: []Field{{Name: "X-Route", Value: "r"}}},
			},
			path: "/v1/x?q=1", wantStatus: 200, wantBody: "GET /v2/x?q=1 host=inner.example a=set",
			wantHead: map[string]string{"X-Secret": "", "X-Route": "r"},
		},
		{
			name: "a direct response is answered on the stream",
			act:  &Actions{Direct: &DirectResponse{Status: 403, Body: "no"}},
			path: "/", wantStatus: 403, wantBody: "no",
		},
		{
			name: "a redirect is answered on the stream",
			act:  &Actions{Redirect: &Redirect{URI: "/moved"}},
			path: "/old", wantStatus: 301, wantHead: map[string]string{"Location": "http://svc.test/moved"},
		},
		{
			name: "a fault abort is answered on the stream",
			act:  &Actions{Fault: &Fault{AbortStatus: 429, AbortPercent: 100}},
			path: "/", wantStatus: 429, wantBody: "fault filter abort",
		},
		{
			name: "the route timeout answers 504",
			act:  &Actions{Timeout: 300 * time.Millisecond},
			path: "/slow", wantStatus: 504, wantBody: "upstream request timeout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{b.addr()}, act: tt.act}})
			c := h2cClient(t)
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			req, _ := http.NewRequest("GET", "http://"+addr+tt.path, nil)
			req.Host = "svc.test"
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.HasPrefix(string(body), tt.wantBody) {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			for k, v := range tt.wantHead {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHTTP2StreamRetriesAStatusOnAnotherEndpoint(t *testing.T) {
	t.Parallel()
	var first, second atomic.Int64
	b1, b2 := statusBackend(t, 503, &first), statusBackend(t, 200, &second)
	act := &Actions{Retry: &RetryPolicy{Attempts: 1, On: RetryGatewayError}}
	srv := &Server{Router: &actionRouter{addrs: []string{b1.addr(), b2.addr()}, act: act}}
	addr := startProxy(t, srv)
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || first.Load() != 1 || second.Load() != 1 || srv.Stats().Retries != 1 {
		t.Errorf("got %d after %d and %d tries (%d retries), want 200 from the second endpoint after one retry",
			resp.StatusCode, first.Load(), second.Load(), srv.Stats().Retries)
	}
}

func TestHTTP2StreamIsMirrored(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 4)
	mirror := startBackend(t, func(w http.ResponseWriter, r *http.Request) { seen <- r.Host + " " + r.RequestURI })
	orig := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "original") })
	act := &Actions{Mirror: &Mirror{Upstream: Upstream{Addr: mirror.addr()}, Percent: 100}}
	srv := &Server{Router: &actionRouter{addrs: []string{orig.addr()}, act: act}}
	addr := startProxy(t, srv)
	req, _ := http.NewRequest("GET", "http://"+addr+"/m?x=1", nil)
	req.Host = "svc.test"
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "original" {
		t.Fatalf("original got %q", body)
	}
	select {
	case got := <-seen:
		if got != "svc.test-shadow /m?x=1" {
			t.Errorf("mirror saw %q, want svc.test-shadow /m?x=1", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the mirror got no copy")
	}
	if srv.Stats().MirrorsSent != 1 {
		t.Errorf("MirrorsSent = %d, want 1", srv.Stats().MirrorsSent)
	}
}

func TestHTTP2StreamPerTryTimeout(t *testing.T) {
	t.Parallel()
	holdOn := untilTestEnds(t)
	slow := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // net/http sees the proxy close the connection only once it has the body
		holdOn(r)
	})
	var hits atomic.Int64
	good := statusBackend(t, 200, &hits)
	tests := []struct {
		name       string
		addrs      []string
		body       string // sent with a POST; a GET when empty
		wantStatus int
	}{
		{name: "a slow try is abandoned for another endpoint", addrs: []string{slow.addr(), good.addr()}, wantStatus: 200},
		{name: "... with its held body", addrs: []string{slow.addr(), good.addr()}, body: "payload", wantStatus: 200},
		{name: "the last slow try is answered 504", addrs: []string{slow.addr()}, wantStatus: 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			act := &Actions{Retry: &RetryPolicy{Attempts: 1, PerTryTimeout: 200 * time.Millisecond, On: Retry5xx}}
			addr := startProxy(t, &Server{Router: &actionRouter{addrs: tt.addrs, act: act}})
			start := time.Now()
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			if tt.body != "" {
				req, _ = http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(tt.body))
			}
			resp, err := h2cClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("status 200 body %q", tt.body); tt.wantStatus == 200 && string(got) != want {
				t.Errorf("answer %q, want %q", got, want)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("took %v: the per-try timeout did not end the slow try", took)
			}
		})
	}
}

func TestHTTP2StreamWithABodyIsRetriedAndMirroredWhole(t *testing.T) {
	t.Parallel()
	var first, second atomic.Int64
	b1, b2 := statusBackend(t, 503, &first), statusBackend(t, 200, &second)
	seen := make(chan string, 4)
	mirror := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen <- string(body)
	})
	tests := []struct {
		name       string
		act        *Actions
		lim        Limits
		wantStatus int
		wantBody   string
		wantMirror string // "" when no copy is sent
		tooLarge   uint64
	}{
		{name: "a held body reaches the endpoint a retry picks",
			act:        &Actions{Retry: &RetryPolicy{Attempts: 1, On: RetryGatewayError}},
			wantStatus: 200, wantBody: `status 200 body "hello world"`},
		{name: "a held body goes to the mirror too",
			act: &Actions{Retry: &RetryPolicy{Attempts: 1, On: RetryGatewayError},
				Mirror: &Mirror{Upstream: Upstream{Addr: mirror.addr()}, Percent: 100}},
			wantStatus: 200, wantBody: `status 200 body "hello world"`, wantMirror: "hello world"},
		{name: "a body over the replay limit streams once and is counted",
			act: &Actions{Retry: &RetryPolicy{Attempts: 1, On: RetryGatewayError}}, lim: Limits{MaxReplayBytes: 4},
			wantStatus: 503, wantBody: `status 503 body "hello world"`, tooLarge: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{Router: &actionRouter{addrs: []string{b1.addr(), b2.addr()}, act: tt.act}, Limits: tt.lim}
			addr := startProxy(t, srv)
			req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("hello world"))
			req.ContentLength = 11
			resp, err := h2cClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || string(body) != tt.wantBody || srv.Stats().ReplayTooLarge != tt.tooLarge {
				t.Errorf("got %d %q (ReplayTooLarge %d), want %d %q (%d)", resp.StatusCode, body,
					srv.Stats().ReplayTooLarge, tt.wantStatus, tt.wantBody, tt.tooLarge)
			}
			if tt.wantMirror == "" {
				return
			}
			select {
			case got := <-seen:
				if got != tt.wantMirror {
					t.Errorf("mirror got body %q, want %q", got, tt.wantMirror)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the mirror got no copy")
			}
		})
	}
}

func TestHTTP2HeldBodyThatStallsIsAnswered408(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	b := statusBackend(t, 200, &hits)
	act := &Actions{Retry: &RetryPolicy{Attempts: 1, On: RetryGatewayError}}
	srv := &Server{Router: &actionRouter{addrs: []string{b.addr()}, act: act}, Limits: Limits{StreamIdleTimeout: 200 * time.Millisecond}}
	addr := startProxy(t, srv)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("hello")) // then nothing: six of the eleven bytes never come
	req, _ := http.NewRequest("POST", "http://"+addr+"/", pr)
	req.ContentLength = 11
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 408 || hits.Load() != 0 {
		t.Errorf("got %d with %d upstream requests, want 408 and none", resp.StatusCode, hits.Load())
	}
}

// An HTTP/2 stream follows its route's retry policy for resets and connect failures as an
// HTTP/1.1 request does: a reset is retried when the policy retries resets, and the connect
// attempts are the policy's, not the engine's default.
func TestHTTP2StreamFollowsThePolicyOnResetsAndConnectFailures(t *testing.T) {
	t.Parallel()
	var resets, answered atomic.Int64
	reset := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			resets.Add(1) // read, then closed unanswered
		}
	})
	good := statusBackend(t, 200, &answered)
	dead := closedAddr(t)
	tests := []struct {
		name        string
		addrs       []string
		retry       *RetryPolicy
		status      int
		routes      int64 // Route calls
		resets, oks int64
	}{
		{"a reset is retried on the next endpoint under reset", []string{reset.addr(), good.addr()},
			&RetryPolicy{Attempts: 1, On: RetryReset}, 200, 2, 1, 1},
		{"... and under 5xx", []string{reset.addr(), good.addr()},
			&RetryPolicy{Attempts: 1, On: Retry5xx}, 200, 2, 1, 1},
		{"a reset is answered 502 when the policy does not retry it", []string{reset.addr(), good.addr()},
			&RetryPolicy{Attempts: 1, On: RetryRetriable4xx}, 502, 1, 1, 0},
		{"the last reset is answered 502", []string{reset.addr()},
			&RetryPolicy{Attempts: 2, On: RetryReset}, 502, 3, 3, 0},
		{"connect failures are tried the policy's attempts plus one", []string{dead},
			&RetryPolicy{Attempts: 4, On: RetryConnectFailure}, 503, 5, 0, 0},
		{"a policy that does not retry connect failures tries once", []string{dead},
			&RetryPolicy{Attempts: 4, On: RetryRetriable4xx}, 503, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resets.Store(0)
			answered.Store(0)
			router := &countingRouter{Router: &actionRouter{addrs: tt.addrs, act: &Actions{Retry: tt.retry}}}
			addr := startProxy(t, &Server{Router: router})
			resp, err := h2cClient(t).Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || router.routes.Load() != tt.routes || resets.Load() != tt.resets || answered.Load() != tt.oks {
				t.Errorf("got %d after %d routes, %d resets, %d answers; want %d after %d, %d, %d", resp.StatusCode,
					router.routes.Load(), resets.Load(), answered.Load(), tt.status, tt.routes, tt.resets, tt.oks)
			}
		})
	}
}

// countingRouter counts the Route calls of the Router it wraps.
type countingRouter struct {
	Router
	routes atomic.Int64
}

func (r *countingRouter) Route(h *RequestHead, attempt int) (Upstream, *Reject) {
	r.routes.Add(1)
	return r.Router.Route(h, attempt)
}
