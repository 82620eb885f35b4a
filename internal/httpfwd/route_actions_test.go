package httpfwd

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// actionRouter routes attempt n of every request to addrs[n%len(addrs)] with the same Actions.
type actionRouter struct {
	addrs []string
	act   *Actions
}

func (r *actionRouter) Route(_ *RequestHead, attempt int) (Upstream, *Reject) {
	return Upstream{Addr: r.addrs[attempt%len(r.addrs)], Actions: r.act}, nil
}

func (r *actionRouter) Done(Upstream, error) {}

// flagSink keeps the response flags of the last request reported.
type flagSink struct {
	mu    sync.Mutex
	flags []telemetry.Flags
}

func (s *flagSink) Request(r *telemetry.Request) {
	s.mu.Lock()
	s.flags = append(s.flags, r.Flags)
	s.mu.Unlock()
}

func (s *flagSink) ConnOpened(*telemetry.Conn) {}

func (s *flagSink) ConnClosed(*telemetry.Conn) {}

// nth waits for the n-th record (1-based): a record is made once the response went out, so
// the client may read the answer first.
func (s *flagSink) nth(t *testing.T, n int) telemetry.Flags {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		if len(s.flags) >= n {
			f := s.flags[n-1]
			s.mu.Unlock()
			return f
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no telemetry record %d within 5 s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echoRequestBackend answers with the request line and the fields the test names.
func echoRequestBackend(t *testing.T) *backend {
	return startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "kept")
		w.Header().Set("X-Secret", "internal")
		fmt.Fprintf(w, "%s %s host=%s a=%q b=%q c=%q", r.Method, r.RequestURI, r.Host,
			r.Header.Values("X-A"), r.Header.Values("X-B"), r.Header.Values("X-C"))
	})
}

func TestRouteHeaderAndRewriteActions(t *testing.T) {
	t.Parallel()
	b := echoRequestBackend(t)
	tests := []struct {
		name     string
		act      *Actions
		request  string
		wantBody string
		wantHead map[string]string
	}{
		{
			name: "request fields are set, added and removed",
			act: &Actions{Request: HeaderOps{
				Set: []Field{{Name: "X-A", Value: "set"}}, Add: []Field{{Name: "X-B", Value: "added"}}, Remove: []string{"x-c"},
			}},
			request:  "GET /p HTTP/1.1\r\nHost: svc\r\nX-A: one\r\nX-A: two\r\nX-B: first\r\nX-C: gone\r\n\r\n",
			wantBody: `GET /p host=svc a=["set"] b=["first" "added"] c=[]`,
		},
		{
			name: "response fields are set, added and removed",
			act: &Actions{Response: HeaderOps{
				Set: []Field{{Name: "X-Upstream", Value: "replaced"}}, Add: []Field{{Name: "X-Route", Value: "r1"}}, Remove: []string{"X-Secret"},
			}},
			request:  "GET /p HTTP/1.1\r\nHost: svc\r\n\r\n",
			wantHead: map[string]string{"X-Upstream": "replaced", "X-Route": "r1", "X-Secret": ""},
		},
		{
			name:     "a matched prefix is replaced and the query kept",
			act:      &Actions{Rewrite: &Rewrite{Prefix: "/v1/", URI: "/api/v2/"}},
			request:  "GET /v1/items?id=3 HTTP/1.1\r\nHost: svc\r\n\r\n",
			wantBody: `GET /api/v2/items?id=3 host=svc`,
		},
		{
			name:     "an exact match has its whole path replaced",
			act:      &Actions{Rewrite: &Rewrite{URI: "/health"}},
			request:  "GET /status?full=1 HTTP/1.1\r\nHost: svc\r\n\r\n",
			wantBody: `GET /health?full=1 host=svc`,
		},
		{
			name: "a regex rewrite substitutes groups as Envoy's",
			act: &Actions{Rewrite: &Rewrite{
				Regex: regexp.MustCompile(`^/service/([^/]+)(/.*)$`), RegexReplace: RegexSubstitution(`\2/instance/\1`),
			}},
			request:  "GET /service/foo/v1/api HTTP/1.1\r\nHost: svc\r\n\r\n",
			wantBody: `GET /v1/api/instance/foo host=svc`,
		},
		{
			name:     "the authority is rewritten",
			act:      &Actions{Rewrite: &Rewrite{Authority: "internal.example"}},
			request:  "GET http://svc/x HTTP/1.1\r\nHost: svc\r\n\r\n",
			wantBody: `GET /x host=internal.example`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{b.addr()}, act: tt.act}})
			resp := dial(t, addr).roundTrip(tt.request)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200: %s", resp.StatusCode, resp.body)
			}
			if !strings.HasPrefix(resp.body, tt.wantBody) {
				t.Errorf("upstream saw %q, want it to start with %q", resp.body, tt.wantBody)
			}
			for k, v := range tt.wantHead {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("response field %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestRouteAnswersWithoutForwarding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		act          *Actions
		request      string
		wantStatus   int
		wantBody     string
		wantLocation string
		wantFlags    telemetry.Flags
	}{
		{
			name:       "a direct response is sent as given",
			act:        &Actions{Direct: &DirectResponse{Status: 418, Body: "short and stout"}},
			request:    "GET /tea HTTP/1.1\r\nHost: svc\r\n\r\n",
			wantStatus: 418, wantBody: "short and stout",
		},
		{
			name:       "a redirect defaults to 301 and keeps the query",
			act:        &Actions{Redirect: &Redirect{URI: "/new"}},
			request:    "GET /old?q=1 HTTP/1.1\r\nHost: svc:8080\r\n\r\n",
			wantStatus: 301, wantLocation: "http://svc:8080/new?q=1",
		},
		{
			name:       "a redirect to another scheme, host and port",
			act:        &Actions{Redirect: &Redirect{Status: 308, Scheme: "https", Host: "secure.example", Port: 8443}},
			request:    "GET http://svc/a/b HTTP/1.1\r\nHost: svc\r\n\r\n",
			wantStatus: 308, wantLocation: "https://secure.example:8443/a/b",
		},
		{
			name:       "a fault abort of every request answers with its status",
			act:        &Actions{Fault: &Fault{AbortStatus: 503, AbortPercent: 100}},
			request:    "GET / HTTP/1.1\r\nHost: svc\r\n\r\n",
			wantStatus: 503, wantBody: "fault filter abort", wantFlags: telemetry.FaultInjected,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sink := &flagSink{}
			// The address is never dialled: these routes answer themselves.
			addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{"127.0.0.1:1"}, act: tt.act}, Telemetry: sink})
			c := dial(t, addr)
			resp := c.roundTrip(tt.request)
			if resp.StatusCode != tt.wantStatus || resp.body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.body, tt.wantStatus, tt.wantBody)
			}
			if got := resp.Header.Get("Location"); got != tt.wantLocation {
				t.Errorf("Location %q, want %q", got, tt.wantLocation)
			}
			if got := sink.nth(t, 1); got != tt.wantFlags {
				t.Errorf("flags %v, want %v", got, tt.wantFlags)
			}
			// The connection carries on after an answer of the route's own.
			if resp := c.roundTrip(tt.request); resp.StatusCode != tt.wantStatus {
				t.Errorf("second request: status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestRouteFaultDelay(t *testing.T) {
	t.Parallel()
	b := echoRequestBackend(t)
	sink := &flagSink{}
	const delay = 300 * time.Millisecond
	act := &Actions{Fault: &Fault{Delay: delay, DelayPercent: 100}}
	addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{b.addr()}, act: act}, Telemetry: sink})
	start := time.Now()
	resp := dial(t, addr).roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
	if took := time.Since(start); took < delay {
		t.Errorf("answered after %v, before the %v delay", took, delay)
	}
	if got := sink.nth(t, 1); resp.StatusCode != 200 || got != telemetry.DelayInjected {
		t.Errorf("got %d flagged %v, want 200 flagged DI", resp.StatusCode, got)
	}
}

func TestRouteTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	sink := &flagSink{}
	const timeout = 300 * time.Millisecond
	act := &Actions{Timeout: timeout}
	addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{slow.addr()}, act: act}, Telemetry: sink})
	c := dial(t, addr)
	start := time.Now()
	resp := c.roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
	took := time.Since(start)
	if resp.StatusCode != 504 || resp.body != "upstream request timeout" {
		t.Fatalf("got %d %q, want 504 \"upstream request timeout\"", resp.StatusCode, resp.body)
	}
	if took < timeout || took > timeout+3*time.Second {
		t.Errorf("answered after %v, want at the %v deadline", took, timeout)
	}
	if got := sink.nth(t, 1); got&telemetry.UpstreamTimeout == 0 {
		t.Errorf("flags %v, want UT", got)
	}
	// The connection survives the timeout: the body, if any, was read.
	if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n"); resp.StatusCode != 504 {
		t.Errorf("second request: status %d, want 504", resp.StatusCode)
	}
}

func TestRouteTimeoutUnsetLeavesSlowAnswers(t *testing.T) {
	t.Parallel()
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "late but fine")
	})
	act := &Actions{Request: HeaderOps{Add: []Field{{Name: "X-A", Value: "1"}}}}
	addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{b.addr()}, act: act}})
	if resp := dial(t, addr).roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n"); resp.StatusCode != 200 || resp.body != "late but fine" {
		t.Errorf("got %d %q, want the slow answer", resp.StatusCode, resp.body)
	}
}

// TestLoopServesOnlyRetries: the loop engine takes a route whose Actions hold nothing but a
// retry policy without a per-try timeout; any other action sends it to the Go engine.
func TestLoopServesOnlyRetries(t *testing.T) {
	retry := &RetryPolicy{Attempts: 2, On: RetryConnectFailure | RetryStatusCodes, StatusCodes: []int{503}}
	for _, tc := range []struct {
		name string
		act  *Actions
		want bool
	}{
		{"no actions", nil, true},
		{"empty actions", &Actions{}, true},
		{"retries", &Actions{Retry: retry}, true},
		{"no retries", &Actions{Retry: &RetryPolicy{}}, true},
		{"a per-try timeout", &Actions{Retry: &RetryPolicy{Attempts: 1, PerTryTimeout: time.Second}}, false},
		{"a route timeout", &Actions{Retry: retry, Timeout: time.Second}, false},
		{"a request field set", &Actions{Retry: retry, Request: HeaderOps{Set: []Field{{Name: "a", Value: "b"}}}}, false},
		{"a request field removed", &Actions{Request: HeaderOps{Remove: []string{"a"}}}, false},
		{"a response field added", &Actions{Response: HeaderOps{Add: []Field{{Name: "a", Value: "b"}}}}, false},
		{"a rewrite", &Actions{Retry: retry, Rewrite: &Rewrite{URI: "/x"}}, false},
		{"a redirect", &Actions{Redirect: &Redirect{Host: "x"}}, false},
		{"a direct response", &Actions{Direct: &DirectResponse{Status: 200}}, false},
		{"a fault", &Actions{Fault: &Fault{}}, false},
		{"a mirror", &Actions{Mirror: &Mirror{}}, false},
		{"CORS", &Actions{CORS: &CORS{}}, false},
	} {
		if got := tc.act.LoopServes(); got != tc.want {
			t.Errorf("%s: LoopServes %v, want %v", tc.name, got, tc.want)
		}
	}
}
