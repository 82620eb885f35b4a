package httpfwd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// statusBackend answers every request with status and counts them, echoing the body it read.
func statusBackend(t *testing.T, status int, hits *atomic.Int64) *backend {
	return startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(status)
		fmt.Fprintf(w, "status %d body %q", status, body)
	})
}

func TestRetriesReachAnotherEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		firstCode  int
		on         RetryOn
		codes      []int
		request    string
		wantStatus int
		wantFirst  int64
		wantSecond int64
		wantBody   string
	}{
		{
			name: "a 503 is retried on the second endpoint under 5xx", firstCode: 503, on: Retry5xx,
			request: "GET / HTTP/1.1\r\nHost: svc\r\n\r\n", wantStatus: 200, wantFirst: 1, wantSecond: 1, wantBody: `status 200 body ""`,
		},
		{
			name: "a 503 is retried under gateway-error", firstCode: 503, on: RetryGatewayError,
			request: "GET / HTTP/1.1\r\nHost: svc\r\n\r\n", wantStatus: 200, wantFirst: 1, wantSecond: 1, wantBody: `status 200 body ""`,
		},
		{
			name: "a 500 is not a gateway error", firstCode: 500, on: RetryGatewayError,
			request: "GET / HTTP/1.1\r\nHost: svc\r\n\r\n", wantStatus: 500, wantFirst: 1, wantSecond: 0, wantBody: `status 500 body ""`,
		},
		{
			name: "a 409 is retried under retriable-4xx", firstCode: 409, on: RetryRetriable4xx,
			request: "GET / HTTP/1.1\r\nHost: svc\r\n\r\n", wantStatus: 200, wantFirst: 1, wantSecond: 1, wantBody: `status 200 body ""`,
		},
		{
			name: "a listed status is retried under retriable-status-codes", firstCode: 429, on: RetryStatusCodes, codes: []int{429},
			request: "GET / HTTP/1.1\r\nHost: svc\r\n\r\n", wantStatus: 200, wantFirst: 1, wantSecond: 1, wantBody: `status 200 body ""`,
		},
		{
			name: "a POST body is sent again on the retry", firstCode: 503, on: Retry5xx,
			request:    "POST /order HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello",
			wantStatus: 200, wantFirst: 1, wantSecond: 1, wantBody: `status 200 body "hello"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var first, second atomic.Int64
			b1, b2 := statusBackend(t, tt.firstCode, &first), statusBackend(t, 200, &second)
			act := &Actions{Retry: &RetryPolicy{Attempts: 2, On: tt.on, StatusCodes: tt.codes}}
			srv := &Server{Router: &actionRouter{addrs: []string{b1.addr(), b2.addr()}, act: act}}
			addr := startProxy(t, srv)
			resp := dial(t, addr).roundTrip(tt.request)
			if resp.StatusCode != tt.wantStatus || resp.body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.body, tt.wantStatus, tt.wantBody)
			}
			if first.Load() != tt.wantFirst || second.Load() != tt.wantSecond {
				t.Errorf("endpoints saw %d and %d requests, want %d and %d", first.Load(), second.Load(), tt.wantFirst, tt.wantSecond)
			}
			if got := srv.Stats().Retries; got != uint64(tt.wantSecond) {
				t.Errorf("Stats().Retries = %d, want %d", got, tt.wantSecond)
			}
		})
	}
}

func TestRetriesExhaustedRelayTheLastAnswer(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	b := statusBackend(t, 503, &hits)
	act := &Actions{Retry: &RetryPolicy{Attempts: 2, On: Retry5xx}}
	addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{b.addr()}, act: act}})
	resp := dial(t, addr).roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
	if resp.StatusCode != 503 || hits.Load() != 3 {
		t.Errorf("got %d after %d tries, want the 503 after 3", resp.StatusCode, hits.Load())
	}
}

func TestRetryOnReset(t *testing.T) {
	t.Parallel()
	// The first endpoint reads the request and hangs up without answering.
	reset := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		readRawRequest(br)
		nc.Close()
	})
	var hits atomic.Int64
	good := statusBackend(t, 200, &hits)
	sink := &flagSink{}
	tests := []struct {
		name       string
		on         RetryOn
		wantStatus int
	}{
		{name: "a reset is retried under reset", on: RetryReset, wantStatus: 200},
		{name: "a reset is not retried under retriable-4xx alone", on: RetryRetriable4xx, wantStatus: 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := &Actions{Retry: &RetryPolicy{Attempts: 1, On: tt.on}}
			addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{reset.addr(), good.addr()}, act: act}, Telemetry: sink})
			if resp := dial(t, addr).roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n"); resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestPerTryTimeoutRetries(t *testing.T) {
	t.Parallel()
	holdOn := untilTestEnds(t)
	slow := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		holdOn(r)
	})
	var hits atomic.Int64
	good := statusBackend(t, 200, &hits)
	sink := &flagSink{}
	tests := []struct {
		name       string
		addrs      []string
		wantStatus int
		wantBody   string
	}{
		{name: "a slow try is abandoned for another endpoint", addrs: []string{slow.addr(), good.addr()}, wantStatus: 200, wantBody: `status 200 body ""`},
		{name: "the last slow try is answered 504", addrs: []string{slow.addr()}, wantStatus: 504, wantBody: "upstream request timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			act := &Actions{Retry: &RetryPolicy{Attempts: 1, PerTryTimeout: 200 * time.Millisecond, On: RetryGatewayError}}
			addr := startProxy(t, &Server{Router: &actionRouter{addrs: tt.addrs, act: act}, Telemetry: sink})
			start := time.Now()
			resp := dial(t, addr).roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
			if resp.StatusCode != tt.wantStatus || resp.body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.body, tt.wantStatus, tt.wantBody)
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("took %v: the per-try timeout did not end the slow try", took)
			}
		})
	}
}

func TestRetryBodyOverTheReplayLimitIsSentOnce(t *testing.T) {
	t.Parallel()
	var first, second atomic.Int64
	b1, b2 := statusBackend(t, 503, &first), statusBackend(t, 200, &second)
	act := &Actions{Retry: &RetryPolicy{Attempts: 2, On: Retry5xx}}
	srv := &Server{Router: &actionRouter{addrs: []string{b1.addr(), b2.addr()}, act: act}, Limits: Limits{MaxReplayBytes: 4}}
	addr := startProxy(t, srv)
	resp := dial(t, addr).roundTrip("POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 11\r\n\r\nhello world")
	if resp.StatusCode != 503 || !strings.Contains(resp.body, "hello world") {
		t.Errorf("got %d %q, want the first endpoint's 503 with the body it read", resp.StatusCode, resp.body)
	}
	if second.Load() != 0 || srv.Stats().ReplayTooLarge != 1 {
		t.Errorf("second endpoint saw %d, ReplayTooLarge = %d; want 0 and 1", second.Load(), srv.Stats().ReplayTooLarge)
	}
}

func TestRetriesWithoutConnectFailureDoNotRedial(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	good := statusBackend(t, 200, &hits)
	tests := []struct {
		name       string
		on         RetryOn
		wantStatus int
	}{
		{name: "connect-failure moves on to the next endpoint", on: RetryConnectFailure, wantStatus: 200},
		{name: "retriable-4xx alone answers the connect failure", on: RetryRetriable4xx, wantStatus: 503},
	}
	// A port nothing listens on any more: connecting to it fails.
	ln := listen(t)
	dead := ln.Addr().String()
	ln.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &flagSink{}
			act := &Actions{Retry: &RetryPolicy{Attempts: 2, On: tt.on}}
			addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{dead, good.addr()}, act: act}, Telemetry: sink})
			resp := dial(t, addr).roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := sink.nth(t, 1); tt.wantStatus == 503 && got&telemetry.UpstreamConnectFailure == 0 {
				t.Errorf("flags %v, want UF", got)
			}
		})
	}
}

func TestARequestWithoutActionsAfterOneWithARetriedBody(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	b := statusBackend(t, 200, &hits)
	act := &Actions{Retry: &RetryPolicy{Attempts: 1, On: Retry5xx}}
	// Only requests to /retry have a route with actions.
	router := RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
		if strings.HasPrefix(string(req.Target), "/retry") {
			return Upstream{Addr: b.addr(), Actions: act}, nil
		}
		return Upstream{Addr: b.addr()}, nil
	})
	c := dial(t, startProxy(t, &Server{Router: router}))
	for _, path := range []string{"/retry", "/plain"} {
		resp := c.roundTrip("POST " + path + " HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\n\r\nbody")
		if resp.StatusCode != 200 || resp.body != `status 200 body "body"` {
			t.Errorf("%s: got %d %q, want the body forwarded", path, resp.StatusCode, resp.body)
		}
	}
}

// getThrough sends one GET to the proxy at addr, over HTTP/1.1 or h2c, and returns the
// response with its body read and closed.
func getThrough(t *testing.T, addr string, h2 bool) *http.Response {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	if h2 {
		client = h2cClient(t)
	}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// retriedRouter is actionRouter that keeps the RetriedStatus each Route call saw.
type retriedRouter struct {
	actionRouter
	mu   sync.Mutex
	seen []int
}

func (r *retriedRouter) Route(req *RequestHead, attempt int) (Upstream, *Reject) {
	r.mu.Lock()
	if req.RetriedReset {
		r.seen = append(r.seen, -1) // the try before failed after it connected
	} else {
		r.seen = append(r.seen, req.RetriedStatus)
	}
	r.mu.Unlock()
	return r.actionRouter.Route(req, attempt)
}

// TestRouteSeesTheStatusItsRetryFollows: the Router learns, on HTTP/1.1 and HTTP/2 alike,
// that an attempt retries a response (its status) rather than a failure without one, and on
// HTTP/1.1 that it retries an upstream that failed after it connected (RetriedReset).
func TestRouteSeesTheStatusItsRetryFollows(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	failing, ok := statusBackend(t, 503, &hits), statusBackend(t, 200, &hits)
	reset := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		readRawRequest(br)
		nc.Close()
	})
	act := &Actions{Retry: &RetryPolicy{Attempts: 2, On: RetryConnectFailure | RetryStatusCodes, StatusCodes: []int{503}}}
	resets := &Actions{Retry: &RetryPolicy{Attempts: 2, On: RetryReset}}
	for _, tc := range []struct {
		name  string
		act   *Actions
		addrs []string
		want  []int // RetriedStatus at each Route, -1 for RetriedReset
		h2    []bool
	}{
		{"a status, then a connect failure", act, []string{failing.addr(), closedAddr(t), ok.addr()}, []int{0, 503, 0}, []bool{false, true}},
		{"a connect failure, then a status", act, []string{closedAddr(t), failing.addr(), ok.addr()}, []int{0, 0, 503}, []bool{false, true}},
		{"a reset, then a connect failure", resets, []string{reset.addr(), closedAddr(t), ok.addr()}, []int{0, -1, 0}, []bool{false}},
	} {
		for _, h2 := range tc.h2 {
			t.Run(fmt.Sprintf("%s, h2c %v", tc.name, h2), func(t *testing.T) {
				r := &retriedRouter{actionRouter: actionRouter{addrs: tc.addrs, act: tc.act}}
				addr := startProxy(t, &Server{Router: r})
				resp := getThrough(t, addr, h2)
				r.mu.Lock()
				defer r.mu.Unlock()
				if resp.StatusCode != 200 || fmt.Sprint(r.seen) != fmt.Sprint(tc.want) {
					t.Errorf("got %d with RetriedStatus %v at each Route, want 200 with %v", resp.StatusCode, r.seen, tc.want)
				}
			})
		}
	}
}

// TestAStatusLeftUnretriedForWantOfAttemptsIsFlaggedURX: the response a policy would retry but
// for its attempts is relayed flagged URX, on HTTP/1.1 and HTTP/2; a policy of no attempts
// (Istio's attempts: 0, no retries at all) flags nothing.
func TestAStatusLeftUnretriedForWantOfAttemptsIsFlaggedURX(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	failing := statusBackend(t, 503, &hits)
	for _, tc := range []struct {
		attempts int
		want     telemetry.Flags
	}{{2, telemetry.RetriesExhausted}, {0, 0}} {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("attempts %d, h2c %v", tc.attempts, h2), func(t *testing.T) {
				sink := &flagSink{}
				act := &Actions{Retry: &RetryPolicy{Attempts: tc.attempts, On: RetryStatusCodes, StatusCodes: []int{503}}}
				addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{failing.addr()}, act: act}, Telemetry: sink})
				resp := getThrough(t, addr, h2)
				if got := sink.nth(t, 1); resp.StatusCode != 503 || got != tc.want {
					t.Errorf("got %d flagged %v, want the upstream's 503 flagged %v", resp.StatusCode, got, tc.want)
				}
			})
		}
	}
}
